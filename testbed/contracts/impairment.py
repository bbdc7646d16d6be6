"""Link impairments, the one model the host and the nodes share: netem's parameters for IP links
and the Gilbert-Elliott two-state loss model both the IP shaper and the radio medium apply, in SI
units, validated, and the text forms people write them in.

Where each part is used: the topology schema (testbed.topology.schema) wraps these models; the
planner writes them into node attributes (``links-<name>``: ``LinkSpec``; the radio PAN's
Gilbert-Elliott model in ``radio-<pan>``); the node's shaper (testbed.node.shaping) and radio
medium (testbed.node.radio.links) apply them; ``probability`` parses a loss as people give it
("20%", 0.2) in topology files, on the command line and in a node's control actions. On the wire
(attributes, control parameters built by the host) values are plain numbers: seconds, fractions
0..1, bit/s.

Semantics (shared by both implementations, kernel netem and the user-space shaper):
- delay/jitter: each packet waits ``delay`` plus a uniform draw in [-jitter, +jitter]
  (netem without a distribution table is uniform); jitter can reorder packets, as in netem.
- loss: independent per packet; or Gilbert-Elliott (then ``loss`` must be 0): state good/bad,
  p = P(good -> bad), r = P(bad -> good), loss_good/loss_bad the loss in each state (netem's
  ``loss gemodel p r 1-h 1-k``; the radio medium draws it per frame crossing a directed link).
- duplicate: a second copy of the packet, shaped on its own (own delay, own loss draw).
- reorder: with this probability a packet skips the delay and leaves at once (netem's
  ``reorder`` with gap 1); needs a delay, as tc insists.
- corrupt: one bit flipped in the packet's payload (after the 40-byte IPv6 header), so the
  receiver's checksum catches it and the packet still reaches it.
- rate: serialisation at ``rate`` bit/s of each packet's size plus 14 bytes (Ethernet header,
  as netem counts it on an Ethernet device), after the delay.
- limit: packets held at once (netem's default 1000); more are dropped.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_LIMIT = 1000
_PROBABILITIES = ("loss", "duplicate", "reorder", "corrupt")


class ImpairmentError(ValueError):
    """A bad impairment value; ``option`` names the parameter (e.g. "jitter")."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.reason = message


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ImpairmentError(name, f"expected a fraction between 0 and 1, got {value!r}")
    number = float(value)
    if not (0.0 <= number <= 1.0) or math.isnan(number):
        raise ImpairmentError(name, f"{value!r} is outside 0..1 (0%..100%)")
    return number


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ImpairmentError(name, f"expected seconds as a number, got {value!r}")
    number = float(value)
    if not (0.0 <= number <= 60.0) or math.isnan(number):
        raise ImpairmentError(name, f"{value!r} s is outside 0..60 s")
    return number


def probability(value: Any, name: str = "probability") -> float:
    """A probability as people write it: a fraction (0.2, or "0.2" typed as text) or a
    percentage ("20%"). ImpairmentError (naming ``name``) for anything else or outside 0..1."""
    if isinstance(value, bool):
        raise ImpairmentError(name, "expected a percentage like '20%' or a fraction like 0.2")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            raise ImpairmentError(
                name, f"expected a percentage like '20%' or a fraction like 0.2, got {value!r}"
            ) from None
    elif isinstance(value, int | float):
        number = float(value)
        if number > 1.0:
            raise ImpairmentError(
                name, f"{value} is more than 1: write a percentage as '{value}%' or a fraction <= 1"
            )
    else:
        raise ImpairmentError(name, "expected a percentage like '20%' or a fraction like 0.2")
    if not 0.0 <= number <= 1.0:  # NaN fails this too
        raise ImpairmentError(name, f"{value!r} is outside 0%..100%")
    return number


@dataclass(frozen=True)
class GilbertElliott:
    """Two-state bursty loss, decided per packet (IP links) or per frame (radio links): in
    state Good a packet is lost with ``loss_good``, in Bad with ``loss_bad``; after each packet
    the chain moves Good -> Bad with ``p`` and Bad -> Good with ``r``; it starts in Good."""

    p: float  # P(good -> bad) per packet
    r: float  # P(bad -> good) per packet
    loss_good: float = 0.0
    loss_bad: float = 1.0

    def __post_init__(self) -> None:
        for name in ("p", "r", "loss_good", "loss_bad"):
            _probability(f"gilbert_elliott.{name}", getattr(self, name))

    @classmethod
    def from_dict(cls, data: Any) -> GilbertElliott:
        if not isinstance(data, dict):
            raise ImpairmentError("gilbert_elliott", "expected {p, r, loss_good, loss_bad}")
        unknown = set(data) - {"p", "r", "loss_good", "loss_bad"}
        if unknown:
            raise ImpairmentError("gilbert_elliott", f"unknown keys {sorted(unknown)}")
        if "p" not in data or "r" not in data:
            raise ImpairmentError("gilbert_elliott", "p and r are required")
        return cls(**{k: _probability(f"gilbert_elliott.{k}", v) for k, v in data.items()})

    @property
    def stationary_bad(self) -> float:
        """The long-run share of packets sent in state Bad (0 when the chain never moves)."""
        return self.p / (self.p + self.r) if self.p + self.r > 0 else 0.0

    @property
    def stationary_loss(self) -> float:
        """Long-run loss: the stationary share of each state times its loss."""
        bad = self.stationary_bad
        return (1 - bad) * self.loss_good + bad * self.loss_bad

    @property
    def expected_loss(self) -> float:
        return self.stationary_loss


