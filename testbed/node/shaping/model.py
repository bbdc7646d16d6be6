"""netem's per-packet decisions as a pure, seeded model on a caller-given clock.

No sockets: the NFQUEUE driver (userspace.py) asks ``admit(size, now)`` what happens to each
packet and carries it out; the unit tests ask the same questions of the same model and check
the statistics. The order of decisions follows sch_netem.c's netem_enqueue (Linux 6.1):

    count = 1 + duplicate draw - loss draw      (0: dropped; 2: a copy is admitted too,
                                                 with its own loss draw and no duplicate draw)
    corrupt draw                                (a bit of the payload flipped)
    limit                                       (more than ``limit`` held: dropped)
    reorder draw (with a delay): leave now, bypassing delay and rate
    else: leave at max(now + delay + U(-jitter, jitter), last departure) + size * 8 / rate

One ``random.Random`` per direction, seeded from the link's seed: the same seed and the same
packet sequence give the same fates.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass

from testbed.contracts.impairment import Impairment

ETHERNET_HEADER = 14  # netem on an Ethernet device counts it in the packet's size
IPV6_HEADER = 40

SHAPED = "shaped"
DROPPED = "dropped"
DUPLICATED = "duplicated"
CORRUPTED = "corrupted"
REORDERED = "reordered"
ACTIONS = (SHAPED, DROPPED, DUPLICATED, CORRUPTED, REORDERED)


@dataclass(frozen=True, slots=True)
class Fate:
    """What happens to one packet: dropped (``drop`` says why), or released at ``at``,
    with one payload bit flipped when ``flip`` is (byte offset, bit); ``copy`` is the fate
    of its duplicate, if it has one."""

    at: float
    drop: str | None = None
    flip: tuple[int, int] | None = None
    copy: Fate | None = None


class LinkModel:
    def __init__(self, impairment: Impairment, seed: int) -> None:
        self.rng = random.Random(seed)
        self.impairment = impairment
        self.counts: Counter[str] = Counter()
        self._bad = False  # Gilbert-Elliott state
        self._last_departure = 0.0
        self._held: list[float] = []  # release times of packets not yet released

    def configure(self, impairment: Impairment) -> None:
        """A live change: packets already held keep their fate, new ones get the new one."""
        self.impairment = impairment
        if impairment.gilbert_elliott is None:
            self._bad = False

    # ------------------------------------------------------------ draws

    def _chance(self, p: float) -> bool:
        return p > 0 and self.rng.random() < p

    def _lost(self) -> bool:
        ge = self.impairment.gilbert_elliott
        if ge is None:
            return self._chance(self.impairment.loss)
        # The state at arrival decides the loss; the transition applies from the next packet.
        lost = self._chance(ge.loss_bad if self._bad else ge.loss_good)
        if self._bad:
            self._bad = not self._chance(ge.r)
        else:
            self._bad = self._chance(ge.p)
        return lost

    # ------------------------------------------------------------ decisions

    def admit(self, size: int, now: float, is_copy: bool = False) -> Fate:
        """The fate of an IPv6 packet of ``size`` bytes arriving at ``now`` (seconds)."""
        imp = self.impairment
        self.counts[SHAPED] += 1
        count = 1 + (not is_copy and self._chance(imp.duplicate))
        count -= self._lost()
        if count == 0:
            self.counts[DROPPED] += 1
            return Fate(now, drop="loss")
        copy = None
        if count > 1:
            self.counts[DUPLICATED] += 1
            copy = self.admit(size, now, is_copy=True)
        flip = None
        if self._chance(imp.corrupt) and size > IPV6_HEADER:
            flip = (self.rng.randrange(IPV6_HEADER, size), self.rng.randrange(8))
            self.counts[CORRUPTED] += 1
        while self._held and self._held[0] <= now:
            heapq.heappop(self._held)
        if len(self._held) >= imp.limit:
            self.counts[DROPPED] += 1
            return Fate(now, drop="limit", copy=copy)
        if imp.delay > 0 and self._chance(imp.reorder):
            self.counts[REORDERED] += 1
            at = now
        else:
            at = now + imp.delay
            if imp.jitter:
                at += self.rng.uniform(-imp.jitter, imp.jitter)
            at = max(at, now)
            if imp.rate:
                at = max(at, self._last_departure) + (size + ETHERNET_HEADER) * 8 / imp.rate
                self._last_departure = at
        heapq.heappush(self._held, at)
        return Fate(at, flip=flip, copy=copy)

    @property
    def held(self) -> int:
        return len(self._held)


def flip_bit(packet: bytes, flip: tuple[int, int]) -> bytes:
    offset, bit = flip
    if offset >= len(packet):
        return packet
    data = bytearray(packet)
    data[offset] ^= 1 << bit
    return bytes(data)
