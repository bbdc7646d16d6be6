"""Frames per bootstrap: what one bootstrap attempt put on the air, in its report.

``RadioMetered`` wraps a thing's bootstrap profile (same interface): it snapshots the station's
monotonic counters before and after each attempt and returns the profile's result as a
``RadioBootstrapResult``, whose ``to_dict`` (the bootstrap report the thing persists and shows
in /state) gains a ``radio`` section: frames, packets and bytes each way. Nothing else runs on
the thing's radio during a bootstrap (HELLOs are not frames), so the difference is the
bootstrap's own cost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Histogram

from testbed.node.bootstrap.profile import BootstrapContext, BootstrapProfile, BootstrapResult

Counters = Callable[[], Mapping[str, int]]


@dataclass(frozen=True)
class RadioBootstrapResult(BootstrapResult):
    radio: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "radio": dict(self.radio)}


class RadioMetered:
    def __init__(
        self, inner: BootstrapProfile, counters: Counters, histogram: Histogram | None = None
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._counters = counters
        self._histogram = histogram
        self.last: dict[str, int] | None = None

    def follow(self, counters: Counters) -> None:
        """Count from another port's counters (the thing's station moved to another PAN)."""
        self._counters = counters

    async def bootstrap(self, ctx: BootstrapContext) -> BootstrapResult:
        before = dict(self._counters())
        result = await self.inner.bootstrap(ctx)
        after = self._counters()
        delta = {k: after[k] - before.get(k, 0) for k in after}
        self.last = delta
        if self._histogram is not None:
            self._histogram.labels("sent").observe(delta.get("frames_sent", 0))
            self._histogram.labels("received").observe(delta.get("frames_received", 0))
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
        fields.pop("radio", None)
        return RadioBootstrapResult(**fields, radio=delta)
