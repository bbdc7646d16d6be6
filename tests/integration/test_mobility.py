"""Things that move between PANs, against real containers: two floors, each a radio PAN behind
its own border router.

A lamp (edhoc-oscore) moves to the other floor: its address is the new PAN's, the new router's
medium has it and the old one's not, the trust center records the new address and the backend
reads it there. A move to a PAN the building does not have is refused with exit 2 and a message
naming it, and nothing changes. The scenario move-between-pans runs in its short version (an
edhoc-oscore and a dtls-psk thing move) and its reports are parsed.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.engines.docker import DockerEngine
from tests.integration.conftest import ROOT, remove_run, run_cli
from tests.integration.nodes import action, metrics, sql, state, wait_for

pytestmark = pytest.mark.integration
TOPOLOGY = ROOT / "tests" / "fixtures" / "topologies" / "integration" / "mobility.yaml"
RUN = "mob-it-mobility"


@pytest.fixture(scope="module")
def building(docker_client, node_image, cli_env) -> Iterator[tuple[DockerEngine, dict[str, str]]]:  # type: ignore[no-untyped-def]
    remove_run(docker_client, RUN)
    up = run_cli(["up", "-t", str(TOPOLOGY), "--run", RUN], cli_env, timeout=900)
    assert "commissioned: 2 of 2 things" in up.stdout, up.stdout
    try:
        yield DockerEngine(docker_client), cli_env
    finally:
        run_cli(["down", "--run", RUN], cli_env, check=False)
        remove_run(docker_client, RUN)


def _status(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {
        s["node"]: s for s in json.loads(run_cli(["status", "--run", RUN, "--json"], env).stdout)
    }


def _prefix(status: dict[str, Any], pan: str) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Interface(status["data_addresses"][f"pan-{pan}"] + "/64").network


def _read_at(backend: DockerEngine, thing: str, address: str, since: float) -> bool:
    listing = state(backend, RUN, "backend")["backend"]["things"]
    return any(
        entry["name"] == thing
        and entry["address"] == address
        and any(r["outcome"] == "ok" and r["at"] > since for r in entry["last"].values())
        for entry in listing.values()
    )


def test_a_moved_thing_is_read_by_the_backend_at_its_new_address(building) -> None:  # type: ignore[no-untyped-def]
    backend, env = building
    before = _status(env)
    floor2 = _prefix(before["br2"], "floor2")
    started = time.time()
    moved = json.loads(
        run_cli(["move", "lamp-101", "--pan", "floor2", "--run", RUN, "--json"], env).stdout
    )
    new = ipaddress.IPv6Address(moved["address"])
    assert (moved["old_pan"], moved["pan"], moved["router"]) == ("floor1", "floor2", "br2")
    assert new in floor2 and moved["old_address"] != moved["address"]
    # Re-registration: one handshake of its profile, its cost measured.
    assert moved["profile"] == "edhoc-oscore" and moved["handshakes"] >= 1
    assert moved["lifecycle"] == "operational" and moved["bootstrap"]["bytes"] > 500
    # The backend reads it there (checked here again, not only by the use case's wait) ...
    wait_for(
        lambda: _read_at(backend, "lamp-101", str(new), started), 60, "a read at the new address"
    )
    # ... because the trust center recorded the new address.
    assert sql(
        backend, RUN, "tc-facility", "SELECT address FROM things WHERE name = 'lamp-101'"
    ) == [[str(new)]]
    # The new router's medium has the station; the old one's not.
    br2 = action(backend, RUN, "br2", "link-show")
    br1 = action(backend, RUN, "br1", "link-show")
    assert "lamp-101" in br2["floor2"]["endpoints"]
    assert "lamp-101" not in br1["floor1"]["endpoints"]
    # status shows where it is now; the thing says so too.
    after = _status(env)["lamp-101"]
    assert after["attributes"]["pan"] == "floor2"
    assert after["attributes"]["planned-pan"] == "floor1"
    assert after["data_addresses"] == {"pan-floor2": str(new)}
    assert state(backend, RUN, "lamp-101")["pan"] == "floor2"
    counted = metrics(backend, RUN, "lamp-101", "testbed_thing_move")
    assert sum(v for k, v in counted.items() if k.startswith("testbed_thing_moves_total")) == 1
    assert sum(v for k, v in counted.items() if "move_handshakes_total" in k) >= 1


def test_a_move_to_an_unknown_pan_is_refused_and_nothing_changes(building) -> None:  # type: ignore[no-untyped-def]
    backend, env = building
    before = _status(env)["lamp-201"]
    thing_before = state(backend, RUN, "lamp-201")
    refused = run_cli(["move", "lamp-201", "--pan", "floor9", "--run", RUN], env, check=False)
    assert refused.returncode == 2
    out = refused.stdout + refused.stderr
    assert "has no PAN 'floor9'" in out and "floor1, floor2" in out
    after = _status(env)["lamp-201"]
    assert (after["attributes"], after["addresses"]) == (before["attributes"], before["addresses"])
    thing_after = state(backend, RUN, "lamp-201")
    assert thing_after["generation"] == thing_before["generation"]
    assert thing_after["pan"] == "floor2" and "placement" not in thing_after


def test_the_short_scenario_moves_things_of_two_profiles(  # type: ignore[no-untyped-def]
    docker_client, node_image, cli_env, tmp_path: Path
) -> None:
    proc = run_cli(
        ["scenario", "run", "move-between-pans", "--short", "--out", str(tmp_path),
         "--run-prefix", "mob"],
        cli_env,
        timeout=1200,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    data = json.loads((tmp_path / "results.json").read_text())
    (scenario,) = data["scenarios"]
    (point,) = scenario["points"]
    values = {m["name"]: m["value"] for m in point["measurements"]}
    for name in ("edhoc", "psk"):
        assert values[f"{name}.ok"] == 1.0
        assert values[f"{name}.handshakes"] >= 1
        assert values[f"{name}.read_again_s"] > 0
        assert values[f"{name}.bytes"] > 500
    # a PSK handshake is DTLS: more datagrams than EDHOC's three messages
    assert values["psk.datagrams"] > values["edhoc.datagrams"]
    assert all(e["passed"] for e in point["expectations"])
    flt = {"label": [f"testbed.run={scenario['run']}"]}
    assert not docker_client.containers.list(all=True, filters=flt)
