"""Ownership transfer on the controller: the voucher chain is extended by its current owner."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from testbed import manufacture, pki, rundir
from testbed.phases import transfer as T
from testbed.plan import make_plan
from testbed.topology import load_topology

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run") / "ans-transfer"
    topology = ROOT / "topologies" / "two-operators.yaml"
    plan = make_plan(load_topology(topology), "ans-transfer", str(topology), str(path))
    rundir.write_run_dir(plan, path, topology.read_text())
    manufacture.mint(plan, path)
    return path


def owner_key(run_dir: Path, domain: str) -> pki.keys.PublicKey:
    return pki.load_domain(run_dir / "pki" / "domains" / domain).owner_public_key


def verify(run_dir: Path, thing: str, chain: pki.Voucher) -> pki.keys.PublicKey:
    device = pki.load_device(run_dir / "pki" / "things" / thing)
    vendor = pki.load_vendor(run_dir / "pki" / "vendors" / device.vendor)
    return pki.verify_voucher_chain(chain, vendor.public_key, device.serial, device.public_key)


def test_transfer_extends_the_chain_to_the_new_owner(run_dir: Path) -> None:
    thing = "co2-01"
    result = T.transfer(run_dir, thing, "lighting")
    assert (result.from_domain, result.to_domain, result.changed) == ("hvac", "lighting", True)
    assert result.links == 2
    stored = pki.load_voucher(run_dir / "pki" / "things" / thing)
    assert stored is not None
    assert base64.b64decode(result.voucher) == stored.to_bytes()
    # The chain verifies from the vendor to the lighting contractor, not to the HVAC one.
    assert pki.keys.same(verify(run_dir, thing, stored), owner_key(run_dir, "lighting"))
    assert pki.voucher_names_owner(stored, owner_key(run_dir, "lighting"))
    assert not pki.voucher_names_owner(stored, owner_key(run_dir, "hvac"))
    tc = result.trust_center
    assert tc.node == "tc-lighting"
    assert tc.uri.startswith("coap://[") and tc.uri.endswith("]:5683")
    tc_ccs = run_dir / "nodes" / "tc-lighting" / "tc" / "tc.ccs.cbor"
    assert base64.b64decode(tc.ccs) == tc_ccs.read_bytes()


def test_transfer_is_idempotent_and_goes_back(run_dir: Path) -> None:
    thing = "thermostat-02"
    first = T.transfer(run_dir, thing, "lighting")
    again = T.transfer(run_dir, thing, "lighting")
    assert first.changed and not again.changed
    assert again.voucher == first.voucher and again.links == 2
    back = T.transfer(run_dir, thing, "hvac")
    assert back.changed and back.links == 3 and back.from_domain == "lighting"
    chain = pki.load_voucher(run_dir / "pki" / "things" / thing)
    assert chain is not None
    assert pki.keys.same(verify(run_dir, thing, chain), owner_key(run_dir, "hvac"))


def test_check_writes_nothing(run_dir: Path) -> None:
    path = run_dir / "pki" / "things" / "lamp-01" / "voucher.cbor"
    before = path.read_bytes()
    result = T.transfer(run_dir, "lamp-01", "hvac", check=True)
    assert result.changed and result.links == 2
    assert path.read_bytes() == before


def test_refusals(run_dir: Path) -> None:
    with pytest.raises(T.TransferError, match="unknown domain 'plumbing'"):
        T.transfer(run_dir, "lamp-02", "plumbing")
    with pytest.raises(T.TransferError, match="is the thing name right"):
        T.transfer(run_dir, "no-such-thing", "hvac")
    with pytest.raises(T.TransferError, match="does not exist"):
        T.transfer(run_dir / "nowhere", "lamp-02", "hvac")


def test_command_line(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--run-dir", str(run_dir), "--thing", "lamp-02", "--to", "hvac"]
    assert T.main([*argv, "--check"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["changed"] is True and shown["trust_center"]["node"] == "tc-hvac"
    assert T.main(["--run-dir", str(run_dir), "--thing", "lamp-02", "--to", "x"]) == 1
    failed = json.loads(capsys.readouterr().out)
    assert failed["failed"] is True and "unknown domain" in failed["msg"]


def test_the_owner_comes_from_the_voucher_chain_not_from_the_thing(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thing = "occupancy-01"  # planned in hvac; whatever it reports, the chain decides
    before = T.current_owner(run_dir, thing)
    assert (before.domain, before.by, before.trust_center.node) == ("hvac", "voucher", "tc-hvac")
    T.transfer(run_dir, thing, "lighting")
    after = T.current_owner(run_dir, thing)
    assert (after.domain, after.links, after.trust_center.node) == ("lighting", 2, "tc-lighting")
    assert T.main(["--run-dir", str(run_dir), "--thing", thing, "--owner"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["domain"], shown["serial"]) == ("lighting", after.serial)
    T.transfer(run_dir, thing, "hvac")  # back, for the other tests of this module


def test_the_playbooks_act_at_the_owner_of_record() -> None:
    # The acting trust center is the owner lookup's, never testbed_trust_centers[<reported>].
    for name in ("install.yml", "recommission.yml"):
        text = (ROOT / "playbooks" / name).read_text()
        assert "--owner" in text and "owner.trust_center.node" in text
        assert "testbed_trust_centers[current.domain]" not in text
        assert "thing.domain | default" not in text
