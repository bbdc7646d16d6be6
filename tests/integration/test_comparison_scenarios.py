"""The protocol-comparison scenarios, short versions, end to end against real Docker through
the CLI, and a mixed building commissioned from scratch at 10 % frame loss.

profile-comparison: one thing per profile bootstraps again at 0 % and 10 % frame loss; at 0 %
the handshakes match the published sizes (the scenario's own expectations).
proxy-end-to-end-vs-hop-by-hop: what the border router's proxy reads in clear, and what a
tampering proxy achieves, OSCORE end to end against DTLS hop by hop.
group-command: one group request against unicast writes to two lamps, with a revoked third
lamp that must not act on it.

Lossy commissioning: tests/fixtures/topologies/integration/lossy-mixed.yaml (two things of
each profile, PAN loss 10 % from the start) is brought up and every thing commissions within
the deadline; the losses and retransmissions it took are read from the nodes' metrics.
"""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from testbed.engines.docker import DockerEngine
from tests.integration.conftest import ROOT, remove_run, run_cli
from tests.integration.nodes import metrics, state

pytestmark = pytest.mark.integration
SCENARIOS = ["profile-comparison", "proxy-end-to-end-vs-hop-by-hop", "group-command"]
PROFILES = ("edhoc-oscore", "dtls-cert", "dtls-psk")
LOSSY = ROOT / "tests" / "fixtures" / "topologies" / "integration" / "lossy-mixed.yaml"
THINGS = [f"{p}-{n:02d}" for p in ("edhoc", "cert", "psk") for n in (1, 2)]
COMMISSION_DEADLINE_S = 900  # a bound for a loaded machine, not a duration under test