@dataclass(frozen=True)
class Impairment:
    delay: float = 0.0  # seconds
    jitter: float = 0.0  # seconds, uniform +-
    loss: float = 0.0
    gilbert_elliott: GilbertElliott | None = None
    rate: int | None = None  # bit/s
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if self.jitter > self.delay:
            # netem clips negative delays to 0, which skews the mean; say it instead.
            raise ImpairmentError("jitter", "must not exceed the delay (set --delay as well)")
        if self.reorder > 0 and self.delay == 0:
            raise ImpairmentError("reorder", "needs a delay (tc: reordering needs some delay)")
        if self.gilbert_elliott is not None and self.loss > 0:
            raise ImpairmentError("loss", "give either a loss or a Gilbert-Elliott model")
        if self.rate is not None and self.rate <= 0:
            raise ImpairmentError("rate", "must be a positive number of bit/s")
        if not 1 <= self.limit <= 1_000_000:
            raise ImpairmentError("limit", "must lie between 1 and 1000000 packets")

    @property
    def is_none(self) -> bool:
        """Does nothing to any packet (so no qdisc or queue is needed at all)."""
        return self == Impairment(limit=self.limit)

    @property
    def expected_loss(self) -> float:
        return self.gilbert_elliott.expected_loss if self.gilbert_elliott else self.loss

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.gilbert_elliott is None:
            out.pop("gilbert_elliott")
        if self.rate is None:
            out.pop("rate")
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Impairment:
        """Validated; every error names its parameter (ImpairmentError.option)."""
        if not isinstance(data, dict):
            raise ImpairmentError("impairment", "expected a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ImpairmentError(sorted(unknown)[0], f"unknown parameter; known: {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for name in ("delay", "jitter"):
            if name in data:
                kwargs[name] = _seconds(name, data[name])
        for name in _PROBABILITIES:
            if name in data:
                kwargs[name] = _probability(name, data[name])
        if data.get("gilbert_elliott") is not None:
            kwargs["gilbert_elliott"] = GilbertElliott.from_dict(data["gilbert_elliott"])
        if data.get("rate") is not None:
            rate = data["rate"]
            if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
                raise ImpairmentError("rate", f"expected a positive bit/s number, got {rate!r}")
            kwargs["rate"] = int(rate)
        if "limit" in data:
            limit = data["limit"]
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise ImpairmentError("limit", f"expected a number of packets, got {limit!r}")
            kwargs["limit"] = limit
        return cls(**kwargs)

    def describe(self) -> str:
        """One line for people: "delay 50ms +-5ms, loss 20%, rate 250kbit"."""
        parts = []
        if self.delay:
            parts.append(
                f"delay {_ms(self.delay)}" + (f" ±{_ms(self.jitter)}" if self.jitter else "")
            )
        if self.gilbert_elliott:
            ge = self.gilbert_elliott
            parts.append(
                f"loss gilbert-elliott p={_pct(ge.p)} r={_pct(ge.r)} "
                f"good={_pct(ge.loss_good)} bad={_pct(ge.loss_bad)}"
            )
        elif self.loss:
            parts.append(f"loss {_pct(self.loss)}")
        for name in ("duplicate", "reorder", "corrupt"):
            if getattr(self, name):
                parts.append(f"{name} {_pct(getattr(self, name))}")
        if self.rate:
            parts.append(f"rate {_rate(self.rate)}")
        return ", ".join(parts) or "none"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g}ms"


def _pct(p: float) -> str:
    return f"{p * 100:g}%"


def _rate(bits: int) -> str:
    for unit, scale in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if bits >= scale and bits % scale == 0:
            return f"{bits // scale}{unit}"
    return f"{bits}bit"


LINK_NAMES = ("backbone", "internet")
ATTRIBUTE_PREFIX = "links-"  # testbed.node.metrics keeps these out of the info labels


@dataclass(frozen=True)
class LinkSpec:
    """What the planner tells a border router about one of its IP links."""

    name: str  # backbone | internet
    planned: Impairment = field(default_factory=Impairment)
    seed: int = 1

    @property
    def key(self) -> str:
        return f"{ATTRIBUTE_PREFIX}{self.name}"

    def to_attribute(self) -> str:
        return json.dumps({"seed": self.seed, **self.planned.to_dict()}, sort_keys=True)

    @classmethod
    def from_attribute(cls, name: str, value: str) -> LinkSpec:
        data = json.loads(value)
        if not isinstance(data, dict):
            raise ImpairmentError(name, "the attribute is not a JSON object")
        seed = data.pop("seed", 1)
        return cls(name=name, planned=Impairment.from_dict(data), seed=int(seed))


def link_specs(attributes: dict[str, str]) -> list[LinkSpec]:
    """The IP links a node's attributes name (border routers only; others have none)."""
    out = []
    for key, value in sorted(attributes.items()):
        if key.startswith(ATTRIBUTE_PREFIX):
            name = key.removeprefix(ATTRIBUTE_PREFIX)
            if name not in LINK_NAMES:
                raise ImpairmentError(key, f"unknown link; known: {', '.join(LINK_NAMES)}")
            out.append(LinkSpec.from_attribute(name, value))
    return out
