"""Quantities as users write them in topology files: "20%", "30ms", "250kbit".

Each parser raises ValueError with a message that says what form is expected; pydantic turns it
into an error at the key where the value stands.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)\s*$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)\s*$", re.IGNORECASE)
_DURATION_SCALE = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_RATE_SCALE = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000}


def probability(value: object) -> float:
    """A probability given as "20%" or as a fraction 0.2; bare numbers above 1 are ambiguous."""
    if isinstance(value, bool):
        raise ValueError("expected a percentage like '20%' or a fraction like 0.2")
    if isinstance(value, str):
        text = value.strip()
        if not text.endswith("%"):
            raise ValueError(
                f"expected a percentage like '20%' or a fraction like 0.2, got {value!r}"
            )
        try:
            number = float(text[:-1]) / 100.0
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a percentage like '20%'") from exc
    elif isinstance(value, int | float):
        number = float(value)
        if number > 1.0:
            raise ValueError(
                f"{value} is more than 1: write a percentage as '{value}%' or a fraction <= 1"
            )
    else:
        raise ValueError("expected a percentage like '20%' or a fraction like 0.2")
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{value!r} is outside 0%..100%")
    return number


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
