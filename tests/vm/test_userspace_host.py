"""The user-space shaper passes the same measurement as kernel netem (test_netem_vm.py), here on
the host: a veth pair between two network namespaces, the project's UserspaceLink on ``va`` in
namespace ``a`` (tests/vm/shaper_process.py: the same object a border router uses), busybox ping
from ``b``, the same stages (delay with jitter, then a live change to random loss) and the same
checks with tolerances computed from the sample size.

Needs root, iproute2, /dev/net/tun and busybox (busybox-static); outside CI it skips without
them, in CI it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.contracts.impairment import Impairment
from tests.vm import initramfs, measure

ROOT = Path(__file__).resolve().parents[2]
# asyncio timers wake within about a millisecond; the verdict path adds well under one.
HOST_ALLOWANCE_MS = 3.0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the user-space shaper measurement: {reason}")
    pytest.skip(reason)


def sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def namespaces() -> Iterator[tuple[str, str, str]]:
    if os.geteuid() != 0 or shutil.which("ip") is None or not Path("/dev/net/tun").exists():
        _unavailable("needs root, iproute2 and /dev/net/tun")
    try:
        busybox = str(initramfs.busybox())
    except initramfs.Missing as exc:
        _unavailable(str(exc))
    tag = uuid.uuid4().hex[:6]
    a, b = f"link-vm-a-{tag}", f"link-vm-b-{tag}"
    try:
        for cmd in (
            ["ip", "netns", "add", a],
            ["ip", "netns", "add", b],
            ["ip", "link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb",
             "netns", b],
            ["ip", "-n", a, "link", "set", "lo", "up"],
            ["ip", "-n", b, "link", "set", "lo", "up"],
            ["ip", "-n", a, "addr", "add", "fd00::1/64", "dev", "va", "nodad"],
            ["ip", "-n", b, "addr", "add", "fd00::2/64", "dev", "vb", "nodad"],
            ["ip", "-n", a, "link", "set", "va", "up"],
            ["ip", "-n", b, "link", "set", "vb", "up"],
        ):  # fmt: skip
            result = sh(*cmd)
            if result.returncode != 0:
                _unavailable(f"{' '.join(cmd)}: {result.stderr.strip()}")
        yield a, b, busybox
    finally:
        sh("ip", "netns", "del", a)
        sh("ip", "netns", "del", b)


def ping(ns: str, busybox: str, count: int, interval: float) -> measure.Pings:
    cmd = ["ip", "netns", "exec", ns, busybox, *measure.ping_command("fd00::1", count, interval)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    return measure.parse_ping(result.stdout)


class Shaper:
    def __init__(self, ns: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.vm.shaper_process", "va"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def apply(self, imp: Impairment) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(imp.to_dict()) + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self) -> dict[str, object]:
        out, _ = self.proc.communicate(timeout=30)
        snapshot: dict[str, object] = json.loads(out.strip().splitlines()[-1])
        return snapshot


def icmp6_checksum_errors(ns: str) -> int:
    text = sh("ip", "netns", "exec", ns, "cat", "/proc/net/snmp6").stdout
    return next(int(line.split()[1]) for line in text.splitlines() if "Icmp6InCsumErrors" in line)


def test_userspace_shaper_delay_and_loss_on_the_host(namespaces: tuple[str, str, str]) -> None:
    a, b, busybox = namespaces
    ping(b, busybox, 3, 0.2)  # neighbours resolved before measuring
    base = ping(b, busybox, *measure.BASE_PINGS)
    shaper = Shaper(a)
    try:
        shaper.apply(measure.DELAY)
        delayed = ping(b, busybox, *measure.DELAY_PINGS)
        shaper.apply(measure.LOSS)  # live: same process, same devices
        lossy = ping(b, busybox, *measure.LOSS_PINGS)
    finally:
        snapshot = shaper.close()
    print(f"user-space shaper on the host: {measure.summary(base, delayed, lossy)}")
    assert delayed.received == delayed.sent == measure.DELAY_PINGS[0]
    assert measure.check_delay(base, delayed, measure.DELAY, HOST_ALLOWANCE_MS) == ""
    assert measure.check_loss(lossy, measure.LOSS) == ""
    # The live change took the delay away (98%: the shared host may stall an echo now and then).
    fast = [rtt for rtt in lossy.rtts_ms if rtt < measure.DELAY.delay * 1000]
    assert len(fast) >= 0.98 * len(lossy.rtts_ms), sorted(lossy.rtts_ms)[-10:]
    # Both directions went through the shaper.
    for direction in ("egress", "ingress"):
        counts = snapshot[direction]["counts"]  # type: ignore[index]
        assert counts["shaped"] >= measure.DELAY_PINGS[0] and counts["dropped"] > 50
    # And the link is back to the kernel's path: no clsact left behind.
    assert "clsact" not in sh("ip", "netns", "exec", a, "tc", "qdisc", "show", "dev", "va").stdout


def test_neighbours_are_resolved_through_the_shaped_link(
    namespaces: tuple[str, str, str],
) -> None:
    """Neighbour discovery keeps working while the link is shaped: with both caches flushed,
    each side resolves the other from scratch. The solicited advertisement is addressed to the
    ULA that triggered the solicitation; had it been redirected into the ingress TUN, the
    kernel would have received it on the TUN and ignored it (every echo lost; a CI run lost
    them for seconds after a neighbour entry expired)."""
    a, b, busybox = namespaces
    shaper = Shaper(a)
    try:
        shaper.apply(Impairment(delay=0.001))
        for ns in (a, b):
            assert sh("ip", "-n", ns, "neigh", "flush", "all").returncode == 0
        # The shaped side sends first: it must resolve its neighbour through its own device.
        cmd = ["ip", "netns", "exec", a, busybox, *measure.ping_command("fd00::2", 20, 0.05)]
        outbound = measure.parse_ping(
            subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
        )
        for ns in (a, b):
            sh("ip", "-n", ns, "neigh", "flush", "all")
        inbound = ping(b, busybox, 20, 0.05)
        states = sh("ip", "-n", a, "neigh", "show", "fd00::2", "dev", "va").stdout
    finally:
        snapshot = shaper.close()
    assert outbound.received == outbound.sent == 20, outbound
    assert inbound.received == inbound.sent == 20, inbound
    assert "lladdr" in states, states
    # The echoes did cross the shaper; neighbour discovery did not.
    assert snapshot["ingress"]["counts"]["shaped"] >= 40  # type: ignore[index]


DUPLICATE = Impairment(duplicate=0.2)
CORRUPT = Impairment(corrupt=0.3)


def test_duplicates_arrive_and_corruption_fails_the_checksum(
    namespaces: tuple[str, str, str],
) -> None:
    """Copies are byte-identical (they arrive and are answered); a corrupted packet has one
    payload bit flipped, so the receiver's ICMPv6 checksum rejects it and counts it."""
    a, b, busybox = namespaces
    errors_before = icmp6_checksum_errors(a) + icmp6_checksum_errors(b)
    shaper = Shaper(a)
    try:
        shaper.apply(DUPLICATE)
        duplicated = ping(b, busybox, 300, 0.01)
        shaper.apply(CORRUPT)
        corrupted = ping(b, busybox, 300, 0.01)
    finally:
        snapshot = shaper.close()
    assert measure.check_duplicates(duplicated, DUPLICATE) == ""
    # A corrupted echo or reply is lost to its checksum, as if the link had lost it.
    assert measure.check_loss(corrupted, Impairment(loss=CORRUPT.corrupt)) == ""
    errors = icmp6_checksum_errors(a) + icmp6_checksum_errors(b) - errors_before
    corrupted_count = sum(
        snapshot[d]["counts"].get("corrupted", 0)  # type: ignore[index]
        for d in ("egress", "ingress")
    )
    # Every checksum error is one of ours; a corrupted packet in flight when the counters are
    # read (or lost to a full device queue) may be missing from them.
    assert corrupted_count > 50 and 0.95 * corrupted_count <= errors <= corrupted_count, (
        errors,
        corrupted_count,
    )
