"""The emulated 802.15.4 medium as the border router runs it: cost per frame, timing, memory.

    python bench/medium.py [--seconds S] [--nodes 2,10,50] [--size 127]

The medium under test is the real one: ``frontend.MediumHub`` (the ZEP v2 server around
``medium.Medium``) on asyncio's default event loop, bound to 127.0.0.1, in a subprocess of its
own (this script with ``--serve``) so that its CPU time is its own. This process plays N nodes
with one UDP socket each, registered as ``ZepClient`` and RIOT's ``socket_zep`` register: a ZEP
HELLO carrying the node's EUI-64 02:00:00:ff:fe:00:XX:XX, from which the hub also learns the
short address XXXX. The nodes are planned stations, as a PAN's things are (the hub's plan names
them by short address, without carrier addresses): the medium runs their MAC. Unplanned they
would be guests (RIOT native nodes with a MAC of their own), whose frames the hub answers with
an immediate ACK of its own and paces, which is not what this script measures. Frames are ZEP v2
data datagrams carrying 802.15.4 data frames (short addresses, PAN ID compression, valid FCS,
ACK request on unicast) of ``--size`` bytes. Links are loss-free, so every frame goes through on
its first attempt and the figures are the medium's own cost and timing. The hub has no station
of its own here: the router's station only adds one in-process delivery target.

For each N (default 2, 10, 50, 200):

- Throughput, unicast: node i sends to node i+1, closed loop: a node sends its next frame when
  the medium hands it the (emulated) MAC ACK of the previous one, so all N nodes contend (one
  frame each in the medium; two each below 4 nodes, so that the channel never waits for this
  process). The medium models one 250 kbit/s channel in real time, so it
  carries at most one frame per airtime + 192 us turnaround + 352 us ACK (4.8 ms, 208 frames/s
  for 127-byte frames) whatever the CPU: ``% ceiling`` says whether the hub keeps the channel
  full. The per-core figure is the hub process's CPU time over the window (time.process_time
  in the hub, read at both ends; user and system time) per data frame carried: frames/CPU-s.
  A carried frame costs the hub one datagram in and two out (the frame to its receiver, the ACK
  to its sender) and, while frames contend, one event loop wake-up (the hub reads arriving
  datagrams when the channel frees, modelled at their kernel arrival times; frontend.py
  ``MediumHub._drain``). At these rates the hub sleeps between
  events, so the figure is the cost per frame at the channel's pace, wake-ups included
  (``wake/f``: the hub's timer and socket callbacks per frame carried); a core
  kept busy may do better per frame (the broadcast column shows what one datagram costs when
  many go out back to back; ``--size 30`` triples the unicast frame rate).
- Throughput, broadcast: the same closed loop with broadcasts (no ACK, so the ceiling is one
  frame per airtime); node i sends again when node i+1 has received its frame. A broadcast is
  one datagram in and N-1 out, so here the hub's cost grows with N: ``deliveries/CPU-s`` is the
  per-datagram rate, and where hub CPU nears 100 % the hub, not the channel, is the limit.
- Airtime scheduling error (``err``): under light load (stop and wait: one frame on the
  channel at a time, then a random 0.5-2.5 ms idle gap, so there is never queueing) the model
  delivers a frame exactly one airtime after it reached the hub. The error is when the data
  frame arrived in the receiving node's socket (kernel receive timestamp, SO_TIMESTAMPNS, where
  Linux offers it) minus (when the sender called sendto + airtime): what a node sees, i.e.
  loopback in + hub + timer lateness + loopback out. ``late`` is the hub-internal part alone:
  how long after its model time the hub hands each data frame to its socket
  (``MediumHub._deliver``, wrapped in a subclass in the subprocess). asyncio's selector waits
  whole milliseconds (the timeout is rounded up), so a delivery due one airtime after an
  arrival is late by the rest of the millisecond it was rounded up to (about 0.75 ms for
  4.256 ms, almost nothing for 4.000 ms) plus the wake-up; the model's virtual times stay exact
  (frontend.py), only their real-time rendering is late. With about 250 samples per N, p99 is
  about the third-largest: it shows scheduling hiccups of the machine as much as the hub.
  ``CPU us``: the hub's CPU time over this phase per frame (with its ACK and the idle gap
  after it): the cost of a frame on a quiet PAN, where every frame wakes the hub twice (its
  arrival, then its delivery and ACK).
- Memory per node (KiB): a second hub subprocess runs with tracemalloc from its start; its live
  traced memory is read (after gc.collect(), the medium idle) before any node, after N HELLOs
  (``node``: what the hub and the medium keep per registered node), after each node sent one
  short unicast frame to the next (``+uni``: the directed link states that creates, data link
  and reverse ACK link) and after each node sent one short broadcast (``+bcast``: now every
  node has a link state towards every other node; each holds its own random.Random, 2.5 KB);
  each difference divided by N. tracemalloc counts Python allocations; RSS would add the
  allocator's slack. The plan's registry of the N stations exists before the first reading.
- Snapshot (``snap us``): after the broadcasts, when every node holds a link state towards
  every other (``links``, N(N-1)), the CPU time of what one publication of the border router's
  metrics reads from the medium (``Medium.snapshot(links=False)`` and the fragmented-datagram
  outcomes per sender): it grows with the stations, not with the links.

Everything runs on one machine: the node side (this process) competes with the hub for CPU, and
whatever else runs on the box shows in the figures. They are measurements, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import random
import selectors
import socket
import struct
import subprocess
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass
from typing import Any

from testbed.contracts.radio import RadioPanConfig, ext_from_short
from testbed.node.radio import mac, zep
from testbed.node.radio.addressing import BROADCAST
from testbed.node.radio.frontend import MAX_NODES, MediumHub
from testbed.node.radio.medium_types import Delivery
from testbed.node.radio.phy import ACK_AIRTIME_S, MAX_PSDU, TURNAROUND_S, airtime

HOST = "127.0.0.1"
CHANNEL = zep.DEFAULT_CHANNEL
PAN_ID = 0x0023
FIRST_SHORT = 0x0100  # node i has short address 0x0100 + i (the hub's own is 0x0001)
WARM_UP_S = 0.3
# Linux's SO_TIMESTAMPNS (asm-generic/socket.h); Python's socket module does not export it.
# Other architectures number it differently: there, arrival times are taken in user space.
SO_TIMESTAMPNS = 35
_GENERIC_SOCKET_ABI = {"x86_64", "i386", "i686", "aarch64", "arm64", "riscv64"}
_TIMESPEC = struct.Struct("@ll")
_TAG = struct.Struct("!HI")  # (sender index, frame number) at the start of every payload
_MAC_HEADER = mac.header_length(2, 2)  # short addresses, PAN ID compression: 9 bytes
MIN_SIZE = _MAC_HEADER + _TAG.size + mac.FCS_LEN
SMALL = 20  # frame size of the memory phase: it is about state, not airtime


# ------------------------------------------------------------------ hub side (subprocess)


@dataclass(frozen=True)
class HubStats:
    cpu_s: float  # time.process_time() of the hub process
    wall_s: float  # time.monotonic()
    delivered: int  # data frames handed to a receiver's socket (each receiver counts)
    queued: int  # frames in the medium's queues (the one on the air included)
    idle: bool  # nothing scheduled in the medium
    transmissions: int  # the medium's transmissions (data frames and emulated ACKs)
    nodes: int  # nodes registered over UDP
    dropped: dict[str, int]  # datagrams the hub refused, by reason
    lateness_s: list[float]  # data deliveries since the last query: wall time - model time
    wakeups: int  # the hub's timer and socket callbacks run (event loop wake-ups)


@dataclass(frozen=True)
class HubMemory:
    traced_bytes: int  # live Python allocations since the hub process started tracing


class TimedHub(MediumHub):
    """The real hub, plus a record of when each data frame leaves compared with its model time."""

    def __init__(self, config: RadioPanConfig) -> None:
        super().__init__(config)
        self.delivered = 0
        self.lateness: list[float] = []
        self.wakeups = 0

    def _pump(self) -> None:
        self.wakeups += 1
        super()._pump()

    def _readable(self) -> None:
        self.wakeups += 1
        super()._readable()

    def _deliver(self, d: Delivery) -> None:
        if d.frame[0] & 0x07 == mac.FRAME_DATA:
            self.delivered += 1
            self.lateness.append(self.now() - d.time)
        super()._deliver(d)


def hub_config(planned: int) -> RadioPanConfig:
    # The nodes are planned stations, as a PAN's things are (the plan names them by short
    # address; no carrier address, so each binds to the endpoint it first speaks from): the hub
    # runs their MAC (emulated ACKs and retries). Unplanned nodes would be guests, RIOT native
    # nodes with a MAC of their own, which the hub paces and answers with ACKs of its own.
    return RadioPanConfig(
        pan="bench",
        address="fd00:0:0:1:0:ff:fe00:1/64",
        short=0x0001,
        medium=HOST,
        port=0,
        channel=CHANNEL,
        pan_id=PAN_ID,
        seed=1,
        names={f"{FIRST_SHORT + i:04x}": f"n{i}" for i in range(planned)},
    )


def hub_stats(hub: MediumHub) -> HubStats:
    cpu = time.process_time()  # first, so the bookkeeping below falls outside the window
    wall = time.monotonic()
    medium = hub.medium
    timed = hub if isinstance(hub, TimedHub) else None
    lateness = timed.lateness if timed else []
    stats = HubStats(
        cpu_s=cpu,
        wall_s=wall,
        delivered=timed.delivered if timed else 0,
        queued=sum(medium.queue_length(name) for name in medium.nodes()),
        idle=medium.next_event_time() is None,
        transmissions=medium.transmissions,
        nodes=len(hub.endpoints()),
        dropped=dict(hub.dropped),
        lateness_s=list(lateness),
        wakeups=timed.wakeups if timed else 0,
    )
    lateness.clear()
    return stats


@dataclass(frozen=True)
class HubSnapshot:
    seconds: float  # CPU time of one metrics publication's reading of the medium
    links: int  # directed link states the medium holds


def hub_snapshot(hub: MediumHub) -> HubSnapshot:
    """What the border router's periodic metrics read from the medium (attach.py
    ``_Pan.samples``): the node counters and the fragmented-datagram outcomes per sender."""
    medium = hub.medium
    rounds = 20
    start = time.process_time()
    for _ in range(rounds):
        medium.snapshot(links=False)
        medium.fates.by_sender()
    return HubSnapshot((time.process_time() - start) / rounds, len(medium.links.states()))


def hub_memory() -> HubMemory:
    gc.collect()  # what the hub holds, not garbage awaiting collection
    return HubMemory(tracemalloc.get_traced_memory()[0])


async def serve(trace: bool, planned: int) -> None:
    """The hub, answering one JSON line on stdout per command line on stdin."""
    if trace:
        tracemalloc.start()  # before the hub exists: all it allocates is traced
    config = hub_config(planned)
    hub: MediumHub = MediumHub(config) if trace else TimedHub(config)
    await hub.open((HOST, 0))
    assert hub.transport is not None
    reply({"port": hub.transport.get_extra_info("sockname")[1]})
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    pending = b""
    fd = sys.stdin.fileno()

    def on_input() -> None:
        # Commands are read on the hub's own loop (no thread): answering one costs the hub
        # what any other event costs, and nothing runs beside the loop.
        nonlocal pending
        chunk = os.read(fd, 4096)
        if not chunk:
            finished.set_result(None)
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            command = line.decode().strip()
            if command == "stats":
                reply(asdict(hub_stats(hub)))
            elif command == "memory":
                reply(asdict(hub_memory()))
            elif command == "snapshot":
                reply(asdict(hub_snapshot(hub)))
            elif command == "quit":
                finished.set_result(None)
                return

    loop.add_reader(fd, on_input)
    try:
        await finished
    finally:
        loop.remove_reader(fd)
        hub.close()


def reply(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


# ------------------------------------------------------------------ node side (this process)


class HubProcess:
    """A hub subprocess and its command channel."""

    def __init__(self, planned: int, trace: bool = False) -> None:
        args = [sys.executable, os.path.abspath(__file__), "--serve", f"--plan={planned}"]
        self.proc = subprocess.Popen(
            args + (["--trace"] if trace else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.port = int(self._read()["port"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the hub subprocess ended (exit status {self.proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stats(self) -> HubStats:
        return HubStats(**self._ask("stats"))

    def memory(self) -> HubMemory:
        return HubMemory(**self._ask("memory"))

    def snapshot(self) -> HubSnapshot:
        return HubSnapshot(**self._ask("snapshot"))

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


@dataclass(frozen=True, slots=True)
class Received:
    node: int  # index of the receiving node
    frame: bytes  # the 802.15.4 frame (PSDU with FCS)
    at: float  # time.time() of arrival in the socket (0.0 when not asked for)

    @property
    def is_ack(self) -> bool:
        return self.frame[0] & 0x07 == mac.FRAME_ACK

    @property
    def is_data(self) -> bool:
        return self.frame[0] & 0x07 == mac.FRAME_DATA

    @property
    def tag(self) -> tuple[int, int]:
        src, number = _TAG.unpack_from(self.frame, _MAC_HEADER)
        return src, number


def short(i: int) -> bytes:
    return (FIRST_SHORT + i).to_bytes(2, "big")


def data_frame(src: int, dst: int | None, number: int, size: int) -> bytes:
    """An 802.15.4 data frame of ``size`` bytes (FCS included) from node ``src`` to node ``dst``
    (None: broadcast), tagged with (src, number) for matching at the receiver."""
    payload = _TAG.pack(src, number & 0xFFFFFFFF)
    payload += bytes(size - _MAC_HEADER - mac.FCS_LEN - len(payload))
    return mac.encode_data(
        seq=number,
        pan_id=PAN_ID,
        src=short(src),
        dst=BROADCAST if dst is None else short(dst),
        payload=payload,
    )


def zep_datagram(src: int, frame: bytes, seq: int = 0) -> bytes:
    # As ZepClient.transmit builds it: the node's short address as device id.
    return zep.encode_data(
        frame,
        channel=CHANNEL,
        device_id=FIRST_SHORT + src,
        seq=seq,
        timestamp=zep.ntp_timestamp(time.time()),
    )


class Nodes:
    """N node radios: one non-blocking UDP socket each, all served by one selector."""

    def __init__(self, n: int, hub_port: int) -> None:
        self.hub = (HOST, hub_port)
        self.socks: list[socket.socket] = []
        self.selector = selectors.DefaultSelector()
        self.kernel_timestamps = (
            sys.platform == "linux" and platform.machine() in _GENERIC_SOCKET_ABI
        )
        for i in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((HOST, 0))
            sock.setblocking(False)
            # Room for a backlog of broadcasts (N - 1 senders) while this process is busy
            # elsewhere: a datagram dropped here would stall a node of the closed loop.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            if self.kernel_timestamps:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                except OSError:
                    self.kernel_timestamps = False
            self.selector.register(sock, selectors.EVENT_READ, i)
            self.socks.append(sock)

    def __len__(self) -> int:
        return len(self.socks)

    def close(self) -> None:
        self.selector.close()
        for sock in self.socks:
            sock.close()

    def send(self, i: int, datagram: bytes) -> None:
        self.socks[i].sendto(datagram, self.hub)

    def hello(self) -> None:
        for i in range(len(self.socks)):
            self.send(i, zep.encode_hello(ext_from_short(FIRST_SHORT + i)))

    def poll(self, timeout: float, stamped: bool = False) -> list[Received]:
        """The ZEP data frames that arrive within ``timeout`` seconds: everything waiting once
        one socket is readable. ``stamped``: with arrival times (costlier, so only when
        timing)."""
        out: list[Received] = []
        space = socket.CMSG_SPACE(_TIMESPEC.size)
        for key, _ in self.selector.select(max(timeout, 0.0)):
            i: int = key.data
            sock = self.socks[i]
            while True:
                try:
                    data, ancillary, _, _ = sock.recvmsg(256, space if stamped else 0)
                except BlockingIOError:
                    break
                if len(data) <= zep.HEADER_LEN or data[3] != zep.TYPE_DATA:
                    continue
                at = 0.0
                if stamped:
                    for level, kind, value in ancillary:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                            sec, nsec = _TIMESPEC.unpack_from(value)
                            at = sec + nsec * 1e-9
                    at = at or time.time()
                out.append(Received(i, data[zep.HEADER_LEN :], at))
        return out

    def idle_for(self, seconds: float) -> None:
        """Read and discard whatever arrives for ``seconds``."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.poll(left)


