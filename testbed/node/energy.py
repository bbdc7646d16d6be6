"""The energy meter of a thing on a radio PAN: the model of testbed.contracts.energy (written by
the planner as the ``energy`` attribute) applied to the station's counters and the node process's
CPU time, sampled once a second and exported as ``testbed_thing_energy_joules{component}`` and,
per lifecycle phase run, ``testbed_thing_energy_phase_joules``."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from testbed.contracts.energy import ATTRIBUTE, MAX_FRAME_AIRTIME_S, EnergyModel
from testbed.contracts.node_config import NodeConfig
from testbed.node import declared_metrics as declared

if TYPE_CHECKING:
    from testbed.node.radio.attach import RadioAttachment

HISTORY = 4096  # (time, joules) samples kept for per-phase energy (one per second: ~1 h)


Counts = Callable[[], tuple[float, int, int]]  # (tx airtime s, frames sent, frames received)


class EnergyMeter(Collector):
    """The estimate for one thing, from its station's counters and its process."""

    def __init__(
        self,
        model: EnergyModel,
        counts: Counts,
        clock: Callable[[], float] = time.time,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.model = model
        self.counts = counts
        self.clock = clock
        self.cpu = cpu
        self.started = clock()
        self.history: list[tuple[float, float]] = []
        self.phases: dict[str, float] = {}

    def now(self) -> dict[str, float]:
        airtime, sent, received = self.counts()
        per_frame = airtime / sent if sent else MAX_FRAME_AIRTIME_S
        wall = max(0.0, self.clock() - self.started)
        return self.model.joules(airtime, received * per_frame, self.cpu(), wall)

    def sample(self) -> float:
        total = sum(self.now().values())
        self.history = [*self.history[-(HISTORY - 1) :], (self.clock(), total)]
        return total

    def at(self, when: float) -> float | None:
        """Total joules at a past time, interpolated between samples (None before the first)."""
        times = [t for t, _ in self.history]
        i = bisect.bisect_left(times, when)
        if i == 0:
            return self.history[0][1] if self.history and times[0] - when < 1.5 else None
        if i >= len(self.history):
            return self.history[-1][1]
        (t0, e0), (t1, e1) = self.history[i - 1], self.history[i]
        return e0 + (e1 - e0) * (when - t0) / (t1 - t0) if t1 > t0 else e1

    def on_phase(self, phase: str, start: float, end: float) -> None:
        self.sample()
        first, last = self.at(start), self.at(end)
        if first is not None and last is not None:
            self.phases[phase] = max(0.0, last - first)

    async def run(self, interval: float = 1.0) -> None:
        while True:
            self.sample()
            await asyncio.sleep(interval)

    def state(self) -> dict[str, Any]:
        parts = self.now()
        return {
            "joules": {k: round(v, 9) for k, v in parts.items()},
            "total_joules": round(sum(parts.values()), 9),
            "phases_joules": dict(self.phases),
            "model": asdict(self.model),
        }

    def collect(self) -> Iterator[Metric]:
        total = declared.counter_family("testbed_thing_energy_joules")
        for component, joules in self.now().items():
            total.add_metric([component], joules)
        yield total
        phases = declared.gauge_family("testbed_thing_energy_phase_joules")
        for phase, joules in sorted(self.phases.items()):
            phases.add_metric([phase], joules)
        yield phases


def meter_for(config: NodeConfig, radio: RadioAttachment | None) -> EnergyMeter | None:
    """A thing on a radio PAN whose plan asks for an estimate gets a meter; others none."""
    text = config.attributes.get(ATTRIBUTE)
    if config.role != "thing" or radio is None or not text:
        return None
    model = EnergyModel.from_attribute(text)

    def counts() -> tuple[float, int, int]:
        own = [n for n in radio.collector.samples.nodes if n.node == config.node]
        if not own:
            return 0.0, 0, 0
        return (
            sum(n.airtime_s for n in own),
            sum(n.frames_sent for n in own),
            sum(n.frames_received for n in own),
        )

    return EnergyMeter(model, counts)
