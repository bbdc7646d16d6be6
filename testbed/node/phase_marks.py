"""Lifecycle phase runs as the node's own metrics: the ``phase-mark`` action (every role).

    phase-mark {phase, outcome, start?, end?}  -> {phase, outcome, counted, changed: false}

    testbed_phase_runs_total{phase,outcome}
    testbed_phase_last_run_start_seconds{phase}   Unix time
    testbed_phase_last_run_end_seconds{phase}

The playbooks call it at the end of each phase for every host they ran on (the
``testbed.iot.phase_mark`` module), so Prometheus holds the phase runs per node next to what
the node measured, and dashboards can mark phases from the same data source.

It answers ``changed: false``: a mark is bookkeeping, not a change of the node, and phase
outcomes (e.g. "commission twice: changed only the first time") must not count it. Marking the
same (phase, start, outcome) twice counts once, so re-running just the marking task, or a play
that reaches it twice, does not invent phase runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from testbed.node import declared_metrics as declared
from testbed.node.errors import ActionError

OUTCOMES = ("successful", "failed")
PHASE_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # bounded label values: phase names only
MAX_REMEMBERED = 256
Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class PhaseMarks:
    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.runs: Counter = declared.counter("testbed_phase_runs", registry)
        self.start: Gauge = declared.gauge("testbed_phase_last_run_start_seconds", registry)
        self.end: Gauge = declared.gauge("testbed_phase_last_run_end_seconds", registry)
        self._seen: list[tuple[str, float, str]] = []
        # Called with (phase, start, end) after each mark: per-phase figures (energy).
        self.listeners: list[Callable[[str, float, float], None]] = []

    def actions(self) -> Mapping[str, Action]:
        return {"phase-mark": self.mark}

    async def mark(self, params: dict[str, Any]) -> dict[str, Any]:
        phase = params.get("phase")
        outcome = params.get("outcome")
        if not isinstance(phase, str) or not PHASE_RE.fullmatch(phase):
            raise ActionError(f"bad phase {phase!r}", "a phase name such as commission")
        if outcome not in OUTCOMES:
            raise ActionError(f"bad outcome {outcome!r}", "one of: " + ", ".join(OUTCOMES))
        now = self.clock()
        end = _seconds(params, "end", now)
        start = _seconds(params, "start", end)
        if start > end:
            raise ActionError(f"start {start} is after end {end}", "give Unix times, start first")
        key = (phase, start, outcome)
        counted = key not in self._seen
        if counted:
            self._seen = [*self._seen[-(MAX_REMEMBERED - 1) :], key]
            self.runs.labels(phase, outcome).inc()
        self.start.labels(phase).set(start)
        self.end.labels(phase).set(end)
        for listener in self.listeners:
            listener(phase, start, end)
        return {"phase": phase, "outcome": outcome, "counted": counted, "changed": False}


def _seconds(params: dict[str, Any], key: str, default: float) -> float:
    value = params.get(key)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ActionError(f"{key} must be Unix seconds, not {value!r}") from None
