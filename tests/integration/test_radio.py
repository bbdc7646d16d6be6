"""The radio medium against real containers: a PAN with ``medium: radio`` (topologies/radio.yaml).

Every IPv6 packet of the things crosses the emulated 802.15.4 medium in the border router (TUN ->
IPHC/RFC 4944 fragments -> ZEP -> medium -> ZEP -> reassembly -> TUN): the things commission,
the backend reads them, bootstraps are fragmented and their frames are recorded, commissioning
survives 10% frame loss, and 100% loss cuts the PAN off until ``link-reset``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.engines.docker import DockerEngine
from tests.integration.conftest import ROOT, remove_run, run_cli
from tests.integration.nodes import action, metrics, state, wait_for

pytestmark = pytest.mark.integration
RUN = "radio-it"
THINGS = ("thermostat-01", "lamp-01", "lamp-02")
PAN = "floor1"


@pytest.fixture(scope="module")
def radio(docker_client, node_image, cli_env) -> Iterator[DockerEngine]:  # type: ignore[no-untyped-def]
    remove_run(docker_client, RUN)
    up = run_cli(["up", "-t", str(ROOT / "topologies" / "radio.yaml"), "--run", RUN], cli_env)
    assert "commissioned: 3 of 3 things" in up.stdout, up.stdout
    try:
        yield DockerEngine(docker_client)
    finally:
        run_cli(["down", "--run", RUN], cli_env, check=False)
        remove_run(docker_client, RUN)


def pan_state(backend: DockerEngine, node: str) -> dict[str, Any]:
    answer = backend.node_state(RUN, node)
    assert answer is not None and "radio" in answer, answer
    radio: dict[str, Any] = answer["radio"][PAN]
    return radio


def medium_nodes(backend: DockerEngine) -> dict[str, dict[str, Any]]:
    nodes: dict[str, dict[str, Any]] = pan_state(backend, "br1")["medium"]["nodes"]
    return nodes


def test_every_thing_is_operational_over_the_radio(radio: DockerEngine, cli_env) -> None:  # type: ignore[no-untyped-def]
    status = json.loads(run_cli(["status", "--run", RUN, "--json"], cli_env).stdout)
    assert {s["node"]: s["lifecycle"] for s in status if s["role"] == "thing"} == dict.fromkeys(
        THINGS, "operational"
    )
    br = pan_state(radio, "br1")
    assert set(br["endpoints"]) == set(THINGS)  # each thing's radio registered with the medium
    for thing in THINGS:
        mine = pan_state(radio, thing)
        assert mine["tun"]["name"] == "lowpan0" and mine["tun"]["read"] > 0
        report = state(radio, RUN, thing)["bootstrap"]
        assert report["outcome"] == "success"
        # The bootstrap crossed the medium, and its frames are in its report.
        assert report["radio"]["frames_sent"] >= report["radio"]["packets_sent"] >= 3
        assert report["radio"]["frames_received"] > report["radio"]["packets_received"]
    # The router's station fragmented bootstrap answers (certificate, contexts: > 1 frame).
    assert max(int(k) for k in br["station"]["fragments_per_packet"]) > 1
    nodes = medium_nodes(radio)
    assert all(nodes[n]["frames_received"] > 0 and nodes[n]["transmissions"] > 0 for n in THINGS)


def test_radio_metrics_moved(radio: DockerEngine) -> None:
    m = metrics(radio, RUN, "br1", "testbed_radio_")
    assert m[f'testbed_radio_frames_sent_total{{node="br1",pan="{PAN}"}}'] > 10
    assert m[f'testbed_radio_frames_received_total{{node="thermostat-01",pan="{PAN}"}}'] > 0
    assert m[f'testbed_radio_airtime_seconds_total{{node="br1",pan="{PAN}"}}'] > 0
    count = m[f'testbed_radio_fragments_per_packet_count{{node="br1",pan="{PAN}"}}']
    single = m[f'testbed_radio_fragments_per_packet_bucket{{le="1",node="br1",pan="{PAN}"}}']
    assert count > single  # some packets took more than one frame
    thing = metrics(radio, RUN, "lamp-01", "testbed_radio_")
    assert thing['testbed_radio_bootstrap_frames_count{direction="sent"}'] >= 1
    assert thing['testbed_radio_bootstrap_frames_sum{direction="sent"}'] >= 3


def test_the_backend_reads_every_thing_over_the_radio(radio: DockerEngine) -> None:
    def all_read() -> bool:
        things = state(radio, RUN, "backend")["backend"]["things"]
        return len(things) == 3 and all(
            any(r.get("outcome") == "ok" and r.get("protected") for r in t["last"].values())
            for t in things.values()
        )

    wait_for(all_read, 60, "the backend to read all three things")
    answer = action(radio, RUN, "backend", "read", thing="thermostat-01", resource="temperature")
    assert answer["code"] == "2.05" and answer["protected"] is True


def rebootstrap_all(backend: DockerEngine) -> dict[str, dict[str, Any]]:
    started = {t: state(backend, RUN, t)["bootstrap"]["at"] for t in THINGS}
    for thing in THINGS:
        action(backend, RUN, thing, "bootstrap")

    def done() -> dict[str, dict[str, Any]] | None:
        reports = {}
        for thing in THINGS:
            s = state(backend, RUN, thing)
            if s["lifecycle"] != "operational" or s["bootstrap"]["at"] == started[thing]:
                return None
            reports[thing] = s["bootstrap"]
        return reports

    reports: dict[str, dict[str, Any]] = wait_for(done, 120, "every thing to bootstrap again")
    return reports


def test_commissioning_completes_at_ten_percent_frame_loss(radio: DockerEngine) -> None:
    before = {n: v["dropped"].get("channel-loss", 0) for n, v in medium_nodes(radio).items()}
    assert action(radio, RUN, "br1", "link-set", loss="10%")["loss"] == pytest.approx(0.1)
    try:
        reports = rebootstrap_all(radio)
        for report in reports.values():
            assert report["outcome"] == "success"
            assert report["radio"]["frames_sent"] >= 3  # frames per bootstrap recorded
        after = {n: v["dropped"].get("channel-loss", 0) for n, v in medium_nodes(radio).items()}
        assert sum(after.values()) > sum(before.values())  # the loss was real
        assert pan_state(radio, "br1")["default_link"]["loss"] == pytest.approx(0.1)
    finally:
        action(radio, RUN, "br1", "link-reset")
    assert pan_state(radio, "br1")["default_link"]["loss"] == 0.0


def test_full_loss_stops_the_pan_and_reset_restores_it(radio: DockerEngine) -> None:
    action(radio, RUN, "br1", "link-set", loss=1)
    try:
        time.sleep(0.5)  # frames already on the air finish
        received = {n: v["frames_received"] for n, v in medium_nodes(radio).items()}
        exhausted = sum(
            v["dropped"].get("retries-exhausted", 0) for v in medium_nodes(radio).values()
        )
        # The backend keeps polling every thing; nothing gets through.
        answer = action(radio, RUN, "backend", "read", thing="lamp-01", resource="light")
        assert answer["outcome"] == "timeout", answer
        nodes = medium_nodes(radio)
        assert {n: v["frames_received"] for n, v in nodes.items()} == received
        assert sum(v["dropped"].get("retries-exhausted", 0) for v in nodes.values()) > exhausted
    finally:
        action(radio, RUN, "br1", "link-reset")

    def read_ok() -> bool:
        answer = action(radio, RUN, "backend", "read", thing="lamp-01", resource="light")
        return bool(answer["outcome"] == "ok")

    # CoAP exchanges that were retransmitting under 100% loss delay the first success a little.
    wait_for(read_ok, 90, "a read through the restored PAN", interval=1)


def refused(backend: DockerEngine) -> dict[str, float]:
    m = metrics(backend, RUN, "br1", "testbed_radio_datagrams_refused_total")
    return {k.split('cause="')[1].split('"')[0]: v for k, v in m.items() if "cause=" in k}


def test_a_spoofing_flooding_guest_station_cannot_stop_commissioning(  # type: ignore[no-untyped-def]
    radio: DockerEngine, docker_client, node_image
) -> None:
    """A real container on the PAN's carrier network plays a hostile guest station
    (tests/integration/guest_station.py): it claims lamp-01's EUI-64 by HELLO, sends frames as
    lamp-01, and floods the router with first fragments of 2,047-byte datagrams from invented
    sources. Every thing still commissions again under the attack; the spoofed datagrams are
    refused and counted by cause; lamp-01 stays bound to its own carrier endpoint."""
    carrier = next(
        n
        for n in docker_client.networks.list(filters={"label": [f"testbed.run={RUN}"]})
        if n.name.endswith("pan-floor1")
    )
    hub = next(s for s in radio.status(RUN) if s.node == "br1").addresses["pan-floor1"]
    lamp_carrier = next(s for s in radio.status(RUN) if s.node == "lamp-01").addresses["pan-floor1"]
    router_short = pan_state(radio, "br1")["short"].removeprefix("0x")
    victim_short = pan_state(radio, "lamp-01")["short"].removeprefix("0x")
    script = (Path(__file__).parent / "guest_station.py").read_text()
    before = refused(radio)
    guest = docker_client.containers.run(
        node_image,
        entrypoint=[
            "python3",
            "-c",
            script,
            hub,
            router_short,
            victim_short,
            "240",
            "15",
            "0xabcd",
        ],
        network=carrier.name,
        name=f"radio-guest-{uuid.uuid4().hex[:8]}",
        labels={"testbed.test": "radio-guest"},
        detach=True,
    )
    try:
        wait_for(
            lambda: "ll-0a0b0c0d0e0f0001" in pan_state(radio, "br1")["endpoints"],
            30,
            "the guest station to join the medium",
        )
        reports = rebootstrap_all(radio)
        assert {t: r["outcome"] for t, r in reports.items()} == dict.fromkeys(THINGS, "success")
        br = pan_state(radio, "br1")
        assert br["endpoints"]["lamp-01"] == f"[{lamp_carrier}]:17754"
        # The router's buffers hold at most the guest's own share of its flood.
        held = br["station"]["reassembly"]["held_by"]
        assert 0 < held.get("ll-0a0b0c0d0e0f0001", 0) <= 2 * 1280, held
        assert set(held) <= {"ll-0a0b0c0d0e0f0001", *THINGS}, held  # no invented source
        assert guest.reload() is None and guest.status == "running"  # attacking all along

        def counted() -> dict[str, float] | None:
            now = refused(radio)
            grown = {
                c: now.get(c, 0) - before.get(c, 0) for c in ("foreign-sender", "station-hijack")
            }
            return grown if all(v > 0 for v in grown.values()) else None

        grown = wait_for(counted, 30, "the refusals in testbed_radio_datagrams_refused_total")
        assert grown["foreign-sender"] > 100, grown
    finally:
        guest.remove(force=True)
