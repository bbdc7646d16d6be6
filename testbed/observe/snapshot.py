"""`testbed metrics snapshot`: the run's key series over its lifetime, as JSON or CSV, for papers.

Every series comes from Prometheus' ``query_range`` between the start of the run's first node
process (``testbed_node_start_time_seconds``) and now, at a step that keeps each series under
Prometheus' 11,000 points. JSON keeps the queries and metadata next to the data; CSV is long
format (one row per sample: series, labels as columns, timestamp, value), ready for pandas or R.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from testbed.observe import rules as R
from testbed.observe.api import PrometheusAPI

Format = Literal["json", "csv"]
MAX_POINTS = 10_000
MIN_STEP_S = 5.0  # the scrape interval
FALLBACK_LIFETIME_S = 3600.0


@dataclass(frozen=True)
class KeySeries:
    name: str
    expr: str  # "$run" stands for the run's label matcher
    description: str


KEY_SERIES: tuple[KeySeries, ...] = (
    KeySeries("targets_up", "up{$run}", "1 while Prometheus can scrape the node"),
    KeySeries("node_up", "testbed_node_up{$run}", "1 while the node process runs"),
    KeySeries(
        "thing_lifecycle_state",
        "testbed_thing_lifecycle_state{$run} == 1",
        "the lifecycle state of each thing (the series of its current state)",
    ),
    KeySeries("things_by_state", R.THINGS_BY_STATE + "{$run}", "things per state/domain/vendor"),
    KeySeries("tc_enrollments", "testbed_tc_enrollments_total{$run}", "enrollments answered"),
    KeySeries("tc_refusals", R.REFUSALS + "{$run}", "refusals per domain and reason"),
    KeySeries("bootstrap_attempts", R.BOOTSTRAP_ATTEMPTS + "{$run}", "attempts per outcome"),
    KeySeries("bootstrap_failures", R.BOOTSTRAP_FAILURES + "{$run}", "failures per reason"),
    KeySeries(
        "bootstrap_duration_quantiles",
        R.BOOTSTRAP_DURATION_Q + "{$run}",
        "thing-side bootstrap duration quantiles per profile and vendor (s)",
    ),
    KeySeries(
        "bootstrap_duration_buckets",
        "sum by (run, profile, vendor, le) (testbed_bootstrap_duration_seconds_bucket{$run})",
        "cumulative histogram of thing-side bootstrap durations",
    ),
    KeySeries(
        "tc_bootstrap_duration_quantiles",
        R.TC_BOOTSTRAP_DURATION_Q + "{$run}",
        "trust-center-side bootstrap duration quantiles (s)",
    ),
    KeySeries(
        "bootstrap_bytes_mean",
        R.BOOTSTRAP_BYTES_MEAN + "{$run}",
        "mean UDP payload bytes of one bootstrap attempt per direction",
    ),
    KeySeries(
        "backend_reads",
        "sum by (run, outcome) (testbed_backend_reads_total{$run})",
        "reads of thing resources by the backend",
    ),
    KeySeries(
        "process_cpu_seconds",
        "process_cpu_seconds_total{$run}",
        "CPU time of each node process",
    ),
    KeySeries(
        "process_resident_memory_bytes",
        "process_resident_memory_bytes{$run}",
        "resident memory of each node process",
    ),
    KeySeries("pan_frame_loss", R.PAN_LOSS + "{$run}", "dropped/sent 802.15.4 frames per PAN"),
)


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    step: float


def lifetime(api: PrometheusAPI, run: str, now: float | None = None) -> Window:
    end = time.time() if now is None else now
    found = api.query(f'min(testbed_node_start_time_seconds{{run="{run}"}})', at=end)
    start = end - FALLBACK_LIFETIME_S
    if found:
        value = float(found[0]["value"][1])
        if math.isfinite(value) and value < end:
            start = value
    return Window(start, end, step_for(end - start))


def step_for(seconds: float) -> float:
    return max(MIN_STEP_S, float(math.ceil(seconds / MAX_POINTS)))


def collect(
    api: PrometheusAPI,
    run: str,
    window: Window,
    series: Sequence[KeySeries] = KEY_SERIES,
) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for key in series:
        query = selector(key.expr, run)
        for result in api.query_range(query, window.start, window.end, window.step):
            out.append(
                {
                    "series": key.name,
                    "query": query,
                    "labels": dict(result.get("metric", {})),
                    "values": [[float(t), _number(v)] for t, v in result.get("values", [])],
                }
            )
    return {
        "run": run,
        "prometheus": api.url,
        "start": window.start,
        "end": window.end,
        "step": window.step,
        "series_descriptions": {k.name: k.description for k in series},
        "series": out,
    }


def selector(expr: str, run: str) -> str:
    """Put the run into the expression: ``up{$run}`` -> ``up{run="x"}``."""
    return expr.replace("$run", f'run="{run}"')


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def to_json(snapshot: dict[str, Any]) -> str:
    return json.dumps(snapshot, indent=1, allow_nan=False) + "\n"


def to_csv(snapshot: dict[str, Any]) -> str:
    label_names = sorted({name for s in snapshot["series"] for name in s["labels"]})
    columns = ["series", *(n if n != "__name__" else "metric" for n in label_names)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*columns, "timestamp", "value"])
    for entry in snapshot["series"]:
        labels = [entry["labels"].get(n, "") for n in label_names]
        for timestamp, value in entry["values"]:
            writer.writerow([entry["series"], *labels, f"{timestamp:.3f}", _cell(value)])
    return buffer.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None else repr(value)


def render(snapshot: dict[str, Any], fmt: Format) -> str:
    return to_csv(snapshot) if fmt == "csv" else to_json(snapshot)
