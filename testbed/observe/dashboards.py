"""Grafana dashboards and provisioning, generated here and committed under ``dashboards/``.

    dashboards/provisioning/datasources/testbed.yaml   the Prometheus datasource (uid below)
    dashboards/provisioning/dashboards/testbed.yaml    loads every JSON file of dashboards/json
    dashboards/json/*.json                             lifecycle overview, bootstrap cost, trust
                                                       center, PAN health

Generated rather than hand-edited so that panel ids stay unique, every panel names the
provisioned datasource, and queries use the recording rules of ``testbed.observe.rules`` by their
constants. What each dashboard shows is in ``testbed.observe.panels``; this module lays the
panels out and writes the files. ``python -m testbed.observe.dashboards`` rewrites the files; a
unit test keeps them in sync and the integration test runs every panel query against a real
Prometheus holding a run.

Template variables: run (one), domain, vendor and pan (multi, All = ``.*``). Queries use
``$__rate_interval`` where they take rates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from testbed.observe.config import PROMETHEUS_PORT, SCRAPE_INTERVAL_S
from testbed.observe.panels import DASHBOARDS as DASHBOARDS
from testbed.observe.panels import Dashboard, Panel

DATASOURCE_UID = "testbed-prometheus"
DATASOURCE_FILE = "testbed.yaml"  # under provisioning/datasources/
FOLDER_UID = "testbed"  # folder "Testbed", provisioned or made by `dashboards push`
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
DASHBOARD_DIR = "/var/lib/grafana/dashboards/testbed"  # where Grafana finds dashboards/json
SCHEMA_VERSION = 39
# --- Grafana JSON ---------------------------------------------------------------------------------

_VARIABLES = {
    "run": ("label_values(testbed_node_up, run)", False),
    "domain": ('label_values(testbed_node_up{run="$run"}, domain)', True),
    "vendor": ('label_values(testbed_thing_lifecycle_state{run="$run"}, vendor)', True),
    "pan": ('label_values(testbed_node_up{run="$run"}, pan)', True),
}


def _variable(name: str) -> dict[str, Any]:
    query, multi = _VARIABLES[name]
    variable: dict[str, Any] = {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,  # on time range change: runs come and go
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "current": {},
        "options": [],
    }
    if multi:
        variable["allValue"] = ".*"
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets: list[dict[str, Any]] = [
        {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
        for i, (expr, legend) in enumerate(panel.exprs)
    ]
    if panel.kind == "table":
        for target in targets:
            target.update({"format": "table", "instant": True, "range": False})
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.kind == "timeseries" and panel.stacked:
        defaults["custom"] = {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30}
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": 8},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {},
    }
    if panel.description:
        out["description"] = panel.description
    if panel.kind == "table":
        out["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True}}}]
    return out


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    panels = []
    x = y = 0
    for number, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(_panel(panel, number, x, y))
        x += panel.width
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["testbed"],
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "timezone": "browser",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                # Phase runs from the nodes' own series (testbed.node.phase_marks): a mark where
                # a phase run ended on a node; works without `testbed dashboards push`.
                {
                    "name": "Phase runs (nodes)",
                    "datasource": DATASOURCE,
                    "enable": True,
                    "iconColor": "rgba(255, 152, 48, 1)",
                    "expr": 'changes(testbed_phase_last_run_end_seconds{run=~"$run"}[1m]) > 0',
                    "step": "30s",
                    "titleFormat": "{{phase}}",
                    "textFormat": "phase {{phase}} on {{node}}",
                    "tagKeys": "phase,node",
                },
            ]
        },
        "templating": {"list": [_variable(name) for name in dashboard.variables]},
        "panels": panels,
    }


def datasource_provisioning(
    url: str = f"http://prometheus:{PROMETHEUS_PORT}", interval_s: int = SCRAPE_INTERVAL_S
) -> dict[str, Any]:
    """The Prometheus datasource; ``timeInterval`` is the scrape interval, from which Grafana
    sizes ``$__rate_interval`` (four scrapes at least)."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Testbed Prometheus",
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": url,
                "isDefault": True,
                "editable": False,
                "jsonData": {"timeInterval": f"{interval_s}s"},
            }
        ],
    }


def dashboard_provisioning() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "testbed",
                "folder": "Testbed",
                "folderUid": FOLDER_UID,  # the folder `testbed dashboards push` uses too
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": True,
                "options": {"path": DASHBOARD_DIR, "foldersFromFilesStructure": False},
            }
        ],
    }


def rendered_files() -> dict[str, str]:
    """Relative path under dashboards/ -> content."""
    header = "# Generated by testbed.observe.dashboards (python -m testbed.observe.dashboards).\n"
    files = {
        f"provisioning/datasources/{DATASOURCE_FILE}": header
        + yaml.safe_dump(datasource_provisioning(), sort_keys=False),
        "provisioning/dashboards/testbed.yaml": header
        + yaml.safe_dump(dashboard_provisioning(), sort_keys=False),
    }
    for dashboard in DASHBOARDS:
        name = dashboard.uid.removeprefix("testbed-")
        files[f"json/{name}.json"] = json.dumps(dashboard_json(dashboard), indent=2) + "\n"
    return files


def write(root: Path) -> list[Path]:
    written = []
    for relative, content in rendered_files().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("dashboards")
    for path in write(target):
        print(path)