def register(nodes: Nodes, hub: HubProcess) -> None:
    """HELLO from every node until the hub knows them all (a HELLO is one unacknowledged
    datagram, as in RIOT; the hub ignores repeats)."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        nodes.hello()
        for _ in range(20):
            nodes.idle_for(0.01)
            if hub.stats().nodes == len(nodes):
                return
    raise RuntimeError(f"the hub registered {hub.stats().nodes} of {len(nodes)} nodes")


def wait_idle(nodes: Nodes, hub: HubProcess, transmissions: int = 0) -> HubStats:
    """Serve the sockets until the medium has nothing left to do (and has made at least
    ``transmissions`` transmissions in all)."""
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        nodes.idle_for(0.02)
        stats = hub.stats()
        if stats.idle and stats.queued == 0 and stats.transmissions >= transmissions:
            return stats
    raise RuntimeError("the medium did not become idle")


def ceiling(size: int, broadcast: bool) -> float:
    """Frames per second one channel carries back to back: frame, or frame + turnaround + ACK."""
    cycle = airtime(size) if broadcast else airtime(size) + TURNAROUND_S + ACK_AIRTIME_S
    return 1 / cycle


@dataclass(frozen=True)
class Throughput:
    frames_per_s: float
    ceiling_percent: float
    cpu_percent: float  # of one core
    frames_per_cpu_s: float
    deliveries_per_cpu_s: float  # data frames handed to receivers' sockets
    wakeups_per_frame: float  # the hub's timer and socket callbacks per frame carried


class ClosedLoop:
    """Every node keeps ``window`` frames in the medium: the next goes out when one is done
    (unicast: its ACK is back; broadcast: the next node has received it)."""

    def __init__(self, nodes: Nodes, size: int, broadcast: bool) -> None:
        n = len(nodes)
        self.nodes = nodes
        self.broadcast = broadcast
        # At least 4 frames in the medium in all: with 2 nodes and one frame each, a load
        # generator descheduled for one airtime (a busy 2-core box) would leave the channel
        # idle and the figure would measure this process, not the medium.
        self.window = max(1, math.ceil(4 / n))
        # The medium does not mind a node repeating one frame: each datagram is built once,
        # so this process spends its time on the sockets, not on encoding.
        self.datagrams = [
            zep_datagram(i, data_frame(i, None if broadcast else (i + 1) % n, i, size))
            for i in range(n)
        ]
        self.running = True
        self.outstanding = [0] * n
        self.progress_at = [0.0] * n
        # A node whose frame or signal went missing (a full socket buffer) would stop for
        # good: well past a full round of the queues, it sends again. A broadcast round can
        # be longer than its airtime: the hub sends N - 1 datagrams per frame.
        per_frame = max(1 / ceiling(size, broadcast), n * 50e-6 if broadcast else 0.0)
        self.stall_s = 2 * n * self.window * per_frame + 0.5

    def send(self, i: int) -> None:
        self.nodes.send(i, self.datagrams[i])
        self.outstanding[i] += 1
        self.progress_at[i] = time.monotonic()

    def start(self) -> None:
        # In small bursts: N datagrams at once could overflow the hub's receive buffer.
        for k in range(len(self.nodes) * self.window):
            self.send(k % len(self.nodes))
            if k % 16 == 15:
                self.serve(0.001)

    def serve(self, seconds: float) -> None:
        n = len(self.nodes)
        end = time.monotonic() + seconds
        next_check = time.monotonic() + 0.1
        while (left := end - time.monotonic()) > 0:
            for rx in self.nodes.poll(min(left, 0.1)):
                if self.broadcast:
                    sender = (rx.node - 1) % n
                    if not rx.is_data or rx.tag[0] != sender:
                        continue
                elif rx.is_ack:
                    sender = rx.node
                else:
                    continue
                self.outstanding[sender] -= 1
                self.progress_at[sender] = time.monotonic()
                if self.running:
                    self.send(sender)
            now = time.monotonic()
            if self.running and now >= next_check:
                next_check = now + 0.1
                for i, at in enumerate(self.progress_at):
                    if self.outstanding[i] > 0 and now - at > self.stall_s:
                        self.outstanding[i] -= 1  # given up for lost: replaced
                        self.send(i)


def saturate(
    nodes: Nodes, hub: HubProcess, seconds: float, size: int, broadcast: bool
) -> Throughput:
    load = ClosedLoop(nodes, size, broadcast)
    load.start()
    load.serve(WARM_UP_S)  # every queue holds its frame: steady state
    before = hub.stats()
    load.serve(seconds)
    after = hub.stats()
    load.running = False
    wait_idle(nodes, hub)  # the next measurement starts on an empty medium
    wall = after.wall_s - before.wall_s
    cpu = after.cpu_s - before.cpu_s
    deliveries = after.delivered - before.delivered
    # Loss-free links: a unicast frame reaches one node, a broadcast every other node.
    frames = deliveries / (len(nodes) - 1 if broadcast else 1)
    return Throughput(
        frames_per_s=frames / wall,
        ceiling_percent=100 * frames / wall / ceiling(size, broadcast),
        cpu_percent=100 * cpu / wall,
        frames_per_cpu_s=frames / cpu if cpu > 0 else math.inf,
        deliveries_per_cpu_s=deliveries / cpu if cpu > 0 else math.inf,
        wakeups_per_frame=(after.wakeups - before.wakeups) / frames if frames else math.nan,
    )


@dataclass(frozen=True)
class Timing:
    errors_s: list[float]  # per frame: arrival in the receiver's socket - (sendto + airtime)
    lateness_s: list[float]  # per frame: the hub hands it to its socket - model delivery time
    missing: int  # frames or ACKs that never came
    cpu_per_frame_s: float  # the hub's CPU time over the phase per frame (idle gaps included)


def light_load(nodes: Nodes, hub: HubProcess, seconds: float, size: int) -> Timing:
    n = len(nodes)
    rng = random.Random(1)
    errors: list[float] = []
    missing = 0
    before = hub.stats()  # also drops the lateness recorded under saturation
    end = time.monotonic() + seconds
    number = 0
    while time.monotonic() < end:
        src, dst = number % n, (number + 1) % n
        frame = data_frame(src, dst, number, size)
        datagram = zep_datagram(src, frame, number)
        due = airtime(len(frame))
        sent = time.time()  # wall clock: the kernel stamps arrivals in CLOCK_REALTIME
        nodes.send(src, datagram)
        arrived = acked = False
        give_up = time.monotonic() + 0.5
        while not (arrived and acked):
            left = give_up - time.monotonic()
            if left <= 0:
                missing += 1
                break
            for rx in nodes.poll(left, stamped=True):
                if rx.node == dst and rx.is_data and rx.tag == (src, number):
                    errors.append(rx.at - sent - due)
                    arrived = True
                elif rx.node == src and rx.is_ack and rx.frame[2] == number & 0xFF:
                    acked = True
        # The ACK ended the exchange, so the channel is free: after an idle gap the next frame
        # meets no queue. The gap is random so that sends do not lock onto the phase of the
        # loop's millisecond timer granularity, which would bias the error either way.
        nodes.idle_for(rng.uniform(0.0005, 0.0025))
        number += 1
    after = hub.stats()
    cpu = (after.cpu_s - before.cpu_s) / number if number else math.nan
    return Timing(errors, after.lateness_s, missing, cpu)


@dataclass(frozen=True)
class Memory:
    per_node: float  # bytes per registered node
    unicast: float  # bytes per node added by one unicast frame from each node to the next
    broadcast: float  # bytes per node added by one broadcast from each node


def memory(n: int) -> Memory:
    with (
        contextlib.closing(HubProcess(n, trace=True)) as hub,
        contextlib.closing(Nodes(n, hub.port)) as nodes,
    ):
        empty = hub.memory()
        register(nodes, hub)
        registered = hub.memory()
        for i in range(n):
            nodes.send(i, zep_datagram(i, data_frame(i, (i + 1) % n, i, SMALL)))
            if i % 16 == 15:
                nodes.idle_for(0.001)
        done = wait_idle(nodes, hub, 2 * n)  # each frame and its emulated ACK
        unicast = hub.memory()
        for i in range(n):
            nodes.send(i, zep_datagram(i, data_frame(i, None, n + i, SMALL)))
            if i % 16 == 15:
                nodes.idle_for(0.001)
        wait_idle(nodes, hub, done.transmissions + n)
        broadcast = hub.memory()
    return Memory(
        per_node=(registered.traced_bytes - empty.traced_bytes) / n,
        unicast=(unicast.traced_bytes - registered.traced_bytes) / n,
        broadcast=(broadcast.traced_bytes - unicast.traced_bytes) / n,
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class Result:
    nodes: int
    unicast: Throughput
    broadcast: Throughput
    timing: Timing
    memory: Memory
    kernel_timestamps: bool
    hub_dropped: dict[str, int]  # datagrams the hub refused (should be none)
    snapshot: HubSnapshot  # the metrics' reading of the medium, every link state in place
    seconds: float  # how long this N took


def measure(n: int, seconds: float, size: int) -> Result:
    start = time.monotonic()
    with contextlib.closing(HubProcess(n)) as hub, contextlib.closing(Nodes(n, hub.port)) as nodes:
        register(nodes, hub)
        unicast = saturate(nodes, hub, seconds, size, broadcast=False)
        broadcast = saturate(nodes, hub, seconds, size, broadcast=True)
        timing = light_load(nodes, hub, seconds, size)
        kernel = nodes.kernel_timestamps
        dropped = hub.stats().dropped
        snapshot = hub.snapshot()  # after the broadcasts: every node has a link to every other
    mem = memory(n)
    took = time.monotonic() - start
    return Result(n, unicast, broadcast, timing, mem, kernel, dropped, snapshot, took)


def throughput_cells(t: Throughput, deliveries: bool) -> str:
    cells = (
        f"{t.frames_per_s:>9,.0f} {t.ceiling_percent:>9.1f} {t.cpu_percent:>9.1f} "
        f"{t.frames_per_cpu_s:>12,.0f}"
    )
    if deliveries:
        return cells + f" {t.deliveries_per_cpu_s:>16,.0f}"
    return cells + f" {t.wakeups_per_frame:>6.2f}"


def report(results: list[Result], size: int) -> None:
    uni, bc = ceiling(size, False), ceiling(size, True)
    print(
        f"\nThroughput, {size} B frames, closed loop, N nodes contending "
        f"(ceilings: unicast {uni:.0f}, broadcast {bc:.0f} frames/s)"
    )
    columns = f"{'frames/s':>9} {'% ceiling':>9} {'hub CPU %':>9} {'frames/CPU-s':>12}"
    unicast_head = "unicast, ACKed"
    print(f"{'':>5} {unicast_head:<49}  broadcast")
    print(f"{'nodes':>5} {columns} {'wake/f':>6}  {columns} {'deliveries/CPU-s':>16}")
    for r in results:
        print(
            f"{r.nodes:>5} {throughput_cells(r.unicast, False)}  "
            f"{throughput_cells(r.broadcast, True)}"
        )

    print(
        f"\nAirtime scheduling error, light load, {size} B frames "
        f"(airtime {airtime(size) * 1e3:.3f} ms), and memory per node"
    )
    print(
        f"{'nodes':>5} {'err p50 ms':>10} {'err p99 ms':>10} {'late p50 ms':>11} "
        f"{'late p99 ms':>11} {'samples':>7} {'CPU us':>6} {'node KiB':>8} {'+uni KiB':>8} "
        f"{'+bcast KiB':>10} {'snap us':>7} {'links':>6} {'took s':>6}"
    )
    notes: list[str] = []
    for r in results:
        errors, late = r.timing.errors_s, r.timing.lateness_s
        print(
            f"{r.nodes:>5} {percentile(errors, 0.5) * 1e3:>10.3f} "
            f"{percentile(errors, 0.99) * 1e3:>10.3f} {percentile(late, 0.5) * 1e3:>11.3f} "
            f"{percentile(late, 0.99) * 1e3:>11.3f} {len(errors):>7} "
            f"{r.timing.cpu_per_frame_s * 1e6:>6.0f} "
            f"{r.memory.per_node / 1024:>8.2f} {r.memory.unicast / 1024:>8.2f} "
            f"{r.memory.broadcast / 1024:>10.1f} {r.snapshot.seconds * 1e6:>7.0f} "
            f"{r.snapshot.links:>6} {r.seconds:>6.1f}"
        )
        if r.timing.missing:
            notes.append(f"N={r.nodes}: {r.timing.missing} light-load frames or ACKs missing")
        if r.hub_dropped:
            notes.append(f"N={r.nodes}: the hub refused datagrams: {r.hub_dropped}")
        if not r.kernel_timestamps:
            notes.append(f"N={r.nodes}: arrival times taken in user space, not by the kernel")
    print(
        "\nerr: arrival in the receiver's socket - (sendto + airtime); late: the hub's share "
        "(socket send -\nmodel time); CPU: the hub's CPU time per frame and its ACK in that "
        "phase. KiB per node:\nregistered (HELLO), then added by one unicast, then by one "
        "broadcast from every node (directed\nlink states). snap: CPU time of the medium's "
        "reading for one metrics publication, with that\nmany directed link states held."
    )
    for note in notes:
        print(note)


def node_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or not all(2 <= c <= MAX_NODES for c in counts):
        raise argparse.ArgumentTypeError(f"node counts between 2 and {MAX_NODES}, e.g. 2,10,50")
    return counts


def frame_size(text: str) -> int:
    size = int(text)
    if not MIN_SIZE <= size <= MAX_PSDU:
        raise argparse.ArgumentTypeError(f"a frame size between {MIN_SIZE} and {MAX_PSDU}")
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument(
        "--nodes", type=node_counts, default=[2, 10, 50, 200], help="comma-separated N values"
    )
    parser.add_argument(
        "--size", type=frame_size, default=MAX_PSDU, help="frame bytes (PSDU, FCS included)"
    )
    # The hub subprocess is this script too.
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plan", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.trace, args.plan))
        return

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{os.cpu_count()} CPUs, load average {load} at start; Python "
        f"{platform.python_version()} ({platform.python_implementation()}), {platform.system()} "
        f"{platform.machine()}"
    )
    print(
        f"MediumHub (ZEP/UDP on {HOST}, asyncio) in a subprocess, nodes in this process; "
        f"{args.seconds:g} s per measurement",
        flush=True,  # before the progress lines on stderr
    )
    results = []
    for n in args.nodes:
        print(f"  measuring {n} nodes ...", file=sys.stderr, flush=True)
        results.append(measure(n, args.seconds, args.size))
    report(results, args.size)


if __name__ == "__main__":
    main()
