"""Observation against real containers: the run's Prometheus scrapes every node on mgmt,
holds the key series, fires the commissioning-failure alert, follows nodes that come and go,
exports snapshots, and leaves with `testbed down`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.engines.docker import DockerEngine
from testbed.observe import dashcheck
from testbed.observe import rules as R
from testbed.observe.api import PrometheusAPI
from testbed.observe.dashboards import DATASOURCE_UID
from testbed.plan import Plan, make_plan
from testbed.topology import load_topology
from tests.integration.conftest import ROOT, remove_run, run_cli
from tests.integration.nodes import action, wait_for
from tests.unit.observe.fake_grafana import FakeGrafana

pytestmark = pytest.mark.integration
DEFAULT = ROOT / "topologies" / "default.yaml"
REFUSALS = ROOT / "tests" / "fixtures" / "topologies" / "integration" / "refusals.yaml"
KEY_SERIES = (
    "testbed_node_up",
    "testbed_thing_lifecycle_state",
    "testbed_tc_enrollments_total",
    "testbed_bootstrap_duration_seconds_bucket",
)
RADIO = ROOT / "topologies" / "radio.yaml"
REFUSED = {"untrusted-01", "counterfeit-01", "foreign-01"}
DASHBOARDS = ROOT / "dashboards" / "json"
BUILDING_DASHBOARDS = ("lifecycle", "bootstrap", "trust-center")
GRAFANA_TOKEN = "glsa_fake_token"


class Run:
    def __init__(self, name: str, plan: Plan, up_output: str, api: PrometheusAPI) -> None:
        self.name = name
        self.plan = plan
        self.up_output = up_output
        self.api = api


def _bring_up(
    docker_client: Any, cli_env: dict[str, str], topology: Path, run: str, exit_code: int
) -> Run:
    remove_run(docker_client, run)
    up = run_cli(["up", "-t", str(topology), "--run", run], cli_env, check=False, timeout=900)
    assert up.returncode == exit_code, up.stdout + up.stderr
    assert "Prometheus: http://127.0.0.1:" in up.stdout, up.stdout
    url = run_cli(["metrics", "url", "--run", run], cli_env).stdout.strip()
    assert url.startswith("http://127.0.0.1:") and url in up.stdout.replace("\n", "")
    plan = make_plan(load_topology(topology), run, str(topology))
    return Run(run, plan, up.stdout, PrometheusAPI(url))


def _down(docker_client: Any, cli_env: dict[str, str], run: str) -> None:
    down = run_cli(["down", "--run", run], cli_env, check=False)
    if down.returncode != 0:  # shown with a teardown failure below: what `down` said
        print(f"testbed down --run {run} exited {down.returncode}:\n{down.stdout}{down.stderr}")
    remove_run(docker_client, run)


@pytest.fixture(scope="module")
def fake_grafana() -> Iterator[FakeGrafana]:
    """A FAKE Grafana (tests/unit/observe/fake_grafana.py: Grafana's HTTP API, not Grafana,
    which cannot run here) for `testbed up` to push to."""
    with FakeGrafana(GRAFANA_TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def office(docker_client, node_image, cli_env, fake_grafana) -> Iterator[Run]:  # type: ignore[no-untyped-def]
    env = dict(cli_env, GRAFANA_URL=fake_grafana.url, GRAFANA_TOKEN=GRAFANA_TOKEN)
    run = _bring_up(docker_client, env, DEFAULT, "obs-it-office", 0)
    try:
        yield run
    finally:
        _down(docker_client, cli_env, run.name)


def test_up_pushes_dashboards_datasource_and_phases_to_the_fake_grafana(
    office: Run, fake_grafana: FakeGrafana
) -> None:
    state = fake_grafana.state
    assert set(state.dashboards) == {
        json.loads(p.read_text())["uid"] for p in DASHBOARDS.glob("*.json")
    }
    # The datasource the panels name points at this run's Prometheus, as `up` printed it.
    (datasource,) = state.datasources.values()
    assert datasource["uid"] == DATASOURCE_UID and datasource["url"] in office.up_output
    # install and commission, each one annotation of this run with its outcome.
    phases = sorted(
        t for a in state.annotations.values() for t in a["tags"] if t.startswith("phase:")
    )
    assert phases == ["phase:commission", "phase:install"]
    assert all(f"run:{office.name}" in a["tags"] for a in state.annotations.values())
    line = next(x for x in office.up_output.splitlines() if f"Grafana:  {fake_grafana.url}" in x)
    assert f"{fake_grafana.url}/d/testbed-lifecycle/" in line and "var-run=obs-it-office" in line


def test_up_without_grafana_says_how_to_connect_one(radio: Run) -> None:
    # Neither a Grafana container (TESTBED_GRAFANA=0 in these tests) nor GRAFANA_URL.
    assert "Grafana: off (TESTBED_GRAFANA=0)" in radio.up_output
    assert "Grafana:  none configured (set GRAFANA_URL and GRAFANA_TOKEN" in radio.up_output


def _up_by_node(run: Run) -> dict[str, float]:
    return {
        r["metric"]["node"]: float(r["value"][1]) for r in run.api.query(f'up{{run="{run.name}"}}')
    }


def test_every_target_is_up(office: Run) -> None:
    expected = {n.name for n in office.plan.nodes} | {"prometheus"}

    def all_up() -> dict[str, float] | None:
        up = _up_by_node(office)
        return up if set(up) == expected and all(v == 1 for v in up.values()) else None

    wait_for(all_up, 60, "Prometheus to scrape every node of the run")
    for target in office.api.targets():
        labels = target["labels"]
        if labels["job"] != "testbed-nodes":
            continue
        node = office.plan.node(labels["node"])
        assert f"[{node.config.address('mgmt')}]:9180" in target["scrapeUrl"]
        assert labels["run"] == office.name and labels["role"] == node.role
        if node.role == "thing":
            attributes = node.config.attributes
            for key in ("vendor", "model", "domain", "pan"):
                assert labels[key] == attributes[key], (node.name, key)


@pytest.mark.parametrize("metric", KEY_SERIES)
def test_key_series_hold_data_for_the_run(office: Run, metric: str) -> None:
    things = {n.name for n in office.plan.nodes if n.role == "thing"}

    def complete() -> list[dict[str, Any]] | None:
        # Commissioning finishes shortly before `up` returns: wait for the scrape that saw it.
        found: list[dict[str, Any]] = office.api.query(f'{metric}{{run="{office.name}"}}')
        if not found:
            return None
        if metric == "testbed_thing_lifecycle_state":
            operational = {
                r["metric"]["node"]
                for r in found
                if r["metric"]["state"] == "operational" and r["value"][1] == "1"
            }
            return found if operational == things else None
        if metric == "testbed_tc_enrollments_total":
            total = sum(float(r["value"][1]) for r in found if r["metric"]["outcome"] == "success")
            return found if total == len(things) else None
        return found

    found = wait_for(complete, 60, f"{metric} in Prometheus for every thing")
    assert all(r["metric"]["run"] == office.name for r in found)
    if metric == "testbed_tc_enrollments_total":
        # honor_labels: the pledge's vendor stays "vendor", not "exported_vendor"
        assert {r["metric"]["vendor"] for r in found} == {"acme", "lumina"}


def test_recording_rules_answer(office: Run) -> None:
    operational = (
        "sum(run_domain_vendor_state:testbed_thing_lifecycle_state:sum"
        f'{{run="{office.name}", state="operational"}})'
    )

    def six() -> bool:
        found = office.api.query(operational)
        return bool(found) and float(found[0]["value"][1]) == 6

    # The rule is evaluated every 5 s over what was scraped by then: all six within a minute.
    wait_for(six, 60, "the things-per-state recording rule to count six operational things")
    quantiles = office.api.query(
        f'run_profile_vendor:testbed_bootstrap_duration_seconds:quantile{{run="{office.name}"}}'
    )
    assert {r["metric"]["vendor"] for r in quantiles} == {"acme", "lumina"}


def test_status_lists_prometheus_with_its_url(office: Run, cli_env: dict[str, str]) -> None:
    status = json.loads(run_cli(["status", "--run", office.name, "--json"], cli_env).stdout)
    observers = [s for s in status if s["role"] == "observer"]
    assert len(observers) == 1
    assert observers[0]["node"] == "prometheus" and observers[0]["state"] == "running"
    assert observers[0]["attributes"]["url"] == office.api.url
    assert list(observers[0]["addresses"]) == ["mgmt"]  # mgmt only
    table = run_cli(["status", "--run", office.name], cli_env).stdout
    assert "prometheus" in table and "observer" in table


def test_snapshot_json_and_csv(office: Run, cli_env: dict[str, str], tmp_path: Path) -> None:
    wait_for(lambda: len(_up_by_node(office)) > 1, 60, "a first scrape")
    out_json, out_csv = tmp_path / "snap.json", tmp_path / "snap.csv"
    run_cli(["metrics", "snapshot", "-o", str(out_json), "--run", office.name], cli_env)
    run_cli(
        ["metrics", "snapshot", "-o", str(out_csv), "-r", office.name, "--format", "csv"], cli_env
    )
    data = json.loads(out_json.read_text())
    assert data["run"] == office.name and data["end"] > data["start"]
    names = {s["series"] for s in data["series"]}
    assert {
        "node_up",
        "thing_lifecycle_state",
        "tc_enrollments",
        "bootstrap_duration_buckets",
    } <= names
    assert all(s["labels"].get("run") == office.name for s in data["series"])
    rows = list(csv.DictReader(out_csv.open()))
    assert rows and {r["run"] for r in rows} == {office.name}


def test_targets_follow_nodes_that_come_and_go(
    office: Run, docker_client: Any, cli_env: dict[str, str]
) -> None:
    # Last test of the module: it stops a thing of the shared run.
    wait_for(lambda: "lamp-03" in _up_by_node(office), 60, "lamp-03 to be scraped")
    docker_client.containers.get(f"tb-{office.name}-lamp-03").stop(timeout=5)
    run_cli(["metrics", "targets", "--run", office.name], cli_env)
    wait_for(
        lambda: not any(t["labels"].get("node") == "lamp-03" for t in office.api.targets()),
        30,
        "Prometheus to drop the stopped lamp-03 from its targets",
    )
    assert "lamp-01" in _up_by_node(office)


# -- refusals: the commissioning-failure alert ----------------------------------------------------


@pytest.fixture(scope="module")
def refusals(docker_client, node_image, cli_env) -> Iterator[Run]:  # type: ignore[no-untyped-def]
    # Three things are refused by design: `up` exits 10 and leaves the run up.
    run = _bring_up(docker_client, cli_env, REFUSALS, "obs-it-refusals", 10)
    try:
        yield run
    finally:
        _down(docker_client, cli_env, run.name)


def _firing(run: Run, alertname: str) -> list[dict[str, Any]]:
    return [
        a
        for a in run.api.alerts()
        if a["labels"].get("alertname") == alertname
        and a["labels"].get("run") == run.name
        and a["state"] == "firing"
    ]


def test_commissioning_failure_alert_fires_for_each_refused_thing(refusals: Run) -> None:
    alerts = wait_for(
        lambda: (
            (found := _firing(refusals, "ThingCommissioningFailed"))
            and {a["labels"]["node"] for a in found} == REFUSED
            and found
        ),
        90,
        "ThingCommissioningFailed to fire for the three refused things",
        interval=2,
    )
    for alert in alerts:
        assert alert["labels"]["severity"] == "warning"
        assert alert["labels"]["domain"] == "facility"
        assert "failed to commission" in alert["annotations"]["summary"]
    # the genuine thing commissioned: no alert for it
    assert "genuine-01" not in {a["labels"]["node"] for a in alerts}


def test_refusals_are_counted_per_reason(refusals: Run) -> None:
    found = wait_for(
        lambda: refusals.api.query(
            f'run_domain_reason:testbed_tc_refusals:sum{{run="{refusals.name}"}} > 0'
        ),
        60,
        "refusals in the recording rule",
    )
    assert len({r["metric"]["reason"] for r in found}) >= 2, found


def test_every_dashboard_panel_returns_data_for_the_run(refusals: Run) -> None:
    # The refusals run holds both kinds of data: a commissioned thing and refused ones, so
    # success and failure panels alike must answer. Variables: run = this run, the rest All.
    dashboards = dashcheck.load(DASHBOARDS / f"{name}.json" for name in BUILDING_DASHBOARDS)
    # rate() panels need two samples in their window; recording rules one evaluation
    wait_for(
        lambda: (
            refusals.api.query(
                f'count_over_time(up{{run="{refusals.name}", role="trust_center"}}[1m]) >= 3'
            )
            and refusals.api.query(f'{R.BOOTSTRAP_FAILURES}{{run="{refusals.name}"}}')
        ),
        60,
        "three scrapes and the recording rules",
    )
    for dashboard in dashboards:
        options = dashcheck.variable_options(refusals.api, dashboard, refusals.name)
        assert options.get("domain", {"facility"}) == {"facility"}
        assert options.get("vendor", {"acme", "shady"}) == {"acme", "shady"}
    _check_all_panels(refusals, dashboards)


def test_every_dashboard_panel_answers_on_a_healthy_run(office: Run) -> None:
    # Nothing failed or was refused in the default building: failure and refusal panels
    # answer zero rather than "No data".
    dashboards = dashcheck.load(DASHBOARDS / f"{name}.json" for name in BUILDING_DASHBOARDS)
    wait_for(
        lambda: office.api.query(
            f'count_over_time(up{{run="{office.name}", role="trust_center"}}[1m]) >= 3'
        ),
        60,
        "three scrapes",
    )
    _check_all_panels(office, dashboards)


def test_down_removes_prometheus(
    refusals: Run, docker_client: Any, cli_env: dict[str, str]
) -> None:
    run_cli(["down", "--run", refusals.name], cli_env)
    flt = {"label": f"testbed.run={refusals.name}"}
    assert docker_client.containers.list(all=True, filters=flt) == []
    assert docker_client.volumes.list(filters=flt) == []
    assert not refusals.api.ready()


def _check_all_panels(run: Run, dashboards: list[dict[str, Any]]) -> None:
    empty: list[str] = []
    for dashboard in dashboards:
        options = dashcheck.variable_options(run.api, dashboard, run.name)
        assert run.name in options["run"]
        for result in dashcheck.check_dashboard(run.api, dashboard, run.name):
            assert not result.error, (result.query.panel, result.filled, result.error)
            if not result.series:
                empty.append(f"{result.query.dashboard} / {result.query.panel}: {result.filled}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


# -- a PAN on the emulated radio: PAN health dashboard and the PAN loss alert ---------------------


@pytest.fixture(scope="module")
def radio(docker_client, node_image, cli_env) -> Iterator[Run]:  # type: ignore[no-untyped-def]
    # A short for: so that the test sees the alert fire within seconds of the loss.
    env = dict(cli_env, TESTBED_ALERT_FOR="PanFrameLossHigh=5s")
    run = _bring_up(docker_client, env, RADIO, "obs-it-radio", 0)
    try:
        yield run
    finally:
        _down(docker_client, cli_env, run.name)


def test_pan_loss_alert_and_pan_dashboard(radio: Run, docker_client: Any) -> None:
    backend = DockerEngine(docker_client)
    assert action(backend, radio.name, "br1", "link-set", loss=0.3)["loss"] == 0.3
    try:
        loss = wait_for(
            lambda: [
                r
                for r in radio.api.query(f'{R.PAN_LOSS}{{run="{radio.name}"}} > 0.2')
                if r["metric"]["pan"] == "floor1"
            ],
            90,
            "the measured PAN loss to pass 20 %",
            interval=2,
        )
        assert float(loss[0]["value"][1]) < 0.6
        alerts = wait_for(
            lambda: _firing(radio, "PanFrameLossHigh"), 60, "PanFrameLossHigh to fire", interval=2
        )
        assert alerts[0]["labels"]["pan"] == "floor1"
        _check_all_panels(radio, dashcheck.load([DASHBOARDS / "pan.json"]))
    finally:
        action(backend, radio.name, "br1", "link-reset")
