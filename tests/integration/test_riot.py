"""An unmodified RIOT node (tests/fixtures/interop/riot/) joins the default building's PAN.

The building runs as a user starts it (`testbed up`, default.yaml). The RIOT native process
runs on the host and reaches the PAN's medium (in br1) over the PAN's carrier network, from the
host's address on that Docker network (its gateway), as any ZEP station would; it is told
nothing but the channel and the PAN id. It learns the prefix and a default route from the
border router's 6LoWPAN-ND router advertisement, registers its address (ARO), pings the backend
on the Internet side and is pinged by it, both ways also with 600-byte payloads (fragmented on
the PAN); the capture of the medium during that exchange decodes in tshark without a malformed
packet. A second node joins while the PAN loses 10 % of its frames, within 30 s.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed.engines.docker import DockerEngine
from tests.integration.conftest import ROOT, TESTBED, remove_run, run_cli
from tests.integration.nodes import metrics, wait_for
from tests.riot import FIXTURE, RiotNode

pytestmark = pytest.mark.integration
PAN = "floor1"
CHANNEL, PAN_ID = 15, 0xABCD  # topologies/default.yaml
TSHARK = shutil.which("tshark")


@dataclass(frozen=True)
class Building:
    backend: DockerEngine
    run: str
    host: str  # the host's address on the PAN's carrier network
    medium: str  # br1's carrier address: the medium's ZEP endpoint
    prefix: ipaddress.IPv6Network  # the PAN /64
    server: str  # the backend's address on the Internet side


@pytest.fixture(scope="module")
def building(docker_client, node_image, cli_env, testbed_home: Path) -> Iterator[Building]:  # type: ignore[no-untyped-def]
    run = f"it-riot-{uuid.uuid4().hex[:6]}"
    remove_run(docker_client, run)
    topology = str(ROOT / "topologies" / "default.yaml")
    try:
        run_cli(["up", "-t", topology, "--run", run, "--no-wait"], cli_env)
        backend = DockerEngine(docker_client)
        plan = json.loads((testbed_home / "runs" / run / "plan.json").read_text())
        carrier = next(n for n in plan["networks"] if n["name"] == f"pan-{PAN}")
        nodes = {s.node: s for s in backend.status(run)}
        radio = wait_for(lambda: (backend.node_state(run, "br1") or {}).get("radio"), 120, "br1")
        yield Building(
            backend,
            run,
            host=carrier["gateway6"],
            medium=nodes["br1"].addresses[f"pan-{PAN}"],
            prefix=ipaddress.IPv6Interface(radio[PAN]["address"]).network,
            server=nodes["backend"].addresses["internet"],
        )
    finally:
        run_cli(["down", "--run", run], cli_env, check=False)
        remove_run(docker_client, run)


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def riot(b: Building, eui64: str) -> RiotNode:
    if not FIXTURE.exists():
        pytest.fail(f"{FIXTURE} is missing: the RIOT fixture belongs to the repository")
    return RiotNode((b.host, free_port(b.host)), (b.medium, 17754), eui64=eui64)


# Run inside the backend container: ICMPv6 echo requests with a payload of SIZE bytes to DST,
# over a raw socket (the kernel fills in the checksum); prints how many replies came back whole.
ECHO = """
import json, os, select, socket, struct, sys, time
dst, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
ident = os.getpid() & 0xFFFF
payload = bytes(i & 0xFF for i in range(size))
whole = 0
for seq in range(count):
    s.sendto(struct.pack('!BBHHH', 128, 0, 0, ident, seq) + payload, (dst, 0))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not select.select([s], [], [], deadline - time.monotonic())[0]:
            break
        data = s.recv(4096)
        if data[0] == 129 and struct.unpack('!HH', data[4:8]) == (ident, seq):
            whole += data[8:] == payload
            break
