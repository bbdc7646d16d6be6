"""What each bootstrap cost, seen from the trust center's socket.

A ``BootstrapTracker`` is the server's ``DatagramSink``: every UDP datagram is named with the
same classifier the things use (``coap.classify``), and collected per peer address from the
peer's EDHOC message_1 on. When an enrollment resource has answered (``answered``), the next
response datagram to that peer closes the attempt: its duration (message_1 received to
enrollment response sent) and the bytes and datagrams of every message in both directions,
retransmissions included, go to ``on_done``.

Memory stays bounded on a long-running server: attempts that never reach an answer (a flood of
message_1s, a thing that gave up) are dropped after ``stale_after`` seconds or beyond
``max_open`` open attempts, oldest first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from testbed.node.bootstrap.accounting import (
    Classifier,
    DatagramRecord,
    Direction,
    MessageCost,
    Peer,
    summarize,
)
from testbed.node.coap.classify import CoapClassifier

_NOT_ANSWERS = frozenset({"coap_ack", "coap_reset", "coap_ping"})


@dataclass(frozen=True)
class Answer:
    """What the enrollment resource decided, handed over until the response is on the wire."""

    resource: str  # the path, e.g. /.well-known/est/sen
    outcome: str  # "success" or "refused"
    reason: str | None  # RefusalReason value for refusals
    thing: str | None = None  # serial, when the peer is a known device
    kid: bytes | None = None
    vendor: str = "unknown"
    model: str = "unknown"


@dataclass(frozen=True)
class BootstrapReport:
    peer: Peer
    answer: Answer
    started_at: float  # wall clock of message_1 (or of the request, without EDHOC)
    duration_s: float
    edhoc: bool  # False: the request came over an existing context, no message_1 seen
    messages: tuple[MessageCost, ...]

    def total(self, direction: Direction) -> tuple[int, int]:
        chosen = [m for m in self.messages if m.direction == direction]
        return sum(m.bytes for m in chosen), sum(m.datagrams for m in chosen)

    @property
    def retransmissions(self) -> int:
        return sum(m.retransmissions for m in self.messages)


@dataclass
class _Attempt:
    started: float
    started_wall: float
    edhoc: bool
    records: list[DatagramRecord] = field(default_factory=list)
    seen: set[tuple[Direction, Hashable]] = field(default_factory=set)
    answer: Answer | None = None


class BootstrapTracker:
    def __init__(
        self,
        on_done: Callable[[BootstrapReport], None],
        *,
        classifier: Classifier | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_open: int = 4096,
        stale_after: float = 300.0,
        start_message: str = "edhoc_message_1",
    ) -> None:
        self.on_done = on_done
        # The message that opens an attempt: EDHOC message_1, or a DTLS ClientHello.
        self.start_message = start_message
        self.classifier = classifier or CoapClassifier()
        self._clock = clock
        self._wall = wall_clock
        self.max_open = max_open
        self.stale_after = stale_after
        self._open: OrderedDict[Peer, _Attempt] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    # -- DatagramSink --------------------------------------------------------------------

    def record(self, direction: Direction, peer: Peer, data: bytes) -> None:
        found = self.classifier.classify(direction, peer, data)
        now = self._clock()
        attempt = self._open.get(peer)
        if direction == "received" and found.message == self.start_message:
            copy = attempt is not None and ("received", found.copy_key) in attempt.seen
            if not copy:  # a new handshake from this address starts a new attempt
                attempt = self._start(peer, now, edhoc=True)
        if attempt is None:
            return
        retransmission = False
        if found.copy_key is not None:
            key = (direction, found.copy_key)
            retransmission = key in attempt.seen
            attempt.seen.add(key)
        attempt.records.append(
            DatagramRecord(
                now,
                direction,
                peer,
                len(data),
                found.message,
                found.message_bytes,
                retransmission,
            )
        )
        if direction == "sent" and attempt.answer is not None and found.message not in _NOT_ANSWERS:
            del self._open[peer]
            self.on_done(
                BootstrapReport(
                    peer,
                    attempt.answer,
                    attempt.started_wall,
                    now - attempt.started,
                    attempt.edhoc,
                    summarize(attempt.records),
                )
            )

    # -- from the resources --------------------------------------------------------------

    def answered(self, peer: Peer, answer: Answer, received_at: float | None = None) -> None:
        """The resource has decided; the next response datagram to ``peer`` ends the attempt.

        Without an open attempt (the peer reused an OSCORE context, no message_1 seen) one
        starts at ``received_at`` (monotonic), so that the request still gets a row.
        """
        attempt = self._open.get(peer)
        if attempt is None:
            attempt = self._start(peer, received_at or self._clock(), edhoc=False)
        attempt.answer = answer

    def _start(self, peer: Peer, now: float, *, edhoc: bool) -> _Attempt:
        self._expire(now)
        attempt = _Attempt(now, self._wall() - (self._clock() - now), edhoc)
        self._open.pop(peer, None)
        self._open[peer] = attempt
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return attempt

    def _expire(self, now: float) -> None:
        while self._open:
            first = next(iter(self._open.values()))
            if now - first.started < self.stale_after:
                break
            self._open.popitem(last=False)
