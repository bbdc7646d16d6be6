"""What a protocol run cost on the wire: every datagram, classified and counted.

A transport tap (``testbed.node.coap.transport.RecordingUDP6`` for CoAP,
``testbed.node.dtls.endpoint`` for DTLS) calls ``WireLog.record`` for each UDP payload it sends
or receives. A protocol-specific ``Classifier`` names the protocol message the datagram carries
and says which datagrams are copies of one another, so that retransmissions are counted from
what actually crossed the socket, not from what a library claims to have sent.

Sizes are UDP payload bytes; add ``IPV6_UDP_HEADER_BYTES`` per datagram for IP-level totals
(before 6LoWPAN compression, which the radio medium accounts for separately).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

Direction = Literal["sent", "received"]
Peer = tuple[str, int]

IPV6_UDP_HEADER_BYTES = 40 + 8


@dataclass(frozen=True)
class Classification:
    message: str  # protocol message, e.g. "edhoc_message_1", "oscore_request"
    # Size of the protocol message proper (e.g. the EDHOC message without CoAP around it), for
    # comparison with the specifications' numbers; None where only the datagram is meaningful.
    message_bytes: int | None = None
    # Datagrams with equal keys (same direction and peer) are transmissions of the same thing;
    # every one after the first is a retransmission. None: never a retransmission.
    copy_key: Hashable | None = None


class Classifier(Protocol):
    def classify(self, direction: Direction, peer: Peer, data: bytes) -> Classification: ...


@dataclass(frozen=True)
class DatagramRecord:
    time: float
    direction: Direction
    peer: Peer
    size: int
    message: str
    message_bytes: int | None
    retransmission: bool


@dataclass(frozen=True)
class MessageCost:
    """All datagrams of one protocol message in one direction, retransmissions included."""

    message: str
    direction: Direction
    bytes: int
    datagrams: int
    retransmissions: int
    message_bytes: int | None  # the protocol message proper, as first transmitted


def summarize(records: Iterable[DatagramRecord]) -> tuple[MessageCost, ...]:
    """Costs per (message, direction), in the order in which each first appeared."""
    totals: dict[tuple[str, Direction], list[int]] = {}
    first_size: dict[tuple[str, Direction], int | None] = {}
    for record in records:
        key = (record.message, record.direction)
        entry = totals.setdefault(key, [0, 0, 0])
        entry[0] += record.size
        entry[1] += 1
        entry[2] += record.retransmission
        first_size.setdefault(key, record.message_bytes)
    return tuple(
        MessageCost(
            message, direction, size, datagrams, retransmitted, first_size[message, direction]
        )
        for (message, direction), (size, datagrams, retransmitted) in totals.items()
    )


class WireLog:
    """The record of one socket. Thread-unsafe by design: it lives on the event loop."""

    def __init__(
        self,
        classifier: Classifier,
        *,
        clock: Callable[[], float] = time.monotonic,
        remembered_copies: int = 4096,
    ) -> None:
        self.classifier = classifier
        self.records: list[DatagramRecord] = []
        self._clock = clock
        # Bounded: a long-running server must not remember every datagram it ever saw.
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._remembered = remembered_copies

    def record(self, direction: Direction, peer: Peer, data: bytes) -> None:
        found = self.classifier.classify(direction, peer, data)
        copy = False
        if found.copy_key is not None:
            key = (direction, peer, found.copy_key)
            copy = key in self._seen
            self._seen[key] = None
            self._seen.move_to_end(key)
            if len(self._seen) > self._remembered:
                self._seen.popitem(last=False)
        self.records.append(
            DatagramRecord(
                self._clock(), direction, peer, len(data), found.message, found.message_bytes, copy
            )
        )

    def since(self, mark: int, peer: Peer | None = None) -> list[DatagramRecord]:
        """Records after position ``mark`` (``len(log.records)`` taken earlier), optionally of
        one peer: how a profile measures one bootstrap on a socket that lives longer."""
        return [r for r in self.records[mark:] if peer is None or r.peer == peer]

    def costs(self, peer: Peer | None = None) -> tuple[MessageCost, ...]:
        return summarize(self.since(0, peer))

    def clear(self) -> None:
        self.records.clear()
        self._seen.clear()
