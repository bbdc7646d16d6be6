"""`testbed metrics snapshot`: queries per run, lifetime window, JSON and CSV shape."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from testbed.observe import snapshot as snap


class FakeAPI:
    url = "http://127.0.0.1:1"

    def __init__(self, start: float | None) -> None:
        self.start = start
        self.ranges: list[tuple[str, float, float, float]] = []

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        assert expr == 'min(testbed_node_start_time_seconds{run="r1"})'
        return [] if self.start is None else [{"metric": {}, "value": [at, str(self.start)]}]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        self.ranges.append((expr, start, end, step))
        if not expr.startswith("up{"):
            return []
        return [
            {"metric": {"__name__": "up", "node": "a", "run": "r1"}, "values": [[1000, "1"]]},
            {
                "metric": {"__name__": "up", "node": "b", "run": "r1", "role": "thing"},
                "values": [[1000, "0"], [1005, "NaN"]],
            },
        ]


def test_every_key_series_is_asked_for_the_run_only() -> None:
    api = FakeAPI(start=1000.0)
    window = snap.lifetime(api, "r1", now=1600.0)  # type: ignore[arg-type]
    assert (window.start, window.end, window.step) == (1000.0, 1600.0, 5.0)
    snap.collect(api, "r1", window)  # type: ignore[arg-type]
    queries = [q for q, *_ in api.ranges]
    assert len(queries) == len(snap.KEY_SERIES)
    assert all('run="r1"' in q and "$run" not in q for q in queries)
    assert 'up{run="r1"}' in queries


def test_long_runs_stay_under_the_point_limit() -> None:
    assert snap.step_for(60) == snap.MIN_STEP_S
    assert 7 * 86400 / snap.step_for(7 * 86400) <= snap.MAX_POINTS
    api = FakeAPI(start=None)
    window = snap.lifetime(api, "r1", now=10_000.0)  # type: ignore[arg-type]
    assert window.start == 10_000.0 - snap.FALLBACK_LIFETIME_S


def test_json_and_csv() -> None:
    api = FakeAPI(start=1000.0)
    data = snap.collect(api, "r1", snap.Window(1000, 1010, 5))  # type: ignore[arg-type]
    parsed = json.loads(snap.render(data, "json"))
    assert parsed["run"] == "r1" and parsed["series_descriptions"]["targets_up"]
    assert parsed["series"][1]["values"] == [[1000.0, 0.0], [1005.0, None]]  # NaN: null
    rows = list(csv.DictReader(io.StringIO(snap.render(data, "csv"))))
    assert [r["node"] for r in rows] == ["a", "b", "b"]
    assert rows[0]["metric"] == "up" and rows[0]["series"] == "targets_up"
    assert rows[0]["role"] == "" and rows[1]["role"] == "thing"
    assert rows[2]["value"] == "" and rows[0]["timestamp"] == "1000.000"