print(json.dumps({"sent": count, "whole": whole}))
"""


def backend_ping(b: Building, dst: str, size: int, count: int = 3) -> dict[str, int]:
    result = b.backend.exec(b.run, "backend", ["python3", "-c", ECHO, dst, str(size), str(count)])
    assert result.exit_code == 0, result.output
    answer: dict[str, int] = json.loads(result.output)
    return answer


def start_capture(
    b: Building, path: Path, seconds: float, env: dict[str, str]
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*TESTBED, "capture", PAN, "-o", str(path), "--duration", str(seconds), "--run", b.run],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def nd_state(b: Building) -> dict[str, Any]:
    radio = b.backend.node_state(b.run, "br1")
    assert radio is not None, "br1 did not answer GET /state"
    nd: dict[str, Any] = radio["radio"][PAN]["nd"]
    return nd


def test_riot_joins_pings_both_ways_fragmented_and_the_capture_decodes(
    building: Building, cli_env: dict[str, str], tmp_path: Path
) -> None:
    b = building
    pcap = tmp_path / "pan.pcap"
    with riot(b, "e6:d9:e6:03:f8:7d:6d:a7") as node:
        node.join(CHANNEL, PAN_ID)
        address = node.global_address(b.prefix, 30)
        assert address.endswith(":e4d9:e603:f87d:6da7"), address  # its EUI-64, U/L flipped
        assert "default via fe80::ff:fe00:10" in node.command("nib route")
        assert nd_state(b)["registrations"][address]["lladdr"] == "e6d9e603f87d6da7"

        capture = start_capture(b, pcap, 40, cli_env)
        try:
            # RIOT -> backend and back, small and fragmented.
            sent, got, out = node.ping(b.server, count=3, timeout=30)
            assert sent == 3 and got >= 1, out
            sent, got, out = node.ping(b.server, count=3, size=600, timeout=30)
            assert sent == 3 and got >= 1 and out.count("608 bytes from") == got, out
            # backend -> RIOT and back (the router finds RIOT by its registration).
            assert backend_ping(b, address, 56)["whole"] >= 1
            assert backend_ping(b, address, 600)["whole"] >= 1
        finally:
            out, _ = capture.communicate(timeout=120)
        assert capture.returncode == 0, out

    m = metrics(b.backend, b.run, "br1", "testbed_radio_nd_")
    assert m[f'testbed_radio_nd_registrations{{pan="{PAN}"}}'] >= 1
    assert m[f'testbed_radio_nd_registration_requests_total{{pan="{PAN}",status="success"}}'] >= 1
    assert m[f'testbed_radio_nd_router_advertisements_total{{kind="solicited",pan="{PAN}"}}'] >= 1

    if TSHARK is None:
        pytest.skip("tshark is not installed: the capture is not decoded")
    fields = ["_ws.malformed", "ipv6.src", "ipv6.dst", "icmpv6.type", "ipv6.plen"]
    cmd = [TSHARK, "-r", str(pcap), "-n", "-o", f"6lowpan.context0:{b.prefix}", "-T", "fields"]
    cmd += ["-E", "occurrence=l"]  # the PAN's packet, not the IPv6/UDP that carries the ZEP
    for f in fields:
        cmd += ["-e", f]
    rows = [
        dict(zip(fields, line.split("\t"), strict=True))
        for line in subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, check=True
        ).stdout.splitlines()
    ]
    assert rows and not any(r["_ws.malformed"] for r in rows), [
        r for r in rows if r["_ws.malformed"]
    ]
    # The 648-byte echoes were reassembled by Wireshark from the fragments, both directions.
    big = {(r["ipv6.src"], r["icmpv6.type"]) for r in rows if r["ipv6.plen"] == "608"}
    assert any(t == "128" for _, t in big) and any(t == "129" for _, t in big), big


def test_riot_joins_at_ten_percent_frame_loss_within_30_s(
    building: Building, cli_env: dict[str, str]
) -> None:
    b = building
    run_cli(["link", "set", f"pan-{PAN}", "--loss", "10%", "--run", b.run], cli_env)
    try:
        with riot(b, "16:00:00:00:00:00:00:2a") as node:
            node.join(CHANNEL, PAN_ID)
            address = node.global_address(b.prefix, 30)  # prefix and registration within 30 s
            assert nd_state(b)["registrations"][address]["lladdr"] == "160000000000002a"
    finally:
        run_cli(["link", "reset", f"pan-{PAN}", "--run", b.run], cli_env)
