"""The fate of every fragmented datagram crossing the medium, and what the loss model predicts.

RFC 4944 has no fragment recovery: a datagram sent as n fragments is lost when any one of them
is lost, and only the upper layer (CoAP's retransmission) can send it again, all n fragments
anew. The medium knows the true fate of each frame (did any attempt's data frame reach the
receiver?), so it tells each fragmented datagram's fate exactly: delivered, lost by one
fragment, or lost by several. The radio metrics export these per sender and outcome; a
scenario reads the per-link counters (``snapshot``) before and after a bootstrap to say which
bootstrap met which loss.

The model: a frame whose data is lost independently with probability p on each attempt, with
MAC retransmissions (at most R retries), is lost for good with q = p^(R+1) (a lost ACK only
makes the sender retry, the data arrived already); a frame without ACK (broadcast, or a peer
that runs its own MAC) with q = p. A datagram of n fragments is then lost with
P = 1 - prod(1 - q_i) = 1 - (1 - q)^n. Each datagram adds P to ``expected_lost`` and P(1 - P) to
``expected_variance``, from the link's configuration when the frame was first sent; links with
Gilbert-Elliott bursts are not independent, their datagrams are counted as ``unmodelled``.

Only unicast datagrams of stations whose MAC the medium runs are followed (a broadcast datagram
has as many fates as receivers; a guest's own MAC retries would look like more fragments).
Fragments are followed from the moment the sender hands them to the medium (``queued``, in
sending order) to the end of their MAC exchange (``done``, which may come in another order: a
fragment refused by a full queue is done at once). A datagram is decided when its last fragment
(offset + length = datagram_size) was queued and every queued fragment is done; datagrams whose
last fragment never comes (the sender went away) are counted ``incomplete`` when the table of
open datagrams (bounded) evicts them or a new datagram reuses their key.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from testbed.node.radio.frag import FRAG1_DISPATCH, FRAG1_LEN, FRAGN_DISPATCH, FRAGN_LEN

DELIVERED = "delivered"
LOST_ONE = "lost-one-fragment"
LOST_SEVERAL = "lost-several-fragments"
OUTCOMES = (DELIVERED, LOST_ONE, LOST_SEVERAL)
OPEN_LIMIT = 256  # datagrams being sent at once on one PAN; far more than a PAN's queues hold


@dataclass(frozen=True, slots=True)
class Fragment:
    """What a frame's 6LoWPAN fragment header says (RFC 4944, Section 5.3)."""

    size: int
    tag: int
    first: bool
    end: int  # for a FRAGN: offset + its bytes (the datagram is complete when == size)


def parse_fragment(payload: bytes) -> Fragment | None:
    """The fragment header of a frame's payload; None for anything that is not a fragment."""
    if len(payload) < FRAG1_LEN:
        return None
    dispatch = payload[0] >> 3
    if dispatch not in (FRAG1_DISPATCH, FRAGN_DISPATCH):
        return None
    size = int.from_bytes(payload[:2], "big") & 0x07FF
    tag = int.from_bytes(payload[2:4], "big")
    if dispatch == FRAG1_DISPATCH:
        return Fragment(size, tag, True, 0)
    if len(payload) < FRAGN_LEN:
        return None
    return Fragment(size, tag, False, payload[4] * 8 + len(payload) - FRAGN_LEN)


def datagram_loss(q: float, n: int) -> float:
    """P(datagram lost) for n fragments each lost independently with probability q."""
    return 1.0 - (1.0 - q) ** n


def frame_loss(p: float, retries: int | None) -> float:
    """P(frame lost for good) for per-attempt data loss p; ``retries`` None: no MAC retries."""
    return p ** (1 + (retries or 0))


@dataclass(slots=True)
class _Open:
    queued: int = 0
    last_queued: bool = False
    fragments: int = 0  # done
    lost: int = 0
    delivered_p: float = 1.0  # product of (1 - q) over its fragments
    modelled: bool = True


@dataclass
class LinkFates:
    """Fragmented datagrams sent over one directed link (src -> dst)."""

    datagrams: Counter[int] = field(default_factory=Counter)  # fragments per datagram -> count
    lost: Counter[int] = field(default_factory=Counter)
    lost_one: Counter[int] = field(default_factory=Counter)  # lost by exactly one fragment
    fragments: int = 0
    fragments_lost: int = 0
    expected_lost: float = 0.0
    expected_variance: float = 0.0
    unmodelled: int = 0
    incomplete: int = 0

    def outcomes(self) -> dict[str, int]:
        lost, one = sum(self.lost.values()), sum(self.lost_one.values())
        return {
            DELIVERED: sum(self.datagrams.values()) - lost,
            LOST_ONE: one,
            LOST_SEVERAL: lost - one,
        }

    def snapshot(self) -> dict[str, object]:
        return {
            "datagrams": {str(n): c for n, c in sorted(self.datagrams.items())},
            "lost": {str(n): c for n, c in sorted(self.lost.items())},
            "lost_one": {str(n): c for n, c in sorted(self.lost_one.items())},
            "fragments": self.fragments,
            "fragments_lost": self.fragments_lost,
            "expected_lost": self.expected_lost,
            "expected_variance": self.expected_variance,
            "unmodelled": self.unmodelled,
            "incomplete": self.incomplete,
        }


