"""What a suite run produced: measured values, expectations, outcomes; and results.json."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testbed import project

FORMAT_VERSION = 1

# What the same seed does not make the same, said in every report: the radio's loss draws and
# sweep points are seeded; everything that depends on the host's scheduling is not.
NOT_DETERMINISTIC = (
    "timing (durations, CPU time) and everything that depends on scheduling on the host",
    "which frames a loss draw hits when the order of frames on the medium differs between runs "
    "(the loss stream of each directed link is seeded; the frames it is applied to arrive in "
    "an order the host's scheduler decides)",
    "EDHOC/OSCORE key material, connection identifiers and nonces (fresh randomness by design)",
    "IP link impairments (netem or the user-space shaper draw from their own random sources)",
    "Prometheus sample timestamps (scrapes every few seconds)",
)


@dataclass
class Measurement:
    name: str
    value: float | str | None
    unit: str = ""
    at: float = field(default_factory=time.time)
    series: list[list[float]] | None = None  # [[t, v], ...] for time series


@dataclass
class Expectation:
    measure: str
    bound: str  # ">= 0.9", "<= 2", "== operational"
    value: float | str | None
    passed: bool
    message: str

    def describe(self, scenario: str, point: str) -> str:
        return (
            f"{scenario} [{point}]: {self.message}: {self.measure} = {_show(self.value)}, "
            f"expected {self.bound}"
        )


@dataclass
class PointResult:
    """One sweep point and repeat of one scenario (one JUnit test case)."""

    scenario: str
    point: dict[str, Any]
    repeat: int
    seed: int
    start: float = 0.0
    end: float = 0.0
    measurements: list[Measurement] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    error: str | None = None  # the point crashed (a step failed): an error, not a failure
    log: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.point.items()) or "single point"
        return f"{where}, repeat {self.repeat}"

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        return "failed" if any(not e.passed for e in self.expectations) else "passed"

    def value(self, name: str) -> float | str | None:
        for m in reversed(self.measurements):
            if m.name == name:
                return m.value
        return None


@dataclass
class ScenarioResult:
    name: str
    description: str
    file: str
    run: str
    seed: int
    sweep: dict[str, Any] | None
    repeat: int
    start: float = 0.0
    end: float = 0.0
    points: list[PointResult] = field(default_factory=list)
    setup_error: str | None = None  # setup or teardown crashed (no point may have run)
    teardown_error: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # label -> path relative to the out dir
    topology: str = ""  # the merged topology actually run (relative path)

    @property
    def status(self) -> str:
        if self.setup_error or any(p.status == "error" for p in self.points):
            return "error"
        if any(p.status == "failed" for p in self.points):
            return "failed"
        return "passed"


@dataclass
class SuiteResult:
    suite: str
    start: float
    end: float = 0.0
    commit: str = ""
    scenarios: list[ScenarioResult] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        """One line per failed expectation and per crash: what the CLI prints at the end."""
        out = []
        for s in self.scenarios:
            if s.setup_error:
                out.append(f"{s.name}: error: {s.setup_error}")
            for p in s.points:
                if p.error:
                    out.append(f"{s.name} [{p.label}]: error: {p.error}")
                out += [e.describe(s.name, p.label) for e in p.expectations if not e.passed]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "suite": self.suite,
            "commit": self.commit,
            "start": self.start,
            "end": self.end,
            "duration_s": round(self.end - self.start, 3),
            "not_deterministic": list(NOT_DETERMINISTIC),
            "scenarios": [
                {
                    **{k: v for k, v in asdict(s).items() if k != "points"},
                    "status": s.status,
                    "duration_s": round(s.end - s.start, 3),
                    "points": [{**asdict(p), "status": p.status} for p in s.points],
                }
                for s in self.scenarios
            ],
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n", encoding="utf-8")


def commit() -> str:
    """The project's commit (with -dirty when the tree has changes), or "unknown"."""
    try:
        head = subprocess.run(
            [
                "git",
                "-C",
                str(project.PROJECT_ROOT),
                "describe",
                "--always",
                "--dirty",
                "--abbrev=40",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() or "unknown"


def _show(value: float | str | None) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "no value" if value is None else str(value)
