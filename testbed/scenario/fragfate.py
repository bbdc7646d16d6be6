"""Which bootstraps met a lost fragment, and does the datagram loss match the model?

The border router's medium counts, per directed link, every unicast datagram sent in 6LoWPAN
fragments and its fate (``testbed.node.radio.fate``), with the loss the link model predicts for
it: P = 1 - (1 - q)^n for n fragments, q = p^(R+1) the loss of a frame after R MAC retries at
per-attempt loss p. The bootstrap step reads those counters from every border router before and
after the things bootstrap; the difference on the links to and from a thing is what its
bootstrap met (``tally``). ``summarise`` turns the bootstraps of one point into measures:

- how many fragmented datagrams, fragments each, how many lost, how many by one fragment;
- which bootstraps met a datagram lost to a single lost fragment, and of those how many failed
  (the fraction of bootstraps lost to a single lost fragment) or recovered (CoAP retransmitted
  the datagram, all of its fragments, and the bootstrap went on);
- the measured count of lost datagrams against the model's expectation mu = sum of P with a
  two-sided Chernoff bound (``chernoff_interval``): outside it, the loss is not what
  independent frame loss explains (queue overflow, a medium defect, a wrong model).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ALPHA = 1e-3  # a point whose loss matches the model fails the check at most once in 1,000


@dataclass
class Tally:
    """Fragmented datagrams on some links over some window."""

    datagrams: int = 0
    fragments: int = 0
    lost: int = 0
    lost_one: int = 0
    fragments_lost: int = 0
    expected_lost: float = 0.0
    unmodelled: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # fragments per datagram -> count

    def add(self, other: Tally) -> None:
        self.datagrams += other.datagrams
        self.fragments += other.fragments
        self.lost += other.lost
        self.lost_one += other.lost_one
        self.fragments_lost += other.fragments_lost
        self.expected_lost += other.expected_lost
        self.unmodelled += other.unmodelled
        for n, c in other.sizes.items():
            self.sizes[n] = self.sizes.get(n, 0) + c


def fates_of(link_show: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Every PAN's per-link fate counters from a border router's ``link-show`` answer,
    keyed ``PAN:src->dst``."""
    out: dict[str, dict[str, Any]] = {}
    for pan, snapshot in (link_show or {}).items():
        medium = snapshot.get("medium") if isinstance(snapshot, dict) else None
        if isinstance(medium, dict):
            for link, counters in (medium.get("fates") or {}).items():
                out[f"{pan}:{link}"] = counters
    return out


def _count(counters: Mapping[str, Any], key: str) -> dict[int, int]:
    return {int(n): int(c) for n, c in (counters.get(key) or {}).items()}


def tally(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]], node: str
) -> Tally:
    """What changed between two ``fates_of`` readings on the links from or to ``node``."""
    out = Tally()
    for key, now in after.items():
        src, _, dst = key.partition(":")[2].partition("->")
        if node not in (src, dst):
            continue
        was = before.get(key, {})
        sizes = {
            n: c - _count(was, "datagrams").get(n, 0) for n, c in _count(now, "datagrams").items()
        }
        part = Tally(
            datagrams=sum(sizes.values()),
            fragments=int(now.get("fragments", 0)) - int(was.get("fragments", 0)),
            lost=sum(_count(now, "lost").values()) - sum(_count(was, "lost").values()),
            lost_one=sum(_count(now, "lost_one").values()) - sum(_count(was, "lost_one").values()),
            fragments_lost=int(now.get("fragments_lost", 0)) - int(was.get("fragments_lost", 0)),
            expected_lost=float(now.get("expected_lost", 0.0))
            - float(was.get("expected_lost", 0.0)),
            unmodelled=int(now.get("unmodelled", 0)) - int(was.get("unmodelled", 0)),
            sizes={n: c for n, c in sizes.items() if c},
        )
        out.add(part)
    return out


def _log_tail(mu: float, k: int) -> float:
    """log of exp(-mu) * (e * mu / k)^k: the Chernoff bound on P(X >= k) for k > mu and on
    P(X <= k) for k < mu, X a sum of independent Bernoulli trials with mean mu (Mitzenmacher
    and Upfal, Probability and Computing, Theorems 4.4 and 4.5, with k = (1 +- delta) mu)."""
    if k == 0:
        return -mu
    return -mu + k * (1.0 + math.log(mu) - math.log(k))


def chernoff_interval(mu: float, alpha: float = ALPHA) -> tuple[int, int]:
    """The counts (low, high) that a sum of independent Bernoulli trials with mean ``mu`` leaves
    with probability at most ``alpha`` (alpha / 2 each side), by the Chernoff bound."""
    if mu <= 0.0:
        return 0, 0
    limit = math.log(alpha / 2)
    high = math.floor(mu) + 1
    while _log_tail(mu, high) > limit:
        high += 1
    low = math.ceil(mu) - 1
    while low >= 0 and _log_tail(mu, low) > limit:
        low -= 1
    return low + 1, high - 1


@dataclass(frozen=True)
class Bootstrap:
    """One bootstrap: its thing's tally over the step, and whether the thing is operational."""

    tally: Tally
    succeeded: bool
    retransmissions: int = 0


def summarise(bootstraps: Iterable[Bootstrap], alpha: float = ALPHA) -> dict[str, float | None]:
    """The point's fragment-fate measures (names under the bootstrap step's ``frag.``)."""
    items = list(bootstraps)
    total = Tally()
    for b in items:
        total.add(b.tally)
    hit = [b for b in items if b.tally.lost_one > 0]
    low, high = chernoff_interval(total.expected_lost, alpha)
    modelled = total.unmodelled == 0
    n = len(items)
    return {
        "datagrams": float(total.datagrams),
        "fragments_per_datagram": total.fragments / total.datagrams if total.datagrams else None,
        "lost": float(total.lost),
        "lost_one": float(total.lost_one),
        "frame_loss": total.fragments_lost / total.fragments if total.fragments else None,
        "expected_lost": total.expected_lost if modelled else None,
        "bound_low": float(low) if modelled else None,
        "bound_high": float(high) if modelled else None,
        "model_ok": (1.0 if low <= total.lost <= high else 0.0) if modelled else None,
        "bootstraps_hit": len(hit) / n if n else None,
        "recovered": sum(b.succeeded for b in hit) / len(hit) if hit else None,
        "lost_to_single_fragment": sum(not b.succeeded for b in hit) / n if n else None,
        "retransmissions": sum(b.retransmissions for b in items) / n if n else None,
    }
