"""At `testbed up`: the vendor cloud gets every model's releases, things get the vendor CA and
the vendor cloud's URI."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed import manufacture, rundir
from testbed.node import material as M
from testbed.node.firmware.cloud import load_releases
from testbed.pki import firmware, load_cert
from testbed.plan import make_plan
from testbed.plan.model import Plan
from testbed.topology import parse_topology

TOPOLOGY = """
building: fw
vendors:
  - name: acme
    models:
      - {name: thermo-100, role: thermostat}
      - {name: lamp-7, role: luminaire, firmware: 1.2.0}
domains: [{name: facility}]
pans: [{name: pan0}]
border_routers: [{name: br1, pans: [pan0]}]
things:
  - {name: thermostat-01, vendor: acme, model: thermo-100, domain: facility, pan: pan0}
  - {name: lamp-01, vendor: acme, model: lamp-7, domain: facility, pan: pan0}
hosts:
  - {name: backend, role: backend}
  - {name: cloud, role: vendor-cloud}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, Path, manufacture.Minted]:
    run_dir = tmp_path_factory.mktemp("run")
    plan = make_plan(parse_topology(TOPOLOGY), "fw")
    rundir.write_run_dir(plan, run_dir, "")
    return plan, run_dir, manufacture.mint(plan, run_dir)


def test_the_vendor_cloud_serves_every_model_and_version(
    run: tuple[Plan, Path, manufacture.Minted],
) -> None:
    _, run_dir, minted = run
    releases = load_releases(run_dir / "nodes" / "cloud")
    by_model: dict[str, set[str]] = {}
    for r in releases:
        by_model.setdefault(r.model, set()).add(r.name)
    versions = {
        "thermo-100": ["1.0.0", "1.1.0", "2.0.0"],
        "lamp-7": ["1.0.0", "1.1.0", "1.2.0", "2.0.0"],
    }
    for model, expected in versions.items():
        assert by_model[model] == {
            f"{v}{s}" for v in expected for s in ("", "-tampered", "-forged", "-other-model")
        }
    vendor_key = minted.vendors["acme"].public_key
    for r in releases:
        if r.name in versions[r.model]:
            manifest = firmware.verify_manifest(r.manifest, vendor_key)
            assert (manifest.vendor, manifest.model, manifest.version) == ("acme", r.model, r.name)


def test_things_get_the_vendor_ca_and_the_cloud_uri(
    run: tuple[Plan, Path, manufacture.Minted],
) -> None:
    plan, run_dir, minted = run
    nodes = {n.name: n for n in plan.nodes}
    cloud_address = next(
        i.ipv6.split("/")[0] for i in nodes["cloud"].config.interfaces if i.network == "internet"
    )
    for name in ("thermostat-01", "lamp-01"):
        attributes = nodes[name].config.attributes
        assert attributes["vendor-cloud-uri"] == f"coap://[{cloud_address}]:5683"
        cert = load_cert((run_dir / "nodes" / name / M.THING_VENDOR_CA).read_bytes(), "CA")
        assert cert == minted.vendors["acme"].ca_cert
    # Only the cloud holds releases.
    assert not (run_dir / "nodes" / "backend" / M.FIRMWARE_DIR).exists()
