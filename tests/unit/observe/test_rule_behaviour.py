"""The rules do what they say, on synthetic series: `promtool test rules` (no Prometheus needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.observe import dashboards, dashcheck
from testbed.observe import rules as R
from testbed.observe.files import atomic_write
from testbed.observe.rules import AlertTimings, alert_rules, recording_rules, render_rules

THING = 'run="r", node="t1", domain="d", vendor="acme", model="m1"'
BOOTSTRAPPING = f'testbed_thing_lifecycle_state{{{THING}, state="bootstrapping"}}'


def _promtool_test(tmp_path: Path, promtool: str, tests: list[dict[str, Any]]) -> None:
    atomic_write(tmp_path / "recording.yml", render_rules(recording_rules()))
    atomic_write(tmp_path / "alerts.yml", render_rules(alert_rules(AlertTimings())))
    spec = {
        "rule_files": ["recording.yml", "alerts.yml"],
        "evaluation_interval": "5s",
        "tests": tests,
    }
    atomic_write(tmp_path / "test.yml", yaml.safe_dump(spec, sort_keys=False))
    proc = subprocess.run(
        [promtool, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_failed_thing_raises_the_commissioning_alert(tmp_path: Path, promtool: str) -> None:
    summary = "t1 failed to commission"
    _promtool_test(
        tmp_path,
        promtool,
        [
            {
                "interval": "5s",
                "input_series": [
                    {
                        "series": f'testbed_thing_lifecycle_state{{{THING}, state="failed"}}',
                        "values": "0 0 1 1 1 1 1 1",
                    },
                    {
                        "series": BOOTSTRAPPING,
                        "values": "1 1 0 0 0 0 0 0",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "5s", "alertname": "ThingCommissioningFailed", "exp_alerts": []},
                    {
                        "eval_time": "30s",
                        "alertname": "ThingCommissioningFailed",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "run": "r",
                                    "node": "t1",
                                    "domain": "d",
                                    "vendor": "acme",
                                    "model": "m1",
                                },
                                "exp_annotations": {
                                    "summary": summary,
                                    "description": "Thing t1 (acme/m1) of domain d in run r is "
                                    "in lifecycle state failed.",
                                },
                            }
                        ],
                    },
                    {"eval_time": "30s", "alertname": "ThingStuckBootstrapping", "exp_alerts": []},
                ],
            }
        ],
    )


def test_stuck_bootstrapping_fires_after_two_minutes(tmp_path: Path, promtool: str) -> None:
    stuck = {
        "severity": "warning",
        "run": "r",
        "node": "t1",
        "domain": "d",
        "vendor": "acme",
        "model": "m1",
    }
    _promtool_test(
        tmp_path,
        promtool,
        [
            {
                "interval": "30s",
                "input_series": [
                    {
                        "series": BOOTSTRAPPING,
                        "values": "1x10",
                    }
                ],
                "alert_rule_test": [
                    {"eval_time": "90s", "alertname": "ThingStuckBootstrapping", "exp_alerts": []},
                    {
                        "eval_time": "150s",
                        "alertname": "ThingStuckBootstrapping",
                        "exp_alerts": [
                            {
                                "exp_labels": stuck,
                                "exp_annotations": {
                                    "summary": "t1 is stuck bootstrapping",
                                    "description": "Thing t1 has been bootstrapping for longer "
                                    "than the alert's for: duration.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    )


def test_trust_center_down_and_refusals(tmp_path: Path, promtool: str) -> None:
    tc = f'job="{R.NODES_JOB}", run="r", node="tc", role="trust_center", domain="d"'
    _promtool_test(
        tmp_path,
        promtool,
        [
            {
                "interval": "10s",
                "input_series": [
                    {"series": f"up{{{tc}}}", "values": "1 1 0 0 0 0 0"},
                    {
                        "series": 'testbed_tc_refusals_total{run="r", node="tc", domain="d", '
                        'reason="untrusted-vendor", vendor="shady"}',
                        "values": "0 1 2 3 3 3 3",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "60s",
                        "alertname": "TrustCenterDown",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "job": R.NODES_JOB,
                                    "run": "r",
                                    "node": "tc",
                                    "role": "trust_center",
                                    "domain": "d",
                                },
                                "exp_annotations": {
                                    "summary": "trust center tc is down",
                                    "description": "Prometheus cannot scrape trust center tc of "
                                    "domain d: no thing of that domain can be commissioned.",
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "30s",
                        "alertname": "EnrollmentsRefused",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "run": "r",
                                    "domain": "d",
                                    "reason": "untrusted-vendor",
                                },
                                "exp_annotations": {
                                    "summary": "the trust center of d refuses pledges "
                                    "(untrusted-vendor)",
                                    "description": "3 refusals with reason untrusted-vendor in "
                                    "the last 5 minutes.",
                                },
                            }
                        ],
                    },
                ],
                "promql_expr_test": [
                    {
                        "expr": R.REFUSALS,
                        "eval_time": "60s",
                        "exp_samples": [
                            {
                                "labels": f'{R.REFUSALS}{{run="r", domain="d", '
                                'reason="untrusted-vendor"}',
                                "value": 3,
                            }
                        ],
                    }
                ],
            }
        ],
    )


def test_pan_loss_alert_uses_the_threshold(tmp_path: Path, promtool: str) -> None:
    pan = 'run="r", node="t1", role="border_router", pan="p0"'
    dropped = "testbed_radio_frames_dropped_total"
    _promtool_test(
        tmp_path,
        promtool,
        [
            {
                "interval": "15s",
                "input_series": [
                    {"series": f"testbed_radio_frames_sent_total{{{pan}}}", "values": "0+100x20"},
                    # 30 % lost on the channel: above the default 20 % threshold
                    {"series": f'{dropped}{{{pan}, cause="channel-loss"}}', "values": "0+30x20"},
                    # other causes are not channel loss
                    {"series": f'{dropped}{{{pan}, cause="queue-full"}}', "values": "0+50x20"},
                    # a thing's own view of the same frames is not counted again
                    {
                        "series": 'testbed_radio_frames_sent_total{run="r", node="t1", '
                        'role="thing", pan="p0"}',
                        "values": "0+100x20",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "4m",
                        "alertname": "PanFrameLossHigh",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "run": "r", "pan": "p0"},
                                "exp_annotations": {
                                    "summary": "PAN p0 loses 30% of its frames",
                                    "description": "Frames lost on the channel / frames put on "
                                    "the air in PAN p0 over 1 minute is above 0.2 (the border "
                                    "router's medium: testbed_radio_frames_dropped_total"
                                    '{cause="channel-loss"} / testbed_radio_frames_sent_total).',
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    )


def test_recording_rules_count_things_and_quantiles(tmp_path: Path, promtool: str) -> None:
    bucket = (
        'testbed_bootstrap_duration_seconds_bucket{run="r", node="t1", profile="edhoc-oscore", '
        'vendor="acme"'
    )
    _promtool_test(
        tmp_path,
        promtool,
        [
            {
                "interval": "5s",
                "input_series": [
                    {
                        "series": f'testbed_thing_lifecycle_state{{{THING}, state="operational"}}',
                        "values": "1x5",
                    },
                    {
                        "series": 'testbed_thing_lifecycle_state{run="r", node="t2", domain="d", '
                        'vendor="acme", model="m1", state="operational"}',
                        "values": "1x5",
                    },
                    {"series": f'{bucket}, le="0.1"}}', "values": "0x5"},
                    {"series": f'{bucket}, le="1"}}', "values": "4x5"},
                    {"series": f'{bucket}, le="+Inf"}}', "values": "4x5"},
                ],
                "promql_expr_test": [
                    {
                        "expr": R.THINGS_BY_STATE + '{state="operational"}',
                        "eval_time": "10s",
                        "exp_samples": [
                            {
                                "labels": f'{R.THINGS_BY_STATE}{{run="r", domain="d", '
                                'vendor="acme", state="operational"}',
                                "value": 2,
                            }
                        ],
                    },
                    {
                        "expr": R.BOOTSTRAP_DURATION_Q + '{quantile="0.5"}',
                        "eval_time": "10s",
                        "exp_samples": [
                            {
                                "labels": f'{R.BOOTSTRAP_DURATION_Q}{{run="r", '
                                'profile="edhoc-oscore", vendor="acme", quantile="0.5"}',
                                "value": 0.55,
                            }
                        ],
                    },
                ],
            }
        ],
    )


def test_pan_loss_is_zero_before_the_first_lost_frame(tmp_path: Path, promtool: str) -> None:
    pan = 'run="r", node="t1", role="border_router", pan="p0"'
    _promtool_test(
        tmp_path,
        promtool,
        [
            {
                "interval": "15s",
                "input_series": [
                    {"series": f"testbed_radio_frames_sent_total{{{pan}}}", "values": "0+100x20"}
                ],
                "promql_expr_test": [
                    {
                        "expr": R.PAN_LOSS,
                        "eval_time": "2m",
                        "exp_samples": [
                            {"labels": f'{R.PAN_LOSS}{{run="r", pan="p0"}}', "value": 0}
                        ],
                    }
                ],
                "alert_rule_test": [
                    {"eval_time": "4m", "alertname": "PanFrameLossHigh", "exp_alerts": []}
                ],
            }
        ],
    )


def _zero_panels(label: str = "reason") -> list[tuple[str, str]]:
    """(panel, query as Grafana sends it for run "r", every other variable All) of each panel
    that answers zero, labelled ``label="none"``, when its counter has no series yet."""
    out = []
    for dashboard in dashboards.DASHBOARDS:
        values = dashcheck.variable_values(dashboards.dashboard_json(dashboard), "r")
        for panel in dashboard.panels:
            for expr, _legend in panel.exprs:
                if f'vector(0), "{label}", "none"' in expr:
                    out.append((panel.title, dashcheck.fill(expr, values)))
    return out


@pytest.mark.parametrize(
    ("label", "titles"),
    [
        ("attack", {"Attack packets by outcome (attacker hosts)", "Attacks running"}),
        ("component", {"Estimated energy per thing (J, by component)"}),
        ("node", {"Estimated power per thing (W)"}),
        ("phase", {"Energy of the last phase run per thing (J)"}),
    ],
)
def test_attack_and_energy_panels_answer_zero_without_an_attacker_or_energy_model(
    tmp_path: Path, promtool: str, label: str, titles: set[str]
) -> None:
    """A building without an attacker host or an `energy:` section: 0 (label "none"), not
    "No data"."""
    panels = _zero_panels(label)
    assert {title for title, _ in panels} == titles
    zero = [{"labels": f'{{{label}="none"}}', "value": 0}]
    ok_attempts = (
        f'testbed_bootstrap_attempts_total{{{THING}, profile="edhoc-oscore", outcome="success"}}'
    )
    _promtool_test(
        tmp_path,
        promtool,
        [
            {
                "interval": "5s",
                "input_series": [{"series": ok_attempts, "values": "1x20"}],
                "promql_expr_test": [
                    {"expr": query, "eval_time": "1m", "exp_samples": zero} for _, query in panels
                ],
            }
        ],
    )


def test_failure_and_refusal_panels_answer_zero_on_a_healthy_run(
    tmp_path: Path, promtool: str
) -> None:
    """Prometheus' own engine (promtool) evaluates each such panel query: 0 (reason "none")
    while nothing failed, the counted series and no zero once something did."""
    panels = _zero_panels()
    assert {title for title, _ in panels} == {
        "Failures by reason",
        "Refusals by reason",
        "Refusal rate by reason",
    }
    zero = [{"labels": '{reason="none"}', "value": 0}]
    healthy = [{"expr": query, "eval_time": "1m", "exp_samples": zero} for _, query in panels]
    failed = {
        "Failures by reason": (
            "run_profile_vendor_reason:testbed_bootstrap_failures:sum"
            '{profile="edhoc-oscore", reason="timeout", run="r", vendor="acme"}'
        ),
        "Refusals by reason": (
            'run_domain_reason:testbed_tc_refusals:sum{domain="d", reason="revoked", run="r"}'
        ),
    }
    refused = [
        {"expr": query, "eval_time": "1m", "exp_samples": [{"labels": failed[title], "value": 3}]}
        for title, query in panels
        if title in failed
    ]
    ok_attempts = (
        f'testbed_bootstrap_attempts_total{{{THING}, profile="edhoc-oscore", outcome="success"}}'
    )
    _promtool_test(
        tmp_path,
        promtool,
        [
            {  # a healthy run: things bootstrapped, nothing refused
                "interval": "5s",
                "input_series": [{"series": ok_attempts, "values": "1x20"}],
                "promql_expr_test": healthy,
            },
            {
                "interval": "5s",
                "input_series": [
                    {
                        "series": f"testbed_bootstrap_attempts_total{{{THING}, "
                        'profile="edhoc-oscore", outcome="failure", reason="timeout"}',
                        "values": "3x20",
                    },
                    {
                        "series": 'testbed_tc_refusals_total{run="r", domain="d", '
                        'reason="revoked", vendor="acme"}',
                        "values": "3x20",
                    },
                ],
                "promql_expr_test": refused,
            },
        ],
    )
