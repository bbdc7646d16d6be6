"""Directed links of the medium: who hears whom, how reliably, with seeded randomness.

A directed link src -> dst loses each frame crossing it (data or ACK) independently with
probability ``1 - delivery`` and, when ``burst`` is set, also according to a Gilbert-Elliott
two-state chain (netem's model: in state Good a frame is lost with ``loss_good`` (1-k), in Bad
with ``loss_bad`` (1-h); after each frame the chain moves Good->Bad with ``p``, Bad->Good with
``r``; it starts in Good). A frame arrives only if neither loses it, so the long-run loss is
``1 - delivery * (1 - stationary GE loss)``.

Each directed link draws from its own random stream, seeded from (medium seed, src, dst)
through BLAKE2b (``hash()`` of strings changes per process): the same seed gives the same loss
pattern on a link whatever the traffic on other links, and a link always draws the same number
of values per frame, so raising the loss of a link with the same seed only adds losses
(common random numbers between runs).

The stream is SplitMix64 (Steele, Lea, Flood 2014; Java's SplittableRandom), one integer of
state, not a ``random.Random``: a Mersenne Twister carries 2.5 KiB of state, and link states
grow with the links in use, up to nodes squared (bench/medium.py measured 600 KiB per node at
200 nodes after one broadcast each). A draw costs a few integer operations more in Python,
which is nothing next to the datagrams a frame costs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from testbed.contracts.impairment import GilbertElliott

__all__ = ["GilbertElliott", "LinkConfig", "LinkState", "LinkTable", "SplitMix64", "link_seed"]

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_TO_UNIT = 1.0 / (1 << 53)


class SplitMix64:
    """A small seeded stream of floats in [0, 1); the same seed gives the same stream."""

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK64

    def next_u64(self) -> int:
        self.state = z = (self.state + _GOLDEN) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def random(self) -> float:
        return (self.next_u64() >> 11) * _TO_UNIT  # the top 53 bits, as random.random()


@dataclass(frozen=True)
class LinkConfig:
    """A directed radio link: independent delivery probability, and optionally the shared
    Gilbert-Elliott model (testbed.contracts.impairment) drawn per frame."""

    delivery: float = 1.0
    burst: GilbertElliott | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.delivery <= 1.0:
            raise ValueError("delivery must be a probability")
        if self.burst is not None and self.burst.p + self.burst.r == 0.0:
            raise ValueError("Gilbert-Elliott needs p + r > 0 (otherwise it never mixes)")

    @property
    def expected_loss(self) -> float:
        ge_loss = self.burst.stationary_loss if self.burst else 0.0
        return 1.0 - self.delivery * (1.0 - ge_loss)


def link_seed(seed: int, src: str, dst: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x00{src}\x00{dst}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class LinkState:
    """One directed link: its configuration, random stream, chain state and counters."""

    __slots__ = (
        "acks", "acks_lost", "airtime_s", "bad", "config", "delivered", "frames", "lost",
        "retries_exhausted", "rng",
    )  # fmt: skip

    def __init__(self, config: LinkConfig, seed: int) -> None:
        self.config = config
        self.rng = SplitMix64(seed)
        self.bad = False
        self.frames = 0  # data/command frames that crossed the link (each attempt)
        self.delivered = 0
        self.lost = 0  # channel-loss of those
        self.acks = 0  # ACK frames that crossed the link
        self.acks_lost = 0
        self.retries_exhausted = 0  # frames given up on this link by the medium's MAC
        self.airtime_s = 0.0

    def transmit(self) -> bool:
        """Draw the fate of one frame crossing the link: True if it arrives."""
        cfg = self.config
        rng = self.rng
        # rng.random(), written out: every frame on every link draws here (the same value)
        rng.state = z = (rng.state + _GOLDEN) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        ok = ((z ^ (z >> 31)) >> 11) * _TO_UNIT < cfg.delivery
        ge = cfg.burst
        if ge is not None:
            if rng.random() < (ge.loss_bad if self.bad else ge.loss_good):
                ok = False
            move = rng.random()
            self.bad = move >= ge.r if self.bad else move < ge.p
        return ok

    def snapshot(self) -> dict[str, object]:
        return {
            "delivery": self.config.delivery,
            "expected_loss": self.config.expected_loss,
            "frames": self.frames,
            "delivered": self.delivered,
            "acks": self.acks,
            "airtime_s": self.airtime_s,
            "dropped": {
                "channel-loss": self.lost,
                "ack-loss": self.acks_lost,
                "retries-exhausted": self.retries_exhausted,
            },
            "burst_state": "bad" if self.bad else "good",
        }


class LinkTable:
    """Configured links and a default for every pair not configured. Changing a link keeps its
    random stream and chain state, so a live change does not replay the pattern from the start."""

    def __init__(self, default: LinkConfig | None = None, seed: int = 0) -> None:
        self.default = default or LinkConfig()
        self.seed = seed
        self._configured: dict[tuple[str, str], LinkConfig] = {}
        self._states: dict[tuple[str, str], LinkState] = {}

    def configure(self, src: str, dst: str, config: LinkConfig) -> None:
        self._configured[src, dst] = config
        state = self._states.get((src, dst))
        if state is not None:
            state.config = config

    def reset(self, src: str, dst: str) -> None:
        self.configure(src, dst, self.default)
        del self._configured[src, dst]

    def reset_all(self, default: LinkConfig) -> None:
        """Forget every per-link setting and use ``default`` everywhere (streams are kept)."""
        self._configured.clear()
        self.set_default(default)

    def set_default(self, config: LinkConfig) -> None:
        self.default = config
        for key, state in self._states.items():
            if key not in self._configured:
                state.config = config

    def config(self, src: str, dst: str) -> LinkConfig:
        return self._configured.get((src, dst), self.default)

    def state(self, src: str, dst: str) -> LinkState:
        state = self._states.get((src, dst))
        if state is None:
            state = LinkState(self.config(src, dst), link_seed(self.seed, src, dst))
            self._states[src, dst] = state
        return state

    def states(self) -> dict[tuple[str, str], LinkState]:
        return dict(self._states)
