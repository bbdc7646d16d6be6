"""The user-space implementation, for kernels without netem: tc redirects -> TAP/TUN -> model.

    egress   clsact egress on DEV:  u32 ipv6 dst fc00::/7, 2000::/3
             -> mirred redirect to TAP shp-<link>-e  (we read Ethernet frames, neighbour
             discovery already done) -> fate -> AF_PACKET send on DEV with PACKET_QDISC_BYPASS
             (straight to the driver, so the frame is not redirected again)
    ingress  clsact ingress on DEV: the same match
             -> mirred redirect to TUN shp-<link>-i  (we read IPv6 packets) -> fate -> write
             the packet back into the TUN: the kernel receives it there and routes it on (to a
             PAN, or to this node itself) as if it had come from DEV

The fate of each packet comes from the link's seeded model (model.py): dropped (never sent
on), released at a later time, released with one payload bit flipped (corrupt), or released
twice (duplicate, the copy with a fate of its own). The bytes are otherwise untouched, and the
kernel completes partial checksums and splits GSO packets before it hands a packet to a TUN or
TAP: checksums stay valid except where ``corrupt`` flips a bit on purpose.

Only global and ULA destinations are redirected. Link-local and multicast traffic passes
unshaped, and so does neighbour discovery (ICMPv6 133-137) whatever its destination, so that
the link keeps working at 100% loss; netem would shape them too. Unicast neighbour discovery
must not take the ingress path: a solicited advertisement goes to the soliciting address (a
ULA one when a ULA packet triggered the solicitation); written into the TUN, it would arrive
on the TUN, where the kernel ignores it, and the shaped device could no longer resolve a
neighbour once its entry had expired (a CI run lost every echo for seconds). The NDP filter
reads the ICMPv6 type at a fixed offset (no extension headers, as NDP sends it).

Everything used is what the kernel offers here: clsact, u32, mirred, TUN, TAP, AF_PACKET (no
netem, no nft ``queue``, no ``gact`` on our kernels).

Why not NFQUEUE: nft's ``queue`` expression is missing from our kernel (only the iptables
target is there, and the node image has no iptables). Why not policy routing into a TUN:
traffic to the router itself bypasses routing rules (local table first), and egress would need
a copy of every route. The tc redirect catches forwarded and local traffic alike, both ways.
"""

from __future__ import annotations

import asyncio
import fcntl
import heapq
import itertools
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from testbed.contracts.impairment import Impairment
from testbed.node.shaping.model import LinkModel, flip_bit
from testbed.node.shaping.runner import Runner

IMPLEMENTATION = "userspace-tap"
EGRESS, INGRESS = "egress", "ingress"
SHAPED_PREFIXES = ("fc00::/7", "2000::/3")  # ULA and global unicast
NDP_TYPES = range(133, 138)  # router/neighbour solicitation and advertisement, redirect
ETHERNET = 14
TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_TAP, IFF_NO_PI = 0x0001, 0x0002, 0x1000
SOL_PACKET, PACKET_QDISC_BYPASS = 263, 20
ETH_P_ALL = 0x0003
READ_BURST = 64
# asyncio wakes timers about 1 ms late on Linux (epoll takes whole milliseconds, rounded up;
# measured 0.95 ms mean, 1.1 ms p99): arm that much early and release what is due within
# GRACE. Should a wake come earlier than that, the timer is armed again for the exact time.
EARLY = 0.001
GRACE = 0.0003


def device_name(link: str, direction: str) -> str:
    return f"shp-{link}-{direction[0]}"[:15]


def redirect_commands(dev: str, link: str) -> list[list[str]]:
    """clsact on ``dev``, neighbour discovery let through first (prio 1), then the redirects
    of both directions (prio 2; see the module docstring)."""
    out = [["tc", "qdisc", "add", "dev", dev, "clsact"]]
    for direction in (EGRESS, INGRESS):
        for icmp_type in NDP_TYPES:
            # A terminal match without an action ends classification with "ok": the packet
            # takes the kernel's path. (A classid is what makes u32 treat the key as terminal;
            # clsact ignores its value. gact's "pass" is not in our kernels.)
            out.append(
                ["tc", "filter", "add", "dev", dev, direction, "prio", "1", "protocol", "ipv6",
                 "u32", "match", "ip6", "protocol", "58", "0xff",
                 "match", "ip6", "icmp_type", str(icmp_type), "0xff", "classid", ":1"]
            )  # fmt: skip
        for prefix in SHAPED_PREFIXES:
            out.append(
                ["tc", "filter", "add", "dev", dev, direction, "prio", "2", "protocol", "ipv6",
                 "u32", "match", "ip6", "dst", prefix,
                 "action", "mirred", "egress", "redirect", "dev", device_name(link, direction)]
            )  # fmt: skip
    return out


def teardown_commands(dev: str) -> list[list[str]]:
    return [["tc", "qdisc", "del", "dev", dev, "clsact"]]


def open_tun(name: str, tap: bool) -> int:
    fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        flags = (IFF_TAP if tap else IFF_TUN) | IFF_NO_PI
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
    except OSError:
        os.close(fd)
        raise
    return fd


@dataclass(order=True)
class _Due:
    at: float
    order: int
    run: Callable[[], None] = field(compare=False)


