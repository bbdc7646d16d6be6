"""Recording rules (what the dashboards query) and alert rules, generated per run.

Recording rule names follow Prometheus' ``level:metric:operations`` convention. Cumulative series
(``:sum``, quantiles over ``_bucket`` without ``rate``) describe the whole run, which is what a
testbed run is: one experiment, start to end. ``:rate1m`` series show what happens now.

Alert ``for:`` durations are configurable (``AlertTimings``; the environment variable
``TESTBED_ALERT_FOR`` overrides them, e.g. ``ThingStuckBootstrapping=20s,TrustCenterDown=5s``),
so tests can provoke an alert without waiting minutes. Without Alertmanager the alerts are read
from Prometheus itself (``/api/v1/alerts``, the Alerts page).

PAN loss: the border router runs the radio medium and exports its view of every node of the PAN
(``testbed_radio_*{pan,node}``, role border_router); things export their own station's view of
the same frames. PAN rules read the medium's view only (``role="border_router"``), so no frame is
counted twice. Loss is ``testbed_radio_frames_dropped_total{cause="channel-loss"}`` over
``testbed_radio_frames_sent_total``: what the channel lost of what was put on the air (MAC
retries included), the quantity ``loss`` of a PAN and ``testbed link set`` control.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from testbed.errors import TestbedError

ALERT_FOR_ENV = "TESTBED_ALERT_FOR"
NODES_JOB = "testbed-nodes"
QUANTILES = ("0.5", "0.9", "0.99")
THING_LABELS = "run, node, domain, vendor, model"
_DURATION = re.compile(r"^(\d+(ms|s|m|h))+$")

# --- recording rules -----------------------------------------------------------------------------

THINGS_BY_STATE = "run_domain_vendor_state:testbed_thing_lifecycle_state:sum"
BOOTSTRAP_DURATION_Q = "run_profile_vendor:testbed_bootstrap_duration_seconds:quantile"
TC_BOOTSTRAP_DURATION_Q = "run_domain_profile_vendor:testbed_tc_bootstrap_duration_seconds:quantile"
BOOTSTRAP_BYTES_MEAN = "run_profile_vendor_direction:testbed_bootstrap_bytes:mean"
BOOTSTRAP_FAILURES = "run_profile_vendor_reason:testbed_bootstrap_failures:sum"
BOOTSTRAP_ATTEMPTS = "run_profile_vendor_outcome:testbed_bootstrap_attempts:sum"
REFUSALS_RATE = "run_domain_reason:testbed_tc_refusals:rate1m"
REFUSALS = "run_domain_reason:testbed_tc_refusals:sum"
ENROLLMENTS = "run_domain_outcome:testbed_tc_enrollments:sum"
TARGETS_UP = "run_role:up:sum"
PAN_LOSS = "run_pan:testbed_radio_frames_lost:ratio_rate1m"
PAN_DROPS = "run_pan_cause:testbed_radio_frames_dropped:rate1m"
PAN_FRAMES = "run_pan:testbed_radio_frames_sent:rate1m"
PAN_BUSY = "run_pan:testbed_radio_channel_busy:ratio_rate1m"
MEDIUM = 'role="border_router"'


def recording_rules() -> list[dict[str, Any]]:
    def quantiles(record: str, by: str, bucket: str) -> list[dict[str, Any]]:
        return [
            {
                "record": record,
                "expr": f"histogram_quantile({q}, sum by ({by}, le) ({bucket}))",
                "labels": {"quantile": q},
            }
            for q in QUANTILES
        ]

    def mean(record: str, by: str, metric: str) -> dict[str, Any]:
        return {
            "record": record,
            "expr": f"sum by ({by}) ({metric}_sum) / sum by ({by}) ({metric}_count)",
        }

    lifecycle = [
        {
            "record": THINGS_BY_STATE,
            # One series per state, 1 for the current one: the sum counts things per state.
            "expr": "sum by (run, domain, vendor, state) (testbed_thing_lifecycle_state)",
        },
        {"record": TARGETS_UP, "expr": f'sum by (run, role) (up{{job="{NODES_JOB}"}})'},
    ]
    bootstrap = [
        *quantiles(
            BOOTSTRAP_DURATION_Q,
            "run, profile, vendor",
            "testbed_bootstrap_duration_seconds_bucket",
        ),
        *quantiles(
            TC_BOOTSTRAP_DURATION_Q,
            "run, domain, profile, vendor",
            "testbed_tc_bootstrap_duration_seconds_bucket",
        ),
        mean(BOOTSTRAP_BYTES_MEAN, "run, profile, vendor, direction", "testbed_bootstrap_bytes"),
        {
            "record": BOOTSTRAP_ATTEMPTS,
            "expr": "sum by (run, profile, vendor, outcome) (testbed_bootstrap_attempts_total)",
        },
        {
            "record": BOOTSTRAP_FAILURES,
            "expr": "sum by (run, profile, vendor, reason) "
            '(testbed_bootstrap_attempts_total{outcome!="success"})',
        },
    ]
    trust_center = [
        {"record": REFUSALS, "expr": "sum by (run, domain, reason) (testbed_tc_refusals_total)"},
        {
            "record": REFUSALS_RATE,
            "expr": "sum by (run, domain, reason) (rate(testbed_tc_refusals_total[1m]))",
        },
        {
            "record": ENROLLMENTS,
            "expr": "sum by (run, domain, outcome) (testbed_tc_enrollments_total)",
        },
    ]
    sent = f"sum by (run, pan) (rate(testbed_radio_frames_sent_total{{{MEDIUM}}}[1m]))"
    lost = (
        "sum by (run, pan) (rate(testbed_radio_frames_dropped_total"
        f'{{{MEDIUM}, cause="channel-loss"}}[1m]))'
    )
    pan = [
        {"record": PAN_FRAMES, "expr": sent},
        {
            "record": PAN_LOSS,
            # "or ... * 0": no channel-loss series until the first loss; then the ratio is 0
            "expr": f"({lost} or {sent} * 0) / {sent}",
        },
        {
            "record": PAN_DROPS,
            "expr": "sum by (run, pan, cause) "
            f"(rate(testbed_radio_frames_dropped_total{{{MEDIUM}}}[1m]))",
        },
        {
            "record": PAN_BUSY,
            "expr": "sum by (run, pan) (rate(testbed_radio_channel_busy_seconds_total[1m]))",
        },
    ]
    return [
        {"name": "testbed-lifecycle", "rules": lifecycle},
        {"name": "testbed-bootstrap", "rules": bootstrap},
        {"name": "testbed-trust-center", "rules": trust_center},
        {"name": "testbed-pan", "rules": pan},
    ]


# --- alert rules ---------------------------------------------------------------------------------


DEFAULT_FOR: Mapping[str, str] = {
    "ThingCommissioningFailed": "10s",  # a final state: it does not flap
    "EnrollmentsRefused": "0s",
    "ThingStuckBootstrapping": "2m",
    "TrustCenterDown": "30s",
    "NodeDown": "1m",
    "PanFrameLossHigh": "1m",
}
PAN_LOSS_THRESHOLD = 0.2
THRESHOLD_KEY = "pan_loss_threshold"


@dataclass(frozen=True)
class AlertTimings:
    """``for:`` of each alert (Prometheus durations, by alert name) and the PAN loss threshold."""

    durations: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FOR))
    pan_loss_threshold: float = PAN_LOSS_THRESHOLD

    def for_(self, alert: str) -> str:
        return self.durations.get(alert, DEFAULT_FOR[alert])

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertTimings:
        text = (os.environ if environ is None else environ).get(ALERT_FOR_ENV, "")
        return cls().overridden(text)

    def overridden(self, text: str) -> AlertTimings:
        """Apply ``AlertName=duration,...`` (and ``pan_loss_threshold=0.1``)."""
        durations = dict(self.durations)
        threshold = self.pan_loss_threshold
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = (s.strip() for s in item.partition("="))
            if sep and name == THRESHOLD_KEY:
                try:
                    threshold = float(value)
                except ValueError as exc:
                    raise TestbedError(
                        f"{ALERT_FOR_ENV}: {value!r} is not a number", "e.g. 0.2 for 20 %"
                    ) from exc
            elif sep and name in DEFAULT_FOR and _DURATION.match(value):
                durations[name] = value
            else:
                raise TestbedError(
                    f"{ALERT_FOR_ENV}: cannot use {item!r}",
                    "write AlertName=duration (0s, 30s, 2m),...; alerts: "
                    f"{', '.join(DEFAULT_FOR)}; and {THRESHOLD_KEY}=0.2",
                )
        return AlertTimings(durations, threshold)


def alert_rules(timings: AlertTimings) -> list[dict[str, Any]]:
    def alert(
        name: str, expr: str, severity: str, summary: str, description: str
    ) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": timings.for_(name),
            "labels": {"severity": severity},
            "annotations": {"summary": summary, "description": description},
        }

    rules = [
        alert(
            "ThingCommissioningFailed",
            f'max by ({THING_LABELS}) (testbed_thing_lifecycle_state{{state="failed"}}) == 1',
            "warning",
            "{{ $labels.node }} failed to commission",
            "Thing {{ $labels.node }} ({{ $labels.vendor }}/{{ $labels.model }}) of domain "
            "{{ $labels.domain }} in run {{ $labels.run }} is in lifecycle state failed.",
        ),
        alert(
            "EnrollmentsRefused",
            "sum by (run, domain, reason) (increase(testbed_tc_refusals_total[5m])) > 0",
            "warning",
            "the trust center of {{ $labels.domain }} refuses pledges ({{ $labels.reason }})",
            "{{ $value }} refusals with reason {{ $labels.reason }} in the last 5 minutes.",
        ),
        alert(
            "ThingStuckBootstrapping",
            f"max by ({THING_LABELS}) "
            '(testbed_thing_lifecycle_state{state="bootstrapping"}) == 1',
            "warning",
            "{{ $labels.node }} is stuck bootstrapping",
            "Thing {{ $labels.node }} has been bootstrapping for longer than the alert's for: "
            "duration.",
        ),
        alert(
            "TrustCenterDown",
            f'up{{job="{NODES_JOB}", role="trust_center"}} == 0',
            "critical",
            "trust center {{ $labels.node }} is down",
            "Prometheus cannot scrape trust center {{ $labels.node }} of domain "
            "{{ $labels.domain }}: no thing of that domain can be commissioned.",
        ),
        alert(
            "NodeDown",
            f'up{{job="{NODES_JOB}", role!="trust_center"}} == 0',
            "warning",
            "node {{ $labels.node }} is down",
            "Prometheus cannot scrape {{ $labels.node }} ({{ $labels.role }}).",
        ),
        alert(
            "PanFrameLossHigh",
            f"{PAN_LOSS} > {timings.pan_loss_threshold:g}",
            "warning",
            "PAN {{ $labels.pan }} loses {{ $value | humanizePercentage }} of its frames",
            "Frames lost on the channel / frames put on the air in PAN {{ $labels.pan }} over "
            f"1 minute is above {timings.pan_loss_threshold:g} (the border router's medium: "
            'testbed_radio_frames_dropped_total{cause="channel-loss"} / '
            "testbed_radio_frames_sent_total).",
        ),
    ]
    return [{"name": "testbed-alerts", "rules": rules}]


def render_rules(groups: list[dict[str, Any]]) -> str:
    return yaml.safe_dump({"groups": groups}, sort_keys=False, width=120)
