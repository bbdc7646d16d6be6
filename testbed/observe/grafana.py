"""`testbed dashboards push`: the dashboards and a run's phase annotations into an existing Grafana.

Through grafana-client (Grafana's HTTP API, token in ``Authorization: Bearer``):

    GET  /api/health                        reachable at all (no token needed)
    GET  /api/folders/testbed               the folder, created (POST /api/folders) when missing
    GET  /api/datasources/uid/<uid>         the datasource the panels name; created
                                            (POST /api/datasources) when missing and a
                                            Prometheus URL is known, else the user is told
    POST /api/dashboards/db                 every dashboard of dashboards/json, overwrite: true
    GET  /api/annotations?tags=..           what an earlier push left (no duplicates)
    POST /api/annotations, PUT /api/annotations/<id>

Annotations: one per phase run of RUN/phases.jsonl (testbed.phases.records), a region from
start to end, the text naming the phase, its outcome and every host with its outcome; tags
``phase``, ``phase:<name>``, ``run:<run>`` and ``outcome:<status>``. They are organisation
annotations (no dashboard), so every dashboard shows them through the annotation query that
``with_phase_annotations`` adds to each uploaded dashboard (tags ``phase`` and ``run:$run``).
Pushing again updates what changed and adds what is new: the phase tag and start time identify
a phase run.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.observe.dashboards import DATASOURCE_UID, FOLDER_UID, datasource_provisioning
from testbed.observe.errors import ObserveError

FOLDER_TITLE = "Testbed"
PHASE_TAG = "phase"
ANNOTATION_NAME = "Lifecycle phases"
MAX_HOSTS_IN_TEXT = 30
FIND_LIMIT = 5000
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PhaseAnnotation:
    time_ms: int
    time_end_ms: int
    tags: tuple[str, ...]
    text: str

    @property
    def key(self) -> tuple[int, str]:
        phase = next((t for t in self.tags if t.startswith(f"{PHASE_TAG}:")), "")
        return self.time_ms, phase


@dataclass
class PushReport:
    dashboards: list[str] = field(default_factory=list)  # Grafana URLs (paths) of each
    folder: str = ""  # "created" or "present"
    datasource: str = ""  # "created", "present" or "missing"
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def run_tag(run: str) -> str:
    return f"run:{run}"


def _host_line(host: str, outcome: Mapping[str, Any]) -> str:
    state = str(outcome.get("outcome") or "?")
    reason = str(outcome.get("reason") or "")
    return f"{host} {state}" + (f" ({reason})" if reason else "")


def phase_annotation(record: Mapping[str, Any], run: str) -> PhaseAnnotation:
    """The annotation of one line of RUN/phases.jsonl."""
    phase = str(record["phase"])
    status = str(record.get("status") or "unknown")
    hosts: Mapping[str, Mapping[str, Any]] = record.get("hosts") or {}
    lines = [_host_line(h, o) for h, o in sorted(hosts.items())]
    if len(lines) > MAX_HOSTS_IN_TEXT:
        lines = [*lines[:MAX_HOSTS_IN_TEXT], f"... and {len(lines) - MAX_HOSTS_IN_TEXT} more"]
    head = f"phase {phase}: {status} (rc {record.get('rc', '?')}), {len(hosts)} hosts"
    if record.get("limit"):
        head += f", limit {record['limit']}"
    if record.get("check"):
        head += ", check mode"
    start, end = float(record["start"]), float(record["end"])
    return PhaseAnnotation(
        time_ms=round(start * 1000),
        time_end_ms=round(max(end, start) * 1000),
        tags=(PHASE_TAG, f"{PHASE_TAG}:{phase}", run_tag(run), f"outcome:{status}"),
        text="\n".join([head, *lines]),
    )


def phase_annotations(records: Iterable[Mapping[str, Any]], run: str) -> list[PhaseAnnotation]:
    return [phase_annotation(r, run) for r in records if r.get("run", run) == run]


def load_dashboards(directory: Path) -> list[dict[str, Any]]:
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise ObserveError(f"no dashboards in {directory}", "run from the checkout (dashboards/)")
    out = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ObserveError(f"cannot read dashboard {path}: {exc}") from exc
        if not isinstance(data, dict) or not data.get("uid") or not data.get("title"):
            raise ObserveError(f"{path} is not a Grafana dashboard (uid and title needed)")
        out.append(data)
    return out


def phase_annotation_query() -> dict[str, Any]:
    """A Grafana annotation query: organisation annotations tagged phase and run:$run."""
    return {
        "name": ANNOTATION_NAME,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": False,
        "iconColor": "rgba(255, 152, 48, 1)",
        "target": {
            "type": "tags",
            "tags": [PHASE_TAG, "run:$run"],
            "matchAny": False,
            "limit": 1000,
        },
    }


def with_phase_annotations(dashboard: Mapping[str, Any]) -> dict[str, Any]:
    """The dashboard with the phase annotation query (once), ready for the API."""
    out = copy.deepcopy(dict(dashboard))
    listed = out.setdefault("annotations", {}).setdefault("list", [])
    if not any(a.get("name") == ANNOTATION_NAME for a in listed):
        listed.append(phase_annotation_query())
    out["id"] = None  # Grafana matches by uid; ids are per instance
    return out


def _status(exc: Exception) -> int:
    return int(getattr(exc, "status_code", 0) or 0)


def _explain(exc: Exception, url: str, doing: str) -> ObserveError:
    status = _status(exc)
    if status == 401:
        hint = "check --token (a service account token with the Editor role)"
    elif status == 403:
        hint = "the token's role may not do this: it needs Editor (Admin for datasources)"
    elif status == 0:
        hint = f"is Grafana running at {url}? (--url)"
    else:
        hint = "see Grafana's answer above"
    return ObserveError(f"Grafana at {url}: {doing} failed: {exc}", hint)


def connect(url: str, token: str | tuple[str, str], timeout: float = TIMEOUT_S) -> Any:
    """A grafana-client GrafanaApi for ``url`` with a token or a (user, password) pair; raises
    ObserveError when Grafana does not answer."""
    from grafana_client.api import GrafanaApi

    api = GrafanaApi.from_url(url=url, credential=token, timeout=timeout)
    try:
        health = api.client.GET("/health")
    except Exception as exc:  # grafana-client and niquests raise several kinds
        raise _explain(exc, url, "GET /api/health") from exc
    if not isinstance(health, dict) or health.get("database") != "ok":
        raise ObserveError(f"Grafana at {url} is not healthy: {health}", "look at its log")
    return api


def _ensure_folder(api: Any) -> str:
    try:
        api.folder.get_folder(FOLDER_UID)
        return "present"
    except Exception as exc:
        if _status(exc) != 404:
            raise
    api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
    return "created"


def _ensure_datasource(api: Any, prometheus_url: str | None) -> str:
    try:
        api.datasource.get_datasource_by_uid(DATASOURCE_UID)
        return "present"
    except Exception as exc:
        if _status(exc) != 404:
            raise
    if not prometheus_url:
        return "missing"
    (spec,) = datasource_provisioning(prometheus_url)["datasources"]
    api.datasource.create_datasource({k: v for k, v in spec.items() if k != "editable"})
    return "created"


def _sync_annotations(
    api: Any, run: str, wanted: list[PhaseAnnotation], report: PushReport
) -> None:
    found = api.annotations.find_annotations(
        tags=[PHASE_TAG, run_tag(run)], ann_type="annotation", limit=FIND_LIMIT
    )
    existing: dict[tuple[int, str], Mapping[str, Any]] = {}
    for item in found or []:
        tags = tuple(item.get("tags") or ())
        phase = next((t for t in tags if t.startswith(f"{PHASE_TAG}:")), "")
        existing[(int(item.get("time") or 0), phase)] = item
    for annotation in wanted:
        old = existing.get(annotation.key)
        if old is None:
            api.annotations.add_annotation(
                time_from=annotation.time_ms,
                time_to=annotation.time_end_ms,
                tags=list(annotation.tags),
                text=annotation.text,
            )
            report.created += 1
        elif (
            old.get("text") == annotation.text
            and int(old.get("timeEnd") or 0) == annotation.time_end_ms
            and sorted(old.get("tags") or ()) == sorted(annotation.tags)
        ):
            report.unchanged += 1
        else:
            api.annotations.update_annotation(
                old["id"],
                time_from=annotation.time_ms,
                time_to=annotation.time_end_ms,
                tags=list(annotation.tags),
                text=annotation.text,
            )
            report.updated += 1


def push(
    api: Any,
    url: str,
    dashboards: list[dict[str, Any]],
    *,
    run: str | None = None,
    annotations: list[PhaseAnnotation] | None = None,
    prometheus_url: str | None = None,
) -> PushReport:
    """Upload dashboards (into the Testbed folder) and a run's phase annotations."""
    report = PushReport()
    doing = "preparing the folder"
    try:
        report.folder = _ensure_folder(api)
        doing = "checking the datasource"
        report.datasource = _ensure_datasource(api, prometheus_url)
        for dashboard in dashboards:
            doing = f"uploading dashboard {dashboard.get('uid')}"
            answer = api.dashboard.update_dashboard(
                {
                    "dashboard": with_phase_annotations(dashboard),
                    "folderUid": FOLDER_UID,
                    "overwrite": True,
                    "message": "testbed dashboards push",
                }
            )
            report.dashboards.append(str(answer.get("url") or dashboard["uid"]))
        if run is not None and annotations:
            doing = "writing annotations"
            _sync_annotations(api, run, annotations, report)
    except ObserveError:
        raise
    except Exception as exc:
        raise _explain(exc, url, doing) from exc
    return report


def sync_annotations(
    api: Any, url: str, run: str, annotations: list[PhaseAnnotation]
) -> PushReport:
    """Only the phase annotations of a run (a Grafana whose dashboards are provisioned)."""
    report = PushReport()
    try:
        _sync_annotations(api, run, annotations, report)
    except Exception as exc:
        raise _explain(exc, url, "writing annotations") from exc
    return report