@pytest.fixture(scope="module")
def reports(docker_client, node_image, cli_env, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    out: Path = tmp_path_factory.mktemp("reports")
    proc = run_cli(
        ["scenario", "run", *SCENARIOS, "--short", "--out", str(out), "--run-prefix", "cmp"],
        cli_env,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    return out


def _points(reports: Path, name: str) -> list[dict[str, Any]]:
    data = json.loads((reports / "results.json").read_text())
    return list(next(s for s in data["scenarios"] if s["name"] == name)["points"])


def _values(point: dict[str, Any]) -> dict[str, Any]:
    return {m["name"]: m["value"] for m in point["measurements"]}


def test_every_point_passes_in_junit(reports: Path) -> None:
    root = ET.parse(reports / "junit.xml").getroot()
    assert (root.get("failures"), root.get("errors")) == ("0", "0")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == set(SCENARIOS)
    cases = [c.get("name") for c in suites["profile-comparison"].iter("testcase")]
    assert cases == ["loss=0.0, repeat 0", "loss=0.1, repeat 0"]


def test_profiles_are_measured_side_by_side(reports: Path) -> None:
    points = _points(reports, "profile-comparison")
    assert [p["point"] for p in points] == [{"loss": 0.0}, {"loss": 0.1}]
    for point in points:
        values = _values(point)
        assert all(e["passed"] for e in point["expectations"]), point["expectations"]
        for profile in PROFILES:
            assert values[f"boot.{profile}.success_rate"] == 1.0
            for figure in ("bytes", "datagrams", "frames", "round_trips", "duration_s"):
                assert values[f"boot.{profile}.{figure}"] > 0, (profile, figure)
            assert values[f"boot.{profile}.retransmissions"] >= 0
        # a certificate handshake carries both certificates: the largest of the three
        first = {p: values[f"boot.{p}.handshake_bytes_first"] for p in PROFILES}
        assert first["dtls-cert"] > first["dtls-psk"] > first["edhoc-oscore"]
        assert values["boot.dtls-cert.bytes"] > values["boot.edhoc-oscore.bytes"]
    clean = _values(points[0])
    assert clean["boot.edhoc-oscore.msg.edhoc_message_2"] == 45
    assert clean["boot.dtls-cert.handshake_datagrams_first"] == 6


def test_the_proxy_reads_hop_by_hop_only_and_tampering_is_caught_end_to_end(
    reports: Path,
) -> None:
    (point,) = _points(reports, "proxy-end-to-end-vs-hop-by-hop")
    values = _values(point)
    assert all(e["passed"] for e in point["expectations"]), point["expectations"]
    assert values["e2e.plaintext_request_bytes"] == 0 == values["e2e.plaintext_response_bytes"]
    assert values["e2e.opaque_request_bytes"] > 0
    assert values["hbh.plaintext_request_bytes"] > 0 and values["hbh.plaintext_response_bytes"] > 0
    # end to end: refused by the lamp, state kept; hop by hop: acted on, reported as done
    assert values["lamp.refused_invalid.after"] > values["lamp.refused_invalid.before"]
    assert (values["e2e.lamp_after.value"], values["hbh.lamp_after.value"]) == (50, 20)
    assert values["hbh.tampered_write.value"] == 80


def test_a_group_command_reaches_members_and_not_the_revoked(reports: Path) -> None:
    points = _points(reports, "group-command")
    assert [p["point"] for p in points] == [{"loss": 0.0}, {"loss": 0.2}]
    for point in points:
        values = _values(point)
        assert all(e["passed"] for e in point["expectations"]), point["expectations"]
        assert values["group.outsiders_acted"] == 0 and values["group.generation"] >= 2
        assert values["revoked.group_generation"] is None
        assert values["unicast.reached"] == 1.0
    clean = _values(points[0])
    assert clean["group.reached"] == 1.0 and clean["group.time_to_all_s"] is not None
    # the medium carried the command (plus whatever else ran then: no bound on the difference)
    assert clean["group.transmissions"] > 0 and clean["unicast.transmissions"] > 0
    assert clean["unicast.coap_latency_max_s"] > 0


def test_every_comparison_run_is_gone(reports: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    data = json.loads((reports / "results.json").read_text())
    for scenario in data["scenarios"]:
        assert scenario["run"].startswith("cmp-")
        flt = {"label": [f"testbed.run={scenario['run']}"]}
        assert not docker_client.containers.list(all=True, filters=flt), scenario["run"]


def test_a_mixed_building_commissions_from_scratch_at_ten_percent_loss(  # type: ignore[no-untyped-def]
    docker_client, node_image, cli_env
) -> None:
    run = f"cmp-lossy-{uuid.uuid4().hex[:6]}"
    remove_run(docker_client, run)
    try:
        up = run_cli(
            ["up", "-t", str(LOSSY), "--run", run,
             "--commission-timeout", str(COMMISSION_DEADLINE_S)],
            cli_env,
            timeout=COMMISSION_DEADLINE_S + 300,
            check=False,
        )  # fmt: skip
        assert f"commissioned: {len(THINGS)} of {len(THINGS)} things" in up.stdout, (
            up.stdout[-4000:] + up.stderr[-2000:]
        )
        backend = DockerEngine(docker_client)
        profiles, retransmissions = {}, 0.0
        for thing in THINGS:
            seen = state(backend, run, thing)
            assert seen["lifecycle"] == "operational", (thing, seen.get("lifecycle_reason"))
            profiles[thing] = seen["bootstrap"]["profile"]
            counted = metrics(backend, run, thing, "testbed_bootstrap_retransmissions_total")
            retransmissions += sum(counted.values())
        assert sorted(set(profiles.values())) == sorted(PROFILES)
        dropped = metrics(backend, run, "br1", "testbed_radio_frames_dropped_total")
        channel_loss = sum(v for k, v in dropped.items() if 'cause="channel-loss"' in k)
        mac_retries = sum(metrics(backend, run, "br1", "testbed_radio_retries_total").values())
        assert channel_loss > 0, dropped  # the loss was really there while they commissioned
        print(
            f"\ncommissioned {len(THINGS)} things at 10 % frame loss: {channel_loss:.0f} frames"
            f" lost on the channel, {mac_retries:.0f} MAC retries, {retransmissions:.0f} protocol"
            " retransmissions (datagrams, the things' bootstrap counters)"
        )
    finally:
        run_cli(["down", "--run", run], cli_env, check=False)
        remove_run(docker_client, run)