class DatagramFates:
    """Follows fragments from their first transmission to their fate, per directed link."""

    def __init__(self, open_limit: int = OPEN_LIMIT) -> None:
        self._open: OrderedDict[tuple[str, str, int, int], _Open] = OrderedDict()
        self._limit = open_limit
        self.links: dict[tuple[str, str], LinkFates] = {}
        # Outcome counts per sender, kept as datagrams close: the metrics read them every
        # publication, and summing ``links`` then would cost a walk over every link.
        self._senders: dict[str, dict[str, int]] = {}

    def queued(self, src: str, dst: str, payload: bytes) -> None:
        """Node ``src`` hands the medium a unicast frame for node ``dst`` (in sending order)."""
        frag = parse_fragment(payload)
        if frag is not None:
            self.queued_fragment(src, dst, frag)

    def queued_fragment(self, src: str, dst: str, frag: Fragment) -> None:
        """``queued`` for a frame whose fragment header the caller parsed already (the medium
        parses each frame once, at submission, and keeps it until the frame is done)."""
        key = (src, dst, frag.size, frag.tag)
        if frag.first:
            if key in self._open:  # a datagram whose end never came, its tag reused
                self._close(key, complete=False)
            self._open[key] = _Open()
            while len(self._open) > self._limit:
                self._close(next(iter(self._open)), complete=False)
        dg = self._open.get(key)
        if dg is None:
            return  # its first fragment went before we followed the link
        dg.queued += 1
        dg.last_queued |= not frag.first and frag.end >= frag.size

    def done(self, src: str, dst: str, payload: bytes, delivered: bool, q: float | None) -> None:
        """The medium is done with a queued frame: ``delivered`` if any attempt's data reached
        ``dst``; ``q`` its modelled loss (None: no model)."""
        frag = parse_fragment(payload)
        if frag is not None:
            self.done_fragment(src, dst, frag, delivered, q)

    def done_fragment(
        self, src: str, dst: str, frag: Fragment, delivered: bool, q: float | None
    ) -> None:
        """``done`` for a frame whose fragment header the caller parsed already."""
        key = (src, dst, frag.size, frag.tag)
        dg = self._open.get(key)
        if dg is None or dg.fragments >= dg.queued:
            return
        dg.fragments += 1
        dg.lost += not delivered
        if q is None:
            dg.modelled = False
        else:
            dg.delivered_p *= 1.0 - q
        if dg.last_queued and dg.fragments == dg.queued:
            self._close(key, complete=True)

    def frame(self, src: str, dst: str, payload: bytes, delivered: bool, q: float | None) -> None:
        """``queued`` and ``done`` at once (a frame whose fate is known when it is sent)."""
        self.queued(src, dst, payload)
        self.done(src, dst, payload, delivered, q)

    def _close(self, key: tuple[str, str, int, int], *, complete: bool) -> None:
        dg = self._open.pop(key)
        link = self.links.setdefault((key[0], key[1]), LinkFates())
        outcomes = self._senders.get(key[0])
        if outcomes is None:
            outcomes = self._senders[key[0]] = dict.fromkeys(OUTCOMES, 0)
        if not complete:
            link.incomplete += 1
            return
        outcomes[DELIVERED if not dg.lost else LOST_ONE if dg.lost == 1 else LOST_SEVERAL] += 1
        n = dg.fragments
        link.datagrams[n] += 1
        link.fragments += n
        link.fragments_lost += dg.lost
        if dg.lost:
            link.lost[n] += 1
        if dg.lost == 1:
            link.lost_one[n] += 1
        if dg.modelled:
            p = 1.0 - dg.delivered_p
            link.expected_lost += p
            link.expected_variance += p * (1.0 - p)
        else:
            link.unmodelled += 1

    def by_sender(self) -> dict[str, dict[str, int]]:
        """Outcome counts per sending node (for the metrics): the sum of ``LinkFates.outcomes``
        over its links, kept up to date as datagrams close (no walk over the links)."""
        return {node: dict(counts) for node, counts in self._senders.items()}

    def snapshot(self) -> dict[str, object]:
        return {f"{src}->{dst}": link.snapshot() for (src, dst), link in self.links.items()}
