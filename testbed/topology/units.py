"""Quantities as users write them in topology files: "20%", "30ms", "250kbit".

Each parser raises ValueError with a message that says what form is expected; pydantic turns it
into an error at the key where the value stands.
"""

from __future__ import annotations

import re

from testbed.contracts import impairment

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)\s*$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)\s*$", re.IGNORECASE)
_DURATION_SCALE = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_RATE_SCALE = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000}


def probability(value: object) -> float:
    """A probability given as "20%" or as a fraction 0.2; bare numbers above 1 are ambiguous.
    The parser the nodes use too (testbed.contracts.impairment.probability)."""
    try:
        return impairment.probability(value)
    except impairment.ImpairmentError as exc:
        raise ValueError(exc.reason) from None


def duration(value: object) -> float:
    """A duration in seconds, given as "30ms", "1.5s", "200us" (bare numbers are seconds)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like '30ms'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"expected a duration like '30ms', '1.5s' or '200us', got {value!r}")
        seconds = float(match.group(1)) * _DURATION_SCALE[match.group(2)]
    else:
        raise ValueError("expected a duration like '30ms'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def rate(value: object) -> int:
    """A rate in bit/s, given as "250kbit", "10mbit" (bare integers are bit/s)."""
    if isinstance(value, bool):
        raise ValueError("expected a rate like '250kbit'")
    if isinstance(value, int):
        bits = value
    elif isinstance(value, str):
        match = _RATE.match(value)
        if not match:
            raise ValueError(f"expected a rate like '250kbit' or '10mbit', got {value!r}")
        bits = int(float(match.group(1)) * _RATE_SCALE[match.group(2).lower()])
    else:
        raise ValueError("expected a rate like '250kbit'")
    if bits <= 0:
        raise ValueError("a rate must be positive")
    return bits
