"""Links against real containers (topologies/radio.yaml): IP link impairments
changed live through `testbed link`, their metrics, and a capture of a radio PAN bootstrap that
tshark decodes.

The backend reads a thing through the internet link (backend -> br1 eth2 -> PAN): with
``--delay 50ms`` each direction of the router's internet interface waits 50 ms, so the read's
round trip grows by about 100 ms; ``--loss 100%`` stops it; ``reset`` restores it.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.engines.docker import DockerEngine
from tests.integration.conftest import ROOT, RUN_PREFIX, TESTBED, remove_run, run_cli
from tests.integration.nodes import action, metrics, state, wait_for

pytestmark = pytest.mark.integration
RUN = f"{RUN_PREFIX}link-{uuid.uuid4().hex[:6]}"
THING = "thermostat-01"
TSHARK = shutil.which("tshark")
MALFORMED = 0x07000000  # PI_MALFORMED, the expert group of _ws.malformed


@pytest.fixture(scope="module")
def run(docker_client, node_image, cli_env) -> Iterator[tuple[DockerEngine, dict[str, str]]]:  # type: ignore[no-untyped-def]
    remove_run(docker_client, RUN)
    up = run_cli(["up", "-t", str(ROOT / "topologies" / "radio.yaml"), "--run", RUN], cli_env)
    assert "commissioned: 3 of 3 things" in up.stdout, up.stdout
    # `testbed up` says which implementation shapes each IP link.
    for link in ("backbone", "internet"):
        assert f"link {link}: " in up.stdout, up.stdout
    try:
        backend = DockerEngine(docker_client)
        wait_for(lambda: read(backend)["outcome"] == "ok", 60, "a first read of the thing")
        yield backend, cli_env
    finally:
        run_cli(["down", "--run", RUN], cli_env, check=False)
        remove_run(docker_client, RUN)


def read(backend: DockerEngine) -> dict[str, Any]:
    answer: dict[str, Any] = action(
        backend, RUN, "backend", "read", thing=THING, resource="temperature"
    )
    return answer


def latencies(backend: DockerEngine, n: int = 9) -> list[float]:
    out = []
    for _ in range(n):
        answer = read(backend)
        assert answer["outcome"] == "ok", answer
        out.append(float(answer["latency_s"]))
    return out


def link(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["link", *args, "--run", RUN], env)


def shown(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    rows = json.loads(link(env, "show", "--json").stdout)
    return {row["link"]: row for row in rows}


def test_link_show_lists_every_link(run) -> None:  # type: ignore[no-untyped-def]
    _, env = run
    rows = shown(env)
    assert set(rows) == {"backbone", "internet", "pan-floor1"}
    for name in ("backbone", "internet"):
        assert rows[name]["kind"] == "ip"
        assert rows[name]["implementation"] in ("netem", "userspace-tap")
        assert rows[name]["impairment"] == "none"
    assert rows["pan-floor1"]["kind"] == "radio"
    assert rows["pan-floor1"]["impairment"] == "frame loss 0%, MAC retries 3"
    human = link(env, "show").stdout
    assert "pan-floor1" in human and "radio medium" in human


def test_delay_raises_the_read_latency_by_a_round_trip(run) -> None:  # type: ignore[no-untyped-def]
    backend, env = run
    before = statistics.median(latencies(backend))
    out = link(env, "set", "internet", "--delay", "50ms").stdout
    assert "delay 50ms" in out
    try:
        assert shown(env)["internet"]["impairment"] == "delay 50ms"
        after = statistics.median(latencies(backend))
    finally:
        link(env, "reset", "internet")
    print(f"read latency median {before * 1000:.1f} -> {after * 1000:.1f} ms", file=sys.stderr)
    # 2 x 50 ms; the radio PAN behind it varies by a few ms per read (medians of 9 reads).
    assert 0.085 <= after - before <= 0.125, (before, after)
    assert statistics.median(latencies(backend, 5)) < before + 0.03


def test_full_loss_stops_reads_and_reset_restores_them(run) -> None:  # type: ignore[no-untyped-def]
    backend, env = run
    link(env, "set", "internet", "--loss", "100%")
    try:
        answer = read(backend)
        assert answer["outcome"] == "timeout", answer
    finally:
        link(env, "reset", "internet")
    wait_for(lambda: read(backend)["outcome"] == "ok", 60, "a read after the reset", interval=1)
    # Counted on the router: what the shaper saw and what it dropped (testbed_link_packets).
    counts = shown(env)["internet"]["counts"]
    assert counts.get("shaped", 0) > 0 and counts.get("dropped", 0) > 0, counts
    series = metrics(backend, RUN, "br1", "testbed_link_")
    assert series['testbed_link_packets_total{action="dropped",link="internet"}'] > 0
    assert series['testbed_link_packets_total{action="shaped",link="internet"}'] > 0


def test_a_pan_link_is_set_and_reset_through_the_cli(run) -> None:  # type: ignore[no-untyped-def]
    _, env = run
    assert "frame loss 20%" in link(env, "set", "pan-floor1", "--loss", "20%").stdout
    try:
        assert shown(env)["pan-floor1"]["impairment"].startswith("frame loss 20%")
    finally:
        link(env, "reset", "pan-floor1")
    assert shown(env)["pan-floor1"]["impairment"].startswith("frame loss 0%")
    bad = run_cli(["link", "set", "pan-floor1", "--delay", "5ms", "--run", RUN], env, check=False)
    assert bad.returncode == 2 and "apply to IP links" in bad.stderr


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (Debian package tshark)")
def test_capture_of_a_bootstrap_decodes_in_tshark(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backend, env = run
    pcap = tmp_path / "bootstrap.pcap"
    capture = subprocess.Popen(
        [*TESTBED, "capture", "floor1", "-o", str(pcap), "--duration", "15", "--run", RUN],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(5)  # the capture action is running on the router by now
    started = state(backend, RUN, "lamp-01")["bootstrap"]["at"]
    action(backend, RUN, "lamp-01", "bootstrap")
    out, err = capture.communicate(timeout=90)
    assert capture.returncode == 0, err
    report = state(backend, RUN, "lamp-01")["bootstrap"]
    assert report["at"] != started and report["outcome"] == "success", report
    context = out.split("6lowpan.context0:")[1].split()[0]
    assert TSHARK is not None
    fields = subprocess.run(
        [TSHARK, "-r", str(pcap), "-n", "-o", f"6lowpan.context0:{context}",
         "-T", "fields", "-E", "separator=|", "-E", "aggregator=;", "-e", "frame.protocols",
         "-e", "coap.opt.uri_path", "-e", "_ws.expert.message", "-e", "_ws.expert.group"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.splitlines()  # fmt: skip
    rows = [line.split("|") for line in fields]
    assert len(rows) > 20
    # No malformed packet. Wireshark 4.0 predates RFC 9668 and files the EDHOC option (CoAP
    # option 21, which carries EDHOC message_3 in the combined EDHOC + OSCORE request) under
    # "Malformed: Invalid Option Number 21"; every other malformed finding fails the test.
    combined = 0
    for protocols, _, messages, groups in rows:
        for message, group in zip(messages.split(";"), groups.split(";"), strict=True):
            if group and int(group) == MALFORMED:
                assert message == "Invalid Option Number 21", (protocols, message)
                combined += 1
    protocols = {p for r in rows for p in r[0].split(":")}
    assert {"zep", "wpan", "6lowpan", "ipv6", "udp", "coap", "oscore"} <= protocols, protocols
    # EDHOC: message_1 and message_2 are CoAP to /.well-known/edhoc (Wireshark 4.0 has no EDHOC
    # dissector: their CBOR sequences show as payload); message_3 rides in an OSCORE request.
    assert any(r[1].split(";") == [".well-known", "edhoc"] for r in rows), [r[1] for r in rows]
    assert combined >= 1
    print(f"capture: {len(rows)} frames, protocols {sorted(protocols)}", file=sys.stderr)
