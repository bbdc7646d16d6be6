"""`testbed dashboards push` against a FAKE Grafana (tests/unit/observe/fake_grafana.py).

Grafana cannot run here; the fake implements the HTTP API endpoints grafana-client calls, with
Grafana's documented request and response shapes. What these tests show: the push sends the
right requests through the real grafana-client, is idempotent, and reports errors clearly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from testbed.cli.app import app
from testbed.observe import grafana
from testbed.observe.dashboards import DATASOURCE_UID
from testbed.observe.errors import ObserveError
from testbed.phases.records import record_phase
from tests.unit.observe.fake_grafana import FakeGrafana

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = ROOT / "dashboards" / "json"
TOKEN = "glsa_fake_token"


def phase_record(phase: str, start: float, status: str = "successful") -> dict[str, Any]:
    return {
        "phase": phase,
        "run": "office",
        "start": start,
        "end": start + 12.5,
        "duration_s": 12.5,
        "status": status,
        "rc": 0 if status == "successful" else 2,
        "limit": None,
        "forks": 4,
        "check": False,
        "extravars": {},
        "hosts": {
            "thermostat-01": {"outcome": "changed", "reason": ""},
            "lamp-01": {"outcome": "failed", "reason": "bootstrap refused: unknown-vendor"},
        },
    }


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafana]:
    with FakeGrafana(TOKEN) as server:
        yield server


def test_fake_grafana_push_uploads_every_dashboard_into_the_folder(
    fake_grafana: FakeGrafana,
) -> None:
    api = grafana.connect(fake_grafana.url, TOKEN)
    dashboards = grafana.load_dashboards(DASHBOARDS)
    report = grafana.push(api, fake_grafana.url, dashboards, prometheus_url="http://p:9090")
    stored = fake_grafana.state.dashboards
    assert set(stored) == {d["uid"] for d in dashboards}
    assert report.dashboards == [stored[d["uid"]]["meta"]["url"] for d in dashboards]
    assert report.folder == "created" and "testbed" in fake_grafana.state.folders
    for uid, entry in stored.items():
        assert entry["meta"]["folderUid"] == "testbed", uid
        names = [a.get("name") for a in entry["dashboard"]["annotations"]["list"]]
        assert names.count(grafana.ANNOTATION_NAME) == 1
    # The datasource the panels name was created with the URL given.
    assert report.datasource == "created"
    assert fake_grafana.state.datasources[DATASOURCE_UID]["url"] == "http://p:9090"
    # Requests as Grafana's API documents them.
    (post,) = [b for m, p, b in fake_grafana.state.requests if p == "/api/dashboards/db"][:1]
    assert post["overwrite"] is True and post["folderUid"] == "testbed"
    assert post["dashboard"]["id"] is None


def test_fake_grafana_phase_annotations_once_per_phase_run(fake_grafana: FakeGrafana) -> None:
    api = grafana.connect(fake_grafana.url, TOKEN)
    wanted = grafana.phase_annotations(
        [phase_record("install", 1_700_000_000.0), phase_record("commission", 1_700_000_100.0)],
        "office",
    )
    first = grafana.push(api, fake_grafana.url, [], run="office", annotations=wanted)
    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    stored = sorted(fake_grafana.state.annotations.values(), key=lambda a: a["time"])
    assert [a["time"] for a in stored] == [1_700_000_000_000, 1_700_000_100_000]
    assert [a["timeEnd"] for a in stored] == [1_700_000_012_500, 1_700_000_112_500]
    assert stored[0]["tags"] == ["phase", "phase:install", "run:office", "outcome:successful"]
    assert stored[1]["text"].splitlines() == [
        "phase commission: successful (rc 0), 2 hosts",
        "lamp-01 failed (bootstrap refused: unknown-vendor)",
        "thermostat-01 changed",
    ]
    # Pushing again adds nothing; a changed record is updated in place.
    again = grafana.push(api, fake_grafana.url, [], run="office", annotations=wanted)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    changed = grafana.phase_annotations(
        [phase_record("install", 1_700_000_000.0, status="failed")], "office"
    )
    third = grafana.push(api, fake_grafana.url, [], run="office", annotations=changed)
    assert (third.created, third.updated) == (0, 1)
    assert len(fake_grafana.state.annotations) == 2


def test_fake_grafana_other_runs_annotations_are_left_alone(fake_grafana: FakeGrafana) -> None:
    api = grafana.connect(fake_grafana.url, TOKEN)
    for run in ("office", "lab"):
        record = {**phase_record("install", 1_700_000_000.0), "run": run}
        grafana.push(
            api, fake_grafana.url, [], run=run, annotations=grafana.phase_annotations([record], run)
        )
    assert len(fake_grafana.state.annotations) == 2


def test_fake_grafana_wrong_token_is_explained(fake_grafana: FakeGrafana) -> None:
    api = grafana.connect(fake_grafana.url, "wrong")  # /api/health needs no token
    with pytest.raises(ObserveError) as err:
        grafana.push(api, fake_grafana.url, grafana.load_dashboards(DASHBOARDS))
    assert "--token" in err.value.hint


def test_unreachable_grafana_is_explained() -> None:
    with FakeGrafana(TOKEN) as server:
        url = server.url
    with pytest.raises(ObserveError) as err:
        grafana.connect(url, TOKEN, timeout=2)
    assert "--url" in err.value.hint


def test_fake_grafana_missing_datasource_without_url_is_reported(
    fake_grafana: FakeGrafana,
) -> None:
    api = grafana.connect(fake_grafana.url, TOKEN)
    report = grafana.push(api, fake_grafana.url, grafana.load_dashboards(DASHBOARDS))
    assert report.datasource == "missing"
    assert fake_grafana.state.datasources == {}


def test_fake_grafana_cli_push_reads_the_runs_phases(
    fake_grafana: FakeGrafana, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBED_HOME", str(tmp_path))
    run_dir = tmp_path / "runs" / "office"
    run_dir.mkdir(parents=True)
    record_phase(run_dir, phase_record("install", 1_700_000_000.0))
    record_phase(run_dir, phase_record("commission", 1_700_000_050.0, status="failed"))
    monkeypatch.setattr("testbed.cli.dashboards._run_context", lambda run: (run, run_dir, None))
    args = ["dashboards", "push", "--url", fake_grafana.url, "--token", TOKEN, "--run", "office"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 added" in result.output
    assert "--prometheus-url" in result.output  # no datasource, no URL known
    texts = sorted(a["text"] for a in fake_grafana.state.annotations.values())
    assert texts[0].startswith("phase commission: failed (rc 2)")
    assert len(fake_grafana.state.dashboards) == len(list(DASHBOARDS.glob("*.json")))


def test_phase_annotation_query_uses_the_run_variable() -> None:
    dashboard = json.loads((DASHBOARDS / "lifecycle.json").read_text())
    variables = [v["name"] for v in dashboard["templating"]["list"]]
    assert "run" in variables
    query = grafana.with_phase_annotations(dashboard)["annotations"]["list"][-1]
    assert query["target"]["tags"] == ["phase", "run:$run"]
    assert grafana.with_phase_annotations(grafana.with_phase_annotations(dashboard)) == (
        grafana.with_phase_annotations(dashboard)
    )
