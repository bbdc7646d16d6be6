"""The asyncio front ends of the radio medium: ZEP v2 over UDP between nodes and the medium.

    thing:  TUN -> StationPort -> ZepClient --ZEP/UDP--> MediumHub -> Medium (virtual clock)
    router: TUN -> StationPort ------(in process)------> MediumHub
            MediumHub: Delivery --ZEP/UDP--> ZepClient -> StationPort -> TUN

``ZepClient`` (testbed.node.radio.zep_client) is a node's radio, the other end of the hub.

``MediumHub`` owns one ``Medium`` (a pure model on a virtual clock) and maps its time onto the
event loop's: virtual time = loop.time() - t0. A frame arriving from a node is submitted at the
current virtual time; a single timer sleeps until ``next_event_time()``; when it fires the
medium runs up to now and its deliveries go out at once (the loop's timer resolution, about a
millisecond, delays them slightly in wall time; virtual times stay exact, so airtime and queueing
are modelled exactly and only the real-time rendering jitters). Nodes become known from their
HELLO or first frame, named by the plan's short address -> name table where it knows them (the
border router's own stations are attached in process); the station registry (admission.py)
binds each to its carrier endpoint and registered addresses and refuses the rest (counted by
cause: foreign-sender, station-hijack, too-many-nodes). Garbled input is counted by reason and
dropped; nothing raised by a datagram ends the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Callable

from testbed.contracts.impairment import GilbertElliott
from testbed.contracts.radio import RadioPanConfig, carrier_endpoint
from testbed.node.radio import mac, zep
from testbed.node.radio.addressing import BROADCAST
from testbed.node.radio.admission import WRONG_CHANNEL, Endpoint, Stations
from testbed.node.radio.errors import MalformedError
from testbed.node.radio.hub_socket import HubSocket
from testbed.node.radio.links import LinkConfig
from testbed.node.radio.medium import Medium
from testbed.node.radio.medium_types import Delivery, MediumConfig

# Unplanned stations (guests: RIOT native nodes) admitted when the PAN's configuration sets no
# bound (the plan sets the topology's guest_stations): a flood of fake endpoints stops here.
MAX_NODES = 1024
DRAIN = 256  # datagrams read per wake-up at most, so that timers still run under a flood
READ_SIZE = 2048  # a ZEP datagram is at most 32 + 127 bytes
# Linux's SO_TIMESTAMPNS (asm-generic/socket.h; Python's socket module does not export it).
# Other architectures number it differently: there the hub goes without kernel arrival times.
_SO_TIMESTAMPNS = 35 if platform.machine() in {"x86_64", "i686", "aarch64", "riscv64"} else None
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)
GUEST_GAP = 0.005  # s of wall-clock time for a guest's MAC between two frames (_drain_guest)
GUEST_ACK_WAIT = 0.03  # s to wait for a guest's ACK before its next frame goes anyway
GUEST_ACK_DELAY = 0.0004  # s from a guest's frame to our ACK (its MAC first ends its TX)
GUEST_QUEUE = 512  # datagrams waiting for one guest


def _host(endpoint: Endpoint) -> str:
    return str(endpoint[0]).split("%")[0]


def link_config(loss: float, burst: GilbertElliott | None = None) -> LinkConfig:
    return LinkConfig(delivery=1.0 - loss, burst=burst)


class MediumHub(asyncio.DatagramProtocol):
    """The medium of one PAN behind a UDP socket, on the event loop's clock."""

    def __init__(self, config: RadioPanConfig) -> None:
        self.config = config
        self.planned_link = link_config(config.loss, config.gilbert_elliott)
        self.medium = Medium(
            MediumConfig(
                seed=config.seed,
                max_frame_retries=config.max_frame_retries,
                default_link=self.planned_link,
            )
        )
        self.transport: HubSocket | None = None
        self._sock: socket.socket | None = None
        self._paused = False  # reading paused while the channel is busy (_pace)
        self._contended = False  # a datagram came while the channel was busy
        self._backlog = False  # the last read left datagrams waiting
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._stamp: int | None = None  # ZEP timestamp of the datagrams of this wake-up
        self.stations = Stations(
            {bytes.fromhex(short): name for short, name in config.names.items()},
            MAX_NODES if config.guest_stations is None else config.guest_stations,
            {name: carrier_endpoint(v, config.port) for name, v in config.carriers.items()},
        )
        self._index: dict[str, int] = {}
        self._local: dict[str, Callable[[bytes, float, str], None]] = {}
        self._seq = 0
        self.datagrams_received = 0
        self.datagrams_sent = 0
        self.guest_acks = 0  # immediate ACKs to guests (_ack_guest)
        self._paced: dict[Endpoint, deque[tuple[bytes, bool]]] = {}  # (datagram, wants ACK)
        self._guest_due: dict[Endpoint, float] = {}  # no datagram to the guest before
        self._guest_acked: dict[Endpoint, float] = {}  # guests whose ACK we wait for
        self.dropped: Counter[str] = Counter()  # datagrams the hub refused, by reason
        # Planned stations run our MAC emulation; the others (guests) their own (_guest_frame).
        self._planned = set(config.names.values())

    # ------------------------------------------------------------ lifecycle

    async def open(self, bind: Endpoint | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._t0 = loop.time()
        host, port = bind or (self.config.medium, self.config.port)
        family, kind, proto, _, address = (
            await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            if _SO_TIMESTAMPNS is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)  # arrival times
            sock.bind(address)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        # The hub reads and writes its own socket instead of through asyncio's datagram
        # transport: that one reads one datagram per loop iteration and cannot pause reading
        # (Python 3.11.2, the node image's), and its checks per datagram sent cost more than
        # the medium's own work.
        self._sock = sock
        self.transport = HubSocket(loop, sock, self._readable)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()  # closes the socket too
            self.transport = None
        self._sock = None

    def now(self) -> float:
        """The medium's virtual time for the loop's current time."""
        assert self._loop is not None, "open() first"
        return self._loop.time() - self._t0

    # ------------------------------------------------------------ nodes

    def attach_local(
        self, name: str, lladdrs: tuple[bytes, ...], receive: Callable[[bytes, float, str], None]
    ) -> Callable[[bytes], None]:
        """A station in this process (the border router's); returns its transmit function.
        ``receive(frame, time, sender)`` learns which station sent each frame."""
        self.medium.attach(name, *lladdrs)
        self.stations.add_local(name, lladdrs)
        self._local[name] = receive
        self._index[name] = len(self._index)
        return lambda frame: self.submit(name, frame)

    def admit_station(self, name: str, short: int, carrier: str) -> None:
        """A thing that moves onto this PAN: a planned station from now on, bound to its
        carrier address (it attaches to the medium with its first HELLO or frame). KeyError
        (the owner's name) if another station holds that short address."""
        self.stations.add_planned(name, short.to_bytes(2, "big"), (carrier, self.config.port))
        if name in self.medium.nodes():
            self.medium.detach(name)
        self._planned.add(name)
        self.config.names[f"{short:04x}"] = name

    def release_station(self, name: str) -> bool:
        """A thing that left this PAN: off the medium and out of the registry, so nobody
        speaks with its addresses here any more. False if it was not a station here."""
        known = self.stations.remove(name)
        if name in self.medium.nodes():
            self.medium.detach(name)
            known = True
        self._planned.discard(name)
        for short, owner in list(self.config.names.items()):
            if owner == name:
                del self.config.names[short]
        return known

    def _node_for(
        self, endpoint: Endpoint, lladdr: bytes | None, hello: bool = False
    ) -> str | None:
        """The medium node behind ``endpoint`` (attached on first sight), None if refused: the
        station registry (admission.py) binds stations to endpoints and addresses."""
        verdict = self.stations.admit(endpoint, lladdr, hello)
        if isinstance(verdict, str):
            self.dropped[verdict] += 1
            return None
        name = verdict.name
        if verdict.new:
            self.medium.attach(name)
            self._index[name] = len(self._index)
        for addr in verdict.learn:
            if self.medium.owner(addr) != name:
                self.medium.learn(name, addr)
        return name

    # ------------------------------------------------------------ input

    def datagram_received(self, data: bytes, addr: Endpoint) -> None:
        """One datagram from ``addr``, now (the socket's datagrams come through ``_readable``;
        this entry serves callers that hand datagrams in directly, as benchmarks do)."""
        self._receive(data, addr, self.now())
        self._advance()

    def _readable(self) -> None:
        """The loop's read callback: whatever waits in the socket, then the medium runs."""
        self._contended = self._contended or self.medium.busy
        self._backlog = self._drain()
        self._advance()

    def _drain(self, floor: float = 0.0) -> bool:
        """Datagrams waiting in the socket (up to ``DRAIN``), each at its kernel arrival time.

        While the channel is busy and frames contend for it, the hub does not wake up for
        arriving datagrams (``_pace``): a frame arriving then could not start before the channel
        frees, and the medium's timer wakes the hub at that moment anyway. The datagrams are
        read then, and each is modelled at the time the kernel stamped on it (SO_TIMESTAMPNS),
        the medium having run up to that time first: the model is the same as if the hub had
        woken for each, at one wake-up per frame instead of two. True when more datagrams may
        be waiting (a flood): then the hub reads on whatever the channel does, as fast as the
        event loop lets it."""
        sock, loop, medium, transport = self._sock, self._loop, self.medium, self.transport
        if sock is None or loop is None or transport is None:
            return False
        waiting = transport.waiting
        self._stamp = None
        now = self.now()
        floor = max(floor, self.medium.now)  # the datagrams' order is kept, whatever the stamps
        offset = loop.time() - self._t0 - time.time()  # virtual time = wall clock + offset
        for i in range(DRAIN):
            if i and not waiting(0):  # the first read goes ahead: something usually waits
                return False
            try:
                data, ancillary, _, addr = sock.recvmsg(READ_SIZE, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                self.dropped["socket-error"] += 1
                return False
            at = now
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = _TIMESPEC.unpack_from(value)
                    at = min(now, max(floor, sec + nsec * 1e-9 + offset))
                    due = medium.next_event_time()
                    if due is not None and due <= at:
                        for event in medium.run(at):
                            if type(event) is Delivery:
                                self._deliver(event)
            floor = at
            self._receive(data, addr, at)
        return True

    def _receive(self, data: bytes, addr: Endpoint, at: float) -> None:
        self.datagrams_received += 1
        data_frame = zep.data_frame(data)  # a data datagram, the common case, without ZepData
        if data_frame is None:
            try:
                msg = zep.decode(data)
            except MalformedError as exc:
                self.dropped[f"garbled-{exc.reason}"] += 1
                return
            if isinstance(msg, zep.ZepHello):
                self._node_for(addr, msg.ext_addr, hello=True)
                return
            if not isinstance(msg, zep.ZepData):
                return
            data_frame = msg.channel, msg.frame
        channel, frame = data_frame
        if channel != self.config.channel:
            self.dropped[WRONG_CHANNEL] += 1
            return
        try:
            info: mac.MacFrame | None = mac.decode(frame)
        except MalformedError:
            info = None  # the medium counts it as garbled, if the sender is known
        name = self._node_for(addr, info.src if info is not None else None)
        if name is not None:
            self.medium.submit(name, frame, at, info)
            if name not in self._planned and info is not None:
                self._guest_frame(addr, channel, info)

    def _guest_frame(self, addr: Endpoint, channel: int, f: mac.MacFrame) -> None:
        """A guest (RIOT native) runs its own MAC, on the host's clock:

        - after its socket write it waits only 864 us of wall-clock time for the ACK, less than
          the frame's modelled airtime; so the hub answers a unicast data frame that has a
          receiver on the medium with an ACK at once (``GUEST_ACK_DELAY`` later: an ACK that
          arrives before the guest's MAC has seen its own transmission end trips it). The medium
          models the exchange (airtime, the ACK's loss, retries) as for our stations, and its
          synthesised ACK is not sent again (``_deliver``). A guest that gets no ACK in time
          retransmits, and receives nothing meanwhile;
        - its ACK for a frame we sent it says that its MAC is ready for the next one
          (``_drain_guest``)."""
        if self._sock is None or self._loop is None:
            return
        now = self._loop.time()
        if f.frame_type == mac.FRAME_ACK:
            if self._guest_acked.pop(addr, None) is not None:
                self._guest_due[addr] = now + GUEST_GAP
                self._loop.call_at(now + GUEST_GAP, self._drain_guest, addr)
            return
        if (
            f.frame_type != mac.FRAME_DATA
            or not f.ack_request
            or f.dst is None
            or self.medium.owner(f.dst) is None
        ):
            return
        ack = zep.encode_data(mac.encode_ack(f.seq), channel=channel, seq=self._seq)
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        self._loop.call_at(now + GUEST_ACK_DELAY, self._send_guest_ack, ack, addr)
        # Its MAC is busy with this exchange: our next frame for it waits.
        self._guest_due[addr] = max(
            self._guest_due.get(addr, 0.0), now + GUEST_ACK_DELAY + GUEST_GAP
        )

    def _send_guest_ack(self, ack: bytes, addr: Endpoint) -> None:
        if self._send(ack, addr):
            self.guest_acks += 1

    def _send(self, datagram: bytes, endpoint: Endpoint) -> bool:
        """One datagram out of the hub's socket; a full send buffer drops it, as a lossy channel
        would (not retried)."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto(datagram, endpoint)
        except (BlockingIOError, InterruptedError):
            self.dropped["send-buffer-full"] += 1
            return False
        except OSError:
            self.dropped["socket-error"] += 1
            return False
        return True

    def error_received(self, exc: Exception) -> None:
        self.dropped["socket-error"] += 1  # a node went away; its frames will find no one

    def submit(self, name: str, frame: bytes) -> None:
        # Run the medium up to now at once: the frame starts on the air in this call when the
        # channel is free, instead of one more trip through the event loop (a zero-delay timer
        # cost as much CPU as the rest of the frame's handling).
        self.medium.submit(name, frame, self.now())
        self._advance()

    # ------------------------------------------------------------ clock

    def _arm(self) -> None:
        t = self.medium.next_event_time()
        if t is None or self._loop is None:
            return
        when = self._t0 + t
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._pump)

    def _pump(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        if self._paused:
            self._backlog = self._drain()
        self._advance()

    def _advance(self) -> None:
        self._stamp = None
        for event in self.medium.run(self.now()):
            if type(event) is Delivery:
                self._deliver(event)
        self._arm()
        self._pace()

    def _pace(self) -> None:
        """Once a datagram has come while the channel was busy, read the socket only while the
        channel is idle (see ``_drain``), until it is idle again. Under light load nothing comes
        while a frame is on the air, and the socket stays read: pausing and resuming it for every
        frame cost two epoll_ctl calls and the event loop's bookkeeping of its readers."""
        busy = self.medium.busy
        if not busy:
            self._contended = False
        pause = busy and self._contended and self._timer is not None and not self._backlog
        if pause != self._paused and self.transport is not None:
            self.transport.reading(not pause)
            self._paused = pause

    def _deliver(self, d: Delivery) -> None:
        dst, frame = d.dst, d.frame
        local = self._local.get(dst)
        if local is not None:
            local(frame, d.time + self._t0, d.src)
            return
        endpoint = self.stations.endpoint(dst)
        if endpoint is None or self._sock is None:
            return
        planned = dst in self._planned
        if not planned and frame[0] & 0x07 == mac.FRAME_ACK:
            return  # the guest had its ACK at once (_ack_guest)
        # The medium's frames are at most 127 bytes (it decoded them): the header is packed
        # directly, as zep.encode_data would write it. The datagrams a wake-up sends out share
        # one timestamp (they leave within microseconds of each other).
        stamp = self._stamp
        if stamp is None:
            stamp = self._stamp = zep.ntp_timestamp(time.time())
        datagram = (
            zep.data_header(
                self.config.channel, self._index.get(d.src, 0), self._seq, stamp, len(frame)
            )
            + frame
        )
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        if planned:
            if self._send(datagram, endpoint):
                self.datagrams_sent += 1
            return
        queue = self._paced.setdefault(endpoint, deque())
        if len(queue) >= GUEST_QUEUE:
            self.dropped["guest-queue-full"] += 1
            return
        info = mac.decode(d.frame)  # the medium decoded it already: it is well formed
        wants_ack = info.frame_type == mac.FRAME_DATA and info.ack_request and info.dst is not None
        queue.append((datagram, wants_ack and info.dst != BROADCAST))
        if len(queue) == 1:
            self._drain_guest(endpoint)

    def _drain_guest(self, endpoint: Endpoint) -> None:
        """Frames to a guest at least ``GUEST_GAP`` apart in wall-clock time: the medium spaces
        them by airtime in virtual time, but a late timer can release several at once, and a
        RIOT native node that receives a frame while its MAC still sends the ACK for the
        previous one fails an assertion and halts (real radios cannot overlap like that)."""
        queue = self._paced.get(endpoint)
        if not queue or self._sock is None or self._loop is None:
            return
        now = self._loop.time()
        due = self._guest_due.get(endpoint, 0.0)
        if now < due:
            self._loop.call_at(due, self._drain_guest, endpoint)
            return
        datagram, wants_ack = queue.popleft()
        if self._send(datagram, endpoint):
            self.datagrams_sent += 1
        else:
            wants_ack = False  # lost on the way out: no ACK will come for it
        # The next frame waits for the guest's ACK (it releases us early), at most
        # GUEST_ACK_WAIT; a frame without ACK request leaves it GUEST_GAP to process it.
        wait = GUEST_ACK_WAIT if wants_ack else GUEST_GAP
        if wants_ack:
            self._guest_acked[endpoint] = now
        self._guest_due[endpoint] = now + wait
        if queue:
            self._loop.call_at(now + wait, self._drain_guest, endpoint)

    # ------------------------------------------------------------ live link changes

    def set_links(self, config: LinkConfig, src: str | None = None, dst: str | None = None,
                  node: str | None = None) -> None:  # fmt: skip
        """Every link (no names), the directed links from/to the named nodes, or those from and
        to ``node`` (one station's radio both ways; its neighbours keep theirs)."""
        if (src, dst, node) == (None, None, None):
            return self.medium.links.set_default(config)
        back = self._pairs(None, node) if node is not None else []
        for a, b in self._pairs(src or node, dst) + back:
            self.medium.set_link(a, b, config)

    def reset_links(self) -> None:
        """Back to the plan: the planned default on every link, per-link settings removed."""
        self.medium.links.reset_all(self.planned_link)

    def _pairs(self, src: str | None, dst: str | None) -> list[tuple[str, str]]:
        nodes = self.medium.nodes()
        for given in (src, dst):
            if given is not None and given not in nodes:
                raise KeyError(given)
        return [
            (a, b) for a in ([src] if src else nodes) for b in ([dst] if dst else nodes) if a != b
        ]

    def endpoints(self) -> dict[str, str]:
        return {name: f"[{_host(ep)}]:{ep[1]}" for name, ep in self.stations.endpoints().items()}
