"""The radio medium of one PAN: a pure, event-driven model on a virtual clock.

No sockets and no wall clock: a front end (frontend.MediumHub, the ZEP/UDP server) calls
``submit(node, frame, at)`` when a frame arrives, ``run(until)`` to advance the clock, sends the
returned events out, and sleeps until ``next_event_time()``. Tests drive it the same way and get
the same answer every time for the same seed.

What it models, and why so:
- One channel, one frame at a time. Each node has a FIFO transmit queue (bounded, drops
  ``queue-full``); when the channel is free the node whose head frame has waited longest goes
  next. No collisions and no CSMA backoff: a perfect scheduler, so airtime and queueing delay
  are exact and loss comes only from the link model.
- Airtime at 250 kbit/s: (6 + PSDU bytes) * 32 us; a 127-byte frame holds the channel 4.256 ms.
- Per directed link loss (links.py: delivery probability, optional Gilbert-Elliott), drawn
  once per receiver per frame, ACKs included.
- MAC acknowledgements and retransmissions (IEEE 802.15.4 unslotted, macMaxFrameRetries
  default 3, so at most 4 attempts): for a unicast frame with the ACK-request bit, the receiver
  answers aTurnaroundTime (192 us) after the frame with a 5-byte ACK (352 us) that crosses the
  reverse link with its own loss; without an ACK the sender tries again macAckWaitDuration
  (864 us) after the end of its frame, queueing for the channel like everyone else. A frame is
  delivered if any attempt's data frame arrives (a lost ACK makes the receiver see duplicates,
  which its MAC drops), so a k-fragment packet is lost with probability 1 - (1 - p^4)^k for data
  loss p, whatever the ACK loss.
- Who does the MAC: our stations do not acknowledge or retransmit; the medium does it for them
  (``emulate_mac=True``). A RIOT ``native`` node does its own (``emulate_mac=False``): the medium
  carries its frames once each, its ACK frames like any frame, and still synthesises the ACK
  when the *receiver* is one of our stations, which cannot send one.
- Unicast frames reach only the node owning the destination address (given at attach, from a
  ZEP HELLO via ``learn``, or the first node to use it as a frame source);
  broadcasts and address-less frames (ACKs from RIOT nodes) reach every other node, each over
  its own link. ``record_air`` adds an ``OnAir`` event per transmission, for captures.

Fragmented datagrams (``fates``, fate.py): for each unicast datagram our stations send in
fragments, whether every fragment arrived, and the loss the link model predicts for it.

Counters (``snapshot()``): per node frames submitted, transmissions, retries, frames received,
ACKs, airtime, queue length (now and peak), drops by cause (queue-full, retries-exhausted,
channel-loss of its transmissions, garbled input); per directed link frames, delivered, ACKs,
airtime, channel-loss, ack-loss, retries-exhausted; channel busy time and utilisation.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from testbed.node.radio import mac
from testbed.node.radio.addressing import BROADCAST, check_lladdr
from testbed.node.radio.errors import MalformedError
from testbed.node.radio.fate import DatagramFates, Fragment, frame_loss, parse_fragment
from testbed.node.radio.links import LinkConfig, LinkState, LinkTable
from testbed.node.radio.medium_types import (
    CHANNEL_LOSS,
    GARBLED,
    QUEUE_FULL,
    RETRIES_EXHAUSTED,
    Delivery,
    MediumConfig,
    MediumEvent,
    OnAir,
    TxStatus,
)
from testbed.node.radio.phy import ACK_AIRTIME_S, ACK_WAIT_S, TURNAROUND_S, airtime

_ACKS = [mac.encode_ack(seq) for seq in range(256)]  # every ACK frame there is, made once

# Internal events are actions ordered by (time, insertion) in one heap; None only wakes the
# scheduler (a retry becoming eligible while the channel is idle); a Delivery is handed out
# as it is (most events are deliveries: no closure to build and call for each).
_Action = Callable[[list[MediumEvent]], None] | Delivery | None
_SUCCESS, _RETRY, _EXHAUSTED = range(3)


@dataclass(slots=True)
class _Pending:
    frame: bytes
    info: mac.MacFrame
    attempts: int = 0
    delivered: bool = False  # some attempt's data frame reached its (unicast) receiver
    q: float | None = None  # its modelled loss (fate.py), set at its first attempt
    frag: Fragment | None = None  # its 6LoWPAN fragment header (fate.py), parsed once


@dataclass(slots=True)
class _Node:
    name: str
    emulate_mac: bool
    addresses: set[bytes]
    queue: deque[_Pending] = field(default_factory=deque)
    scheduled: bool = False  # in the ready heap, or its head is on the air
    submitted: int = 0
    transmissions: int = 0
    retries: int = 0
    delivered_frames: int = 0  # frames whose MAC exchange succeeded (or one-shot frames sent)
    received: int = 0
    acks_sent: int = 0
    acks_received: int = 0
    no_receiver: int = 0
    airtime_s: float = 0.0
    queue_max: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    garbled: Counter[str] = field(default_factory=Counter)


class Medium:
    def __init__(self, config: MediumConfig | None = None) -> None:
        self.config = config or MediumConfig()
        self.links = LinkTable(self.config.default_link, self.config.seed)
        self.now = 0.0
        self._nodes: dict[str, _Node] = {}
        self._owner: dict[bytes, str] = {}
        self._events: list[tuple[float, int, _Action]] = []
        self._ready: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._busy = False
        self.busy_s = 0.0
        self.transmissions = 0
        self.garbled: Counter[str] = Counter()
        self.fates = DatagramFates()

    # ------------------------------------------------------------ nodes and links

    def attach(self, name: str, *addresses: bytes, emulate_mac: bool = True) -> None:
        if name in self._nodes:
            raise ValueError(f"node {name!r} is attached already")
        self._nodes[name] = _Node(name, emulate_mac, set())
        for addr in addresses:
            self.learn(name, addr)

    def learn(self, name: str, lladdr: bytes) -> None:
        """``name`` owns ``lladdr`` (from configuration, a ZEP HELLO or a frame's source)."""
        addr = check_lladdr(lladdr)
        if addr == BROADCAST:
            raise ValueError("the broadcast address belongs to nobody")
        old = self._owner.get(addr)
        if old is not None and old != name and old in self._nodes:
            self._nodes[old].addresses.discard(addr)
        self._owner[addr] = name
        self._nodes[name].addresses.add(addr)

    def detach(self, name: str) -> None:
        node = self._nodes.pop(name)
        for addr in node.addresses:
            if self._owner.get(addr) == name:
                del self._owner[addr]

    def owner(self, lladdr: bytes) -> str | None:
        return self._owner.get(lladdr)

    def nodes(self) -> list[str]:
        return list(self._nodes)

    def set_link(self, src: str, dst: str, config: LinkConfig) -> None:
        self.links.configure(src, dst, config)

    def reset_link(self, src: str, dst: str) -> None:
        self.links.reset(src, dst)

    # ------------------------------------------------------------ input

    def submit(
        self,
        name: str,
        frame: bytes,
        at: float | None = None,
        info: mac.MacFrame | None = None,
    ) -> str | None:
        """Hand a frame (PSDU with FCS) from node ``name`` to the medium at time ``at`` (default:
        now; earlier times count as now). Returns None when accepted, ``"garbled"`` when the
        frame does not decode (counted per reason, never raised). Queue overflow shows up
        later, as a failed ``TxStatus``. ``info``: the frame's ``mac.decode``, when the caller
        has it already (the hub decodes each frame once)."""
        node = self._nodes[name]
        if info is None:
            try:
                info = mac.decode(frame)
            except MalformedError as exc:
                self.garbled[exc.reason] += 1
                node.garbled[exc.reason] += 1
                node.dropped[GARBLED] += 1
                return GARBLED
        t = self.now if at is None or at < self.now else at
        data = frame if type(frame) is bytes else bytes(frame)
        heapq.heappush(
            self._events, (t, next(self._order), lambda out: self._on_submit(name, data, info, out))
        )
        return None

    # ------------------------------------------------------------ clock

    def next_event_time(self) -> float | None:
        return self._events[0][0] if self._events else None

    def run(self, until: float) -> list[MediumEvent]:
        """Process everything up to and including ``until``; returns the events in time order."""
        out: list[MediumEvent] = []
        events = self._events
        ready = self._ready
        while events and events[0][0] <= until:
            t, _, action = heapq.heappop(events)
            self.now = t
            if isinstance(action, Delivery):
                out.append(action)
            elif action is not None:
                action(out)
            if ready and not self._busy:
                self._try_start(out)
        self.now = max(self.now, until)
        return out

    def run_all(self, limit: float = float("inf")) -> list[MediumEvent]:
        """Run until nothing is left to do (tests, offline simulation)."""
        out: list[MediumEvent] = []
        while self._events and self._events[0][0] <= limit:
            out += self.run(self._events[0][0])
        return out

    # ------------------------------------------------------------ internals

    def _schedule(self, t: float, action: _Action) -> None:
        heapq.heappush(self._events, (t, next(self._order), action))

    def _deliver(self, delivery: Delivery) -> None:
        heapq.heappush(self._events, (delivery.time, next(self._order), delivery))

    def _make_ready(self, node: _Node, t: float) -> None:
        node.scheduled = True
        heapq.heappush(self._ready, (t, next(self._order), node.name))
        if t > self.now:
            self._schedule(t, None)

    def _on_submit(
        self, name: str, frame: bytes, info: mac.MacFrame, out: list[MediumEvent]
    ) -> None:
        node = self._nodes.get(name)
        if node is None:
            return
        node.submitted += 1
        src = info.src
        if (
            src is not None
            and src != BROADCAST
            and src not in self._owner
            and all(len(a) != len(src) for a in node.addresses)
        ):
            # A RIOT node announces only its EUI-64 (HELLO); its short address becomes known
            # from its frames. First come, first served: a frame cannot take over an address
            # another node owns (that would silently cut the owner off), and a node learns at
            # most one address of each length (invented sources cannot grow the table).
            self.learn(name, src)
        # fate.py follows a unicast frame of ours from here to the end of its MAC exchange
        # (its fragment header is parsed once, here, and kept with the frame until it is done)
        frag = parse_fragment(info.payload) if node.emulate_mac else None
        followed = None
        if frag is not None and info.dst is not None:
            owner = self._owner.get(info.dst)
            followed = owner if owner != name else None
            if followed is not None:
                self.fates.queued_fragment(name, followed, frag)
        if len(node.queue) >= self.config.queue_limit:
            node.dropped[QUEUE_FULL] += 1
            if followed is not None and frag is not None:
                q = self._frame_loss(node, followed, info.ack_request)
                self.fates.done_fragment(name, followed, frag, False, q)
            out.append(TxStatus(self.now, name, info.seq, False, 0, QUEUE_FULL))
            return
        node.queue.append(_Pending(frame, info, frag=frag))
        node.queue_max = max(node.queue_max, len(node.queue))
        if not node.scheduled:
            self._make_ready(node, self.now)

    def _try_start(self, out: list[MediumEvent]) -> None:
        while not self._busy and self._ready and self._ready[0][0] <= self.now:
            _, _, name = heapq.heappop(self._ready)
            node = self._nodes.get(name)
            if node is None or not node.queue:
                continue  # detached meanwhile
            self._transmit(node, out)

    def _receivers(self, node: _Node, dst: bytes | None) -> list[_Node]:
        if dst is None or dst == BROADCAST:
            return [n for n in self._nodes.values() if n is not node]
        owner = self._nodes.get(self._owner.get(dst, ""))
        return [owner] if owner is not None and owner is not node else []

    def _cross(self, link: LinkState, air: float, is_ack: bool) -> bool:
        link.airtime_s += air
        ok = link.transmit()
        if is_ack:
            link.acks += 1
            link.acks_lost += not ok
        else:
            link.frames += 1
            link.delivered += ok
            link.lost += not ok
        return ok

    def _transmit(self, node: _Node, out: list[MediumEvent]) -> None:
        pending = node.queue[0]
        info = pending.info
        pending.attempts += 1
        node.transmissions += 1
        node.retries += pending.attempts > 1
        self.transmissions += 1
        start = self.now
        air = airtime(len(pending.frame))
        end_data = start + air
        node.airtime_s += air
        self.busy_s += air
        self._busy = True
        if self.config.record_air:
            out.append(OnAir(start, end_data, node.name, pending.frame))
        is_ack = info.frame_type == mac.FRAME_ACK
        receivers = self._receivers(node, info.dst)
        if not receivers:
            node.no_receiver += 1
        heard: list[_Node] = []
        # _cross and _deliver written out: a broadcast runs this once per receiver
        state, events, order, src, frame = (
            self.links.state,
            self._events,
            self._order,
            node.name,
            pending.frame,
        )
        for rx in receivers:
            link = state(src, rx.name)
            link.airtime_s += air
            ok = link.transmit()
            if is_ack:
                link.acks += 1
                link.acks_lost += not ok
            else:
                link.frames += 1
                link.delivered += ok
                link.lost += not ok
            if ok:
                heard.append(rx)
                if is_ack:
                    rx.acks_received += 1
                else:
                    rx.received += 1
                heapq.heappush(
                    events, (end_data, next(order), Delivery(end_data, src, rx.name, frame))
                )
            else:
                node.dropped[CHANNEL_LOSS] += 1

        unicast = info.dst is not None and info.dst != BROADCAST and not is_ack
        target = receivers[0] if unicast and receivers else None
        wants_ack = (
            unicast
            and info.ack_request
            and (node.emulate_mac or (target is not None and target.emulate_mac))
        )
        if unicast and target is not None and node.emulate_mac:
            if pending.attempts == 1 and pending.frag is not None:
                pending.q = self._frame_loss(node, target.name, wants_ack)
            pending.delivered = pending.delivered or bool(heard)
        end = end_data
        acked = False
        if wants_ack and target is not None and heard:
            # The receiver's MAC answers after the turnaround; the ACK crosses the reverse link.
            ack = _ACKS[info.seq]
            ack_start = end_data + TURNAROUND_S
            end = ack_start + ACK_AIRTIME_S
            target.acks_sent += 1
            target.airtime_s += ACK_AIRTIME_S
            self.busy_s += ACK_AIRTIME_S
            self.transmissions += 1
            if self.config.record_air:
                out.append(OnAir(ack_start, end, target.name, ack))
            if self._cross(self.links.state(target.name, node.name), ACK_AIRTIME_S, True):
                acked = True
                node.acks_received += 1
                self._deliver(Delivery(end, target.name, node.name, ack))
            else:
                target.dropped[CHANNEL_LOSS] += 1

        if not (wants_ack and node.emulate_mac) or acked:
            outcome = _SUCCESS
        elif pending.attempts <= self.config.max_frame_retries:
            outcome = _RETRY
        else:
            outcome = _EXHAUSTED
        name, retry_at = node.name, end_data + ACK_WAIT_S
        self._schedule(end, lambda out: self._on_end(name, outcome, retry_at, target, out))

    def _on_end(
        self,
        name: str,
        outcome: int,
        retry_at: float,
        target: _Node | None,
        out: list[MediumEvent],
    ) -> None:
        self._busy = False
        node = self._nodes.get(name)
        if node is None or not node.queue:
            return
        pending = node.queue[0]
        if outcome == _RETRY:
            self._make_ready(node, retry_at)
            return
        node.queue.popleft()
        if target is not None and pending.frag is not None:
            self.fates.done_fragment(name, target.name, pending.frag, pending.delivered, pending.q)
        if outcome == _SUCCESS:
            node.delivered_frames += 1
            out.append(TxStatus(self.now, name, pending.info.seq, True, pending.attempts))
        else:
            node.dropped[RETRIES_EXHAUSTED] += 1
            if target is not None:
                self.links.state(name, target.name).retries_exhausted += 1
            seq = pending.info.seq
            out.append(TxStatus(self.now, name, seq, False, pending.attempts, RETRIES_EXHAUSTED))
        node.scheduled = False
        if node.queue:
            self._make_ready(node, self.now)

    def _frame_loss(self, node: _Node, dst: str, retried: bool) -> float | None:
        """The modelled loss of a frame of ``node`` to ``dst`` (fate.py), ``retried`` by the
        medium's MAC or sent once; None on a bursty link (losses not independent)."""
        link = self.links.config(node.name, dst)
        if link.burst is not None:
            return None
        return frame_loss(1.0 - link.delivery, self.config.max_frame_retries if retried else None)

    # ------------------------------------------------------------ observation

    @property
    def busy(self) -> bool:
        """A transmission (and its ACK) holds the channel; its end is a scheduled event."""
        return self._busy

    def queue_length(self, name: str) -> int:
        return len(self._nodes[name].queue)

    def snapshot(self, links: bool = True) -> dict[str, object]:
        """Plain nested dicts (str keys, numbers) for metrics and reports. ``links=False``
        leaves out the per-link counters and fates: the periodic metrics need only the nodes
        (their cost stays linear in the stations), and links grow with the square of the
        nodes."""
        nodes: dict[str, object] = {}
        for n in self._nodes.values():
            nodes[n.name] = {
                "emulate_mac": n.emulate_mac,
                "frames_submitted": n.submitted,
                "frames_sent": n.delivered_frames,
                "transmissions": n.transmissions,
                "retries": n.retries,
                "frames_received": n.received,
                "acks_sent": n.acks_sent,
                "acks_received": n.acks_received,
                "no_receiver": n.no_receiver,
                "airtime_s": n.airtime_s,
                "queue_length": len(n.queue),
                "queue_max": n.queue_max,
                "dropped": dict(n.dropped),
                "garbled": dict(n.garbled),
            }
        out: dict[str, object] = {
            "time_s": self.now,
            "channel": {
                "busy_s": self.busy_s,
                "utilisation": self.busy_s / self.now if self.now > 0 else 0.0,
                "transmissions": self.transmissions,
                "queued_frames": sum(len(n.queue) for n in self._nodes.values()),
            },
            "garbled": dict(self.garbled),
            "nodes": nodes,
        }
        if links:
            out["fates"] = self.fates.snapshot()
            out["links"] = {
                f"{src}->{dst}": s.snapshot() for (src, dst), s in self.links.states().items()
            }
        return out
