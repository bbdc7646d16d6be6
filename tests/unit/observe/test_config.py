"""The generated Prometheus configuration and rules: promtool accepts them, they mean it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from testbed.observe import rules as R
from testbed.observe.config import prometheus_config, write_observe_dir
from testbed.observe.promtool import check_config, check_rules
from testbed.observe.rules import AlertTimings, alert_rules, recording_rules
from testbed.observe.targets import read_targets, targets_from_plan
from testbed.plan import Plan

NODE_SOURCES = Path(__file__).resolve().parents[3] / "testbed" / "node"
NOT_YET_EXPORTED: set[str] = set()
PROMETHEUS_OWN = {"up"}


def test_generated_configuration_passes_promtool(plan: Plan, tmp_path: Path, promtool: str) -> None:
    files = write_observe_dir(plan.run, tmp_path, targets_from_plan(plan))
    result = check_config(files.config)
    assert result.ok, result.output
    assert "2 rule files found" in result.output


def test_every_rule_file_passes_promtool(plan: Plan, tmp_path: Path, promtool: str) -> None:
    files = write_observe_dir(plan.run, tmp_path, targets_from_plan(plan))
    for rule_file in files.rule_files:
        result = check_rules(rule_file)
        assert result.ok, f"{rule_file.name}: {result.output}"


def test_shortened_alert_timings_still_pass_promtool(
    plan: Plan, tmp_path: Path, promtool: str
) -> None:
    timings = AlertTimings().overridden("ThingStuckBootstrapping=5s,pan_loss_threshold=0.05")
    files = write_observe_dir(plan.run, tmp_path, targets_from_plan(plan), timings)
    assert check_rules(files.alerts).ok
    alerts = yaml.safe_load(files.alerts.read_text())["groups"][0]["rules"]
    stuck = next(a for a in alerts if a["alert"] == "ThingStuckBootstrapping")
    assert stuck["for"] == "5s"
    loss = next(a for a in alerts if a["alert"] == "PanFrameLossHigh")
    assert loss["expr"].endswith("> 0.05")


def test_scrape_configuration(plan: Plan) -> None:
    config = prometheus_config(plan.run)
    assert config["global"]["scrape_interval"] == "5s"
    nodes = config["scrape_configs"][0]
    assert nodes["job_name"] == R.NODES_JOB
    assert nodes["honor_labels"] is True
    assert nodes["file_sd_configs"][0]["files"] == ["targets/*.json"]
    assert config["rule_files"] == ["rules/*.yml"]


def test_files_are_readable_by_prometheus_and_relative(plan: Plan, tmp_path: Path) -> None:
    files = write_observe_dir(plan.run, tmp_path, targets_from_plan(plan))
    for path in (files.config, files.targets, *files.rule_files):
        assert path.stat().st_mode & 0o777 == 0o644
    assert files.directory.stat().st_mode & 0o777 == 0o755
    assert str(tmp_path) not in files.config.read_text()  # mounted elsewhere in the container


def test_targets_cover_every_node_on_mgmt_with_its_labels(plan: Plan, tmp_path: Path) -> None:
    write_observe_dir(plan.run, tmp_path, targets_from_plan(plan))
    groups = read_targets(tmp_path / "observe")
    by_node = {g["labels"]["node"]: g for g in groups}
    assert sorted(by_node) == sorted(n.name for n in plan.nodes)
    for node in plan.nodes:
        group = by_node[node.name]
        assert group["targets"] == [f"[{node.config.address('mgmt')}]:9180"]
        assert group["labels"]["run"] == plan.run
        assert group["labels"]["role"] == node.role
    thermostat = by_node["thermostat-01"]["labels"]
    assert thermostat == {
        "run": plan.run,
        "node": "thermostat-01",
        "role": "thing",
        "vendor": "acme",
        "model": "thermo-100",
        "domain": "facility",
        "pan": "floor1",
    }
    assert by_node["tc-facility"]["labels"]["domain"] == "facility"
    assert "vendor" not in by_node["br1"]["labels"]  # no empty labels


def _exported_metrics() -> set[str]:
    """Series names node code exports: counters get _total, histograms _bucket/_sum/_count."""
    declared = re.compile(
        r"\b(Counter|Gauge|Histogram|Info)(?:MetricFamily)?\(\s*\"(testbed_\w+)\"", re.S
    )
    names: set[str] = set()
    for path in NODE_SOURCES.rglob("*.py"):
        for kind, name in declared.findall(path.read_text(encoding="utf-8")):
            if kind == "Counter":
                names.add(f"{name}_total")
            elif kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif kind == "Info":
                names.add(f"{name}_info")
            else:
                names.add(name)
    names |= {"process_cpu_seconds_total", "process_resident_memory_bytes"}
    # Modules that build their metrics from the catalogue name them there.
    from testbed.contracts.metric_catalogue import METRICS

    for spec in METRICS.values():
        names |= set(spec.samples)
    return names


def _metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_grouping = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_labels)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b", without_grouping))
    return {n for n in names if n.startswith("testbed_") or n in PROMETHEUS_OWN}


def test_rules_only_use_metrics_that_nodes_export() -> None:
    exported = _exported_metrics()
    assert "testbed_thing_lifecycle_state" in exported  # the scan finds the role's metrics
    assert "testbed_tc_enrollments_total" in exported
    groups = recording_rules() + alert_rules(AlertTimings())
    for group in groups:
        for rule in group["rules"]:
            unknown = _metric_names(rule["expr"]) - exported - NOT_YET_EXPORTED - PROMETHEUS_OWN
            assert not unknown, (rule.get("record") or rule.get("alert"), unknown)


def test_recording_rule_names_follow_the_convention() -> None:
    for group in recording_rules():
        for rule in group["rules"]:
            level, metric, operation = rule["record"].split(":")
            assert level and metric and operation
            assert "run" in level.split("_"), rule["record"]  # every series stays per run


def test_a_longer_scrape_interval_passes_promtool(
    plan: Plan, tmp_path: Path, promtool: str
) -> None:
    """15 s, the longest a topology may ask for: the rules' one-minute windows still hold four
    scrapes, the timeout stays below the interval, and promtool accepts both files."""
    files = write_observe_dir(plan.run, tmp_path, targets_from_plan(plan), interval_s=15)
    assert check_config(files.config).ok
    config = yaml.safe_load(files.config.read_text())["global"]
    assert config == {
        "scrape_interval": "15s",
        "scrape_timeout": "4s",
        "evaluation_interval": "15s",
    }
    windows = re.findall(r"\[(\d+)m\]", files.recording.read_text() + files.alerts.read_text())
    assert windows and min(int(w) for w in windows) * 60 >= 4 * 15
    short = prometheus_config(plan.run, interval_s=2)["global"]
    assert short["scrape_timeout"] == "2s"  # Prometheus refuses a timeout above the interval


def test_grafana_gets_the_runs_scrape_interval(plan: Plan, tmp_path: Path) -> None:
    """A run scraped every 15 s mounts its own datasource (timeInterval 15s) over the
    repository's; a run at the default interval uses the repository's as it is."""
    from dataclasses import replace

    from testbed.observe.grafana_service import PROVISIONING_MOUNT, datasource_mount

    assert datasource_mount(plan, tmp_path) == {}
    ((source, mount),) = datasource_mount(replace(plan, scrape_interval_s=15), tmp_path).items()
    assert mount == {"bind": f"{PROVISIONING_MOUNT}/datasources/testbed.yaml", "mode": "ro"}
    (datasource,) = yaml.safe_load(Path(source).read_text())["datasources"]
    assert datasource["jsonData"] == {"timeInterval": "15s"}