class _Direction:
    """One direction of a link: the TAP/TUN it reads, how it sends on, its model."""

    def __init__(self, link: str, name: str, model: LinkModel) -> None:
        self.link = link
        self.name = name
        self.model = model
        self.device = device_name(link, name)
        self.fd: int | None = None
        self.packet_socket: socket.socket | None = None  # egress: sends on the link's device
        self.read = 0
        self.sent = 0
        self.send_failed = 0

    @property
    def header(self) -> int:
        return ETHERNET if self.name == EGRESS else 0  # TAP frames carry the Ethernet header

    def send(self, data: bytes) -> None:
        try:
            if self.packet_socket is not None:
                self.packet_socket.send(data)
            elif self.fd is not None:
                os.write(self.fd, data)
            else:
                raise OSError("closed")
            self.sent += 1
        except OSError:
            self.send_failed += 1  # a full device queue drops, as a real link would


class UserspaceLink:
    implementation = IMPLEMENTATION

    def __init__(self, link: str, dev: str, seed: int, runner: Runner) -> None:
        self.link = link
        self.dev = dev
        self.runner = runner
        self.impairment = Impairment()
        self.directions = {
            d: _Direction(link, d, LinkModel(Impairment(), seed * 2 + i))
            for i, d in enumerate((EGRESS, INGRESS))
        }
        self.active = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: list[_Due] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    # ------------------------------------------------------------ setup

    async def apply(self, imp: Impairment) -> None:
        """Live: packets already held keep their fate; new packets get the new one. Without
        an impairment the redirects go away and packets take the kernel's path only."""
        self.impairment = imp
        for direction in self.directions.values():
            direction.model.configure(imp)
        if imp.is_none:
            await self.clear()
        elif not self.active:
            await self._activate()

    async def _activate(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._run_all(teardown_commands(self.dev), check=False)  # leftovers
        try:
            mtu = await self._mtu()
            for d in self.directions.values():
                d.fd = open_tun(d.device, tap=d.name == EGRESS)
                await self._run_all([["ip", "link", "set", "dev", d.device, "mtu", mtu, "up"]])
                if d.name == EGRESS:
                    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                    sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
                    sock.bind((self.dev, 0))
                    sock.setblocking(False)
                    d.packet_socket = sock
                self._loop.add_reader(d.fd, self._readable, d)
            await self._run_all(redirect_commands(self.dev, self.link))
        except BaseException:
            await self._deactivate()
            raise
        self.active = True

    async def _mtu(self) -> str:
        result = await self.runner(["cat", f"/sys/class/net/{self.dev}/mtu"])
        text = result.stdout.strip()
        return text if result.ok and text.isdigit() else "1500"

    async def _run_all(self, commands: list[list[str]], check: bool = True) -> None:
        for cmd in commands:
            result = await self.runner(cmd)
            if check and not result.ok:
                raise OSError(f"`{' '.join(cmd)}` failed: {result.stderr.strip()}")

    async def clear(self) -> None:
        if self.active:
            await self._deactivate()

    async def _deactivate(self) -> None:
        self.active = False
        await self._run_all(teardown_commands(self.dev), check=False)
        # What is still held goes on now (a link that stops impairing releases its queue).
        while self._due:
            heapq.heappop(self._due).run()
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, float("inf")
        for d in self.directions.values():
            if d.fd is not None:
                if self._loop is not None:
                    self._loop.remove_reader(d.fd)
                os.close(d.fd)  # the device goes with its last descriptor
                d.fd = None
            if d.packet_socket is not None:
                d.packet_socket.close()
                d.packet_socket = None

    async def close(self) -> None:
        await self.clear()

    # ------------------------------------------------------------ packets

    def _readable(self, d: _Direction) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for _ in range(READ_BURST):
            if d.fd is None:
                return
            try:
                data = os.read(d.fd, 65536)
            except (BlockingIOError, InterruptedError):
                break
            d.read += 1
            self._handle(d, data, now)
        self._arm()

    def _handle(self, d: _Direction, data: bytes, now: float) -> None:
        fate = d.model.admit(len(data) - d.header, now)
        for one in (fate, fate.copy):
            if one is None or one.drop is not None:
                continue
            out = data
            if one.flip is not None:
                out = flip_bit(data, (one.flip[0] + d.header, one.flip[1]))
            self._later(one.at, now, lambda out=out: d.send(out))  # type: ignore[misc]

    def _later(self, at: float, now: float, run: Callable[[], None]) -> None:
        if at <= now and not self._due:
            run()
        else:
            heapq.heappush(self._due, _Due(at, next(self._order), run))

    def _arm(self, early: float = EARLY) -> None:
        if not self._due or self._loop is None:
            return
        at = self._due[0].at - early
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._pump)

    def _pump(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        assert self._loop is not None
        now = self._loop.time()
        while self._due and self._due[0].at <= now + GRACE:
            heapq.heappop(self._due).run()
        if self._due and self._due[0].at - EARLY <= now:
            self._arm(early=0.0)  # woke early: wait for the exact time, without spinning
        else:
            self._arm()

    # ------------------------------------------------------------ reporting

    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for d in self.directions.values():
            for action, n in list(d.model.counts.items()):
                total[action] = total.get(action, 0) + n
        return total

    def snapshot(self) -> dict[str, Any]:
        return {
            d.name: {
                "device": d.device,
                "held": d.model.held,
                "read": d.read,
                "sent": d.sent,
                "send_failed": d.send_failed,
                "counts": dict(d.model.counts),
            }
            for d in self.directions.values()
        }
