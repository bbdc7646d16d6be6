"""The user-space link shaper: packets per second it carries and the latency it adds.

    sudo python bench/shaper.py [--seconds 3] [--size 100]

Two network namespaces joined by a veth pair; the project's UserspaceLink runs on ``va`` (as
a border router runs it on its backbone/internet interface) with an impairment that does
nothing (so only the shaper's own cost is measured), against the same pair without it:

- packets/s: a UDP flood from each side for ``--seconds``, counted by a sink on the other
  side (b -> a crosses the ingress path: tc -> TUN -> write back; a -> b the egress path:
  tc -> TAP -> AF_PACKET);
- added latency: ICMPv6 echo round trips (busybox ping, 300 at 5 ms), p50 and p99, shaped
  minus direct; both directions of the shaper are crossed once per round trip.

Needs root, iproute2, /dev/net/tun and busybox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testbed.contracts.impairment import Impairment  # noqa: E402
from testbed.node.shaping.runner import run  # noqa: E402
from testbed.node.shaping.userspace import UserspaceLink  # noqa: E402
from tests.vm import initramfs, measure  # noqa: E402

PORT = 9999


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


async def serve(dev: str) -> None:
    """In namespace a: the shaper, active with no impairment, until stdin closes."""
    link = UserspaceLink("backbone", dev, seed=1, runner=run)
    link.impairment = Impairment()
    await link._activate()  # active although it impairs nothing: its bare cost is measured
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    print(json.dumps(link.snapshot()), flush=True)
    await link.close()


def sink(seconds: float) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("::", PORT))
    sock.settimeout(1.0)
    print("ready", flush=True)
    count, first, last = 0, 0.0, 0.0
    deadline = time.monotonic() + seconds + 5
    while time.monotonic() < deadline:
        try:
            sock.recv(2048)
        except TimeoutError:
            if count:
                break
            continue
        last = time.monotonic()
        first = first or last
        count += 1
    print(json.dumps({"count": count, "seconds": max(last - first, 1e-9)}), flush=True)


def flood(target: str, seconds: float, size: int) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    payload = bytes(size)
    sent, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(64):
            try:
                sock.sendto(payload, (target, PORT))
                sent += 1
            except BlockingIOError:
                pass
    print(json.dumps({"sent": sent}), flush=True)


def in_ns(ns: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    cmd = ["ip", "netns", "exec", ns, sys.executable, __file__, *args]
    return subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, text=True, cwd=ROOT)


def throughput(
    src: str, dst: str, target: str, seconds: float, size: int
) -> tuple[float, int, int]:
    receiver = in_ns(dst, "--sink", str(seconds))
    assert receiver.stdout is not None
    assert receiver.stdout.readline().strip() == "ready"
    sender = in_ns(src, "--flood", target, str(seconds), str(size))
    sent = json.loads(sender.communicate(timeout=seconds + 30)[0])["sent"]
    got = json.loads(receiver.communicate(timeout=seconds + 30)[0])
    return got["count"] / got["seconds"], sent, got["count"]


def rtts(ns: str, busybox: str) -> list[float]:
    cmd = ["ip", "netns", "exec", ns, busybox, *measure.ping_command("fd00::1", 300, 0.005)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    return sorted(measure.parse_ping(out).rtts_ms)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=100, help="UDP payload bytes")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--sink", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--flood", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    if args.sink is not None:
        sink(args.sink)
        return
    if args.flood:
        flood(args.flood[0], float(args.flood[1]), int(args.flood[2]))
        return

    busybox = str(initramfs.busybox())
    tag = uuid.uuid4().hex[:6]
    a, b = f"link-bench-a-{tag}", f"link-bench-b-{tag}"
    try:
        sh("ip", "netns", "add", a)
        sh("ip", "netns", "add", b)
        sh("ip", "link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb", "netns", b)
        for ns, dev, addr in ((a, "va", "fd00::1/64"), (b, "vb", "fd00::2/64")):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        rtts(b, busybox)  # neighbours
        results = {}
        for label in ("direct", "shaped"):
            shaper = None
            if label == "shaped":
                shaper = in_ns(a, "--serve", "va", stdin=subprocess.PIPE)
                assert shaper.stdout is not None
                assert shaper.stdout.readline().strip() == "ready"
            ingress = throughput(b, a, "fd00::1", args.seconds, args.size)
            egress = throughput(a, b, "fd00::2", args.seconds, args.size)
            results[label] = {"ingress": ingress, "egress": egress, "rtt": rtts(b, busybox)}
            if shaper is not None:
                results[label]["snapshot"] = json.loads(shaper.communicate("", timeout=30)[0])
        print(f"UDP payload {args.size} B, {args.seconds:g} s per direction, one flow")
        for label, r in results.items():
            print(
                f"  {label:7s} b->a (ingress) {r['ingress'][0]:9.0f} pkt/s   "
                f"a->b (egress) {r['egress'][0]:9.0f} pkt/s   "
                f"RTT p50 {pct(r['rtt'], 0.5):.3f} ms  p99 {pct(r['rtt'], 0.99):.3f} ms"
            )
            print(
                f"          received/sent b->a {r['ingress'][2]}/{r['ingress'][1]}, "
                f"a->b {r['egress'][2]}/{r['egress'][1]}"
            )
            if "snapshot" in r:
                snap = r["snapshot"]
                print(
                    "          shaper read: "
                    + ", ".join(f"{d} {v['read']} (sent {v['sent']})" for d, v in snap.items())
                )
        d, s = results["direct"]["rtt"], results["shaped"]["rtt"]
        print(
            f"  added RTT (both directions once): p50 {pct(s, 0.5) - pct(d, 0.5):.3f} ms, "
            f"p99 {pct(s, 0.99) - pct(d, 0.99):.3f} ms; mean "
            f"{statistics.fmean(s) - statistics.fmean(d):.3f} ms"
        )
        empty = [
            f"{label} {way}"
            for label, r in results.items()
            for way in ("ingress", "egress")
            if r[way][2] == 0
        ]
        if empty:  # a shaper that carries nothing is a failure, not a figure of 0 pkt/s
            raise SystemExit(f"FAILED: no packet arrived on {', '.join(empty)}")
    finally:
        subprocess.run(["ip", "netns", "del", a], check=False)
        subprocess.run(["ip", "netns", "del", b], check=False)


if __name__ == "__main__":
    main()
