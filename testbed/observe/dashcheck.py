"""Run every panel query of the dashboards against a real Prometheus holding a run.

Template variables are filled as Grafana would with "All" selected (``run`` is the run,
multi-value variables ``.*``), Grafana's interval macros with values that fit a 5 s scrape
interval. A query passes when it returns at least one series for the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.observe.api import PrometheusAPI

MACROS = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
}
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str


@dataclass(frozen=True)
class QueryResult:
    query: PanelQuery
    filled: str
    series: int
    error: str = ""


def load(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(paths)]


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    out = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            out.append(
                PanelQuery(dashboard["uid"], panel["title"], target["refId"], target["expr"])
            )
    return out


def variable_values(dashboard: Mapping[str, Any], run: str) -> dict[str, str]:
    values = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        values[name] = run if name == "run" else str(variable.get("allValue", ".*"))
    return values


def fill(expr: str, values: Mapping[str, str]) -> str:
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)
    # longest names first, so $domain never eats part of a longer $domain_x
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    return expr


def check_dashboard(
    api: PrometheusAPI, dashboard: Mapping[str, Any], run: str
) -> list[QueryResult]:
    values = variable_values(dashboard, run)
    results = []
    for query in panel_queries(dashboard):
        filled = fill(query.expr, values)
        try:
            found = api.query(filled)
        except Exception as exc:  # the report names the query; the caller decides
            results.append(QueryResult(query, filled, 0, str(exc)))
            continue
        results.append(QueryResult(query, filled, len(found)))
    return results


def variable_options(
    api: PrometheusAPI, dashboard: Mapping[str, Any], run: str
) -> dict[str, set[str]]:
    """What each ``label_values`` variable would offer in Grafana."""
    options: dict[str, set[str]] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        definition = str(variable.get("definition", ""))
        match = _LABEL_VALUES.match(definition.strip())
        if match is None:
            continue
        selector = fill(match["selector"] or "up", {"run": run})
        label = match["label"]
        options[variable["name"]] = {
            r["metric"][label] for r in api.query(selector) if label in r["metric"]
        }
    return options
