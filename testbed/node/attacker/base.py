"""What every attack has: parameters checked at start, a rate, a duration, counters."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from testbed.node.errors import ActionError

OUTCOMES = ("sent", "answered", "refused")
MAX_RATE = 2000.0  # packets/s: a bound so that one attack cannot starve the host's CPU alone


class Counters:
    def __init__(self, attack: str, metric: Any | None) -> None:
        self.attack = attack
        self.values = dict.fromkeys(OUTCOMES, 0)
        self.metric = metric

    def add(self, outcome: str, n: int = 1) -> None:
        self.values[outcome] += n
        if self.metric is not None:
            self.metric.labels(self.attack, outcome).inc(n)


class Attack(ABC):
    name: ClassVar[str]

    def __init__(self, params: dict[str, Any], attributes: dict[str, str], counters: Counters):
        self.params = params
        self.attributes = attributes
        self.counters = counters
        self.rate = number(params, "rate", 50.0, 0.1, MAX_RATE)
        self.duration = number(params, "duration", 0.0, 0.0, 3600.0)  # 0: until stopped
        self.count = int(number(params, "count", 0, 0, 10_000_000))  # 0: no limit
        self.started = time.monotonic()

    @abstractmethod
    async def setup(self) -> None:
        """Open sockets, resolve the target; raise ActionError for bad parameters."""

    @abstractmethod
    async def send_one(self, index: int) -> None: ...

    async def close(self) -> None:
        return None

    async def run(self) -> None:
        """Paced sending: ``rate`` packets per second until ``duration`` or cancellation."""
        interval = 1.0 / self.rate
        index = 0
        next_at = time.monotonic()
        try:
            while (not self.duration or time.monotonic() - self.started < self.duration) and (
                not self.count or index < self.count
            ):
                await self.send_one(index)
                index += 1
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif index % 64 == 0:
                    await asyncio.sleep(0)  # behind schedule: still let replies in
                    next_at = time.monotonic()
            await asyncio.sleep(min(2.0, 10 * interval))  # late answers still count
        finally:
            await self.close()

    def describe(self) -> dict[str, Any]:
        return {"attack": self.name, "params": self.params, "counters": dict(self.counters.values)}


def number(params: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    raw = params.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ActionError(f"parameter {key!r} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ActionError(f"parameter {key!r} must lie in [{low:g}, {high:g}], got {value:g}")
    return value


def text(params: dict[str, Any], key: str, default: str | None = None) -> str:
    raw = params.get(key, default)
    if not isinstance(raw, str) or not raw:
        raise ActionError(f"missing parameter {key!r}", f'e.g. {{"{key}": "..."}}')
    return raw
