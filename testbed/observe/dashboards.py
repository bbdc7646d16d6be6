"""Grafana dashboards and provisioning, generated here and committed under ``dashboards/``.

    dashboards/provisioning/datasources/testbed.yaml   the Prometheus datasource (uid below)
    dashboards/provisioning/dashboards/testbed.yaml    loads every JSON file of dashboards/json
    dashboards/json/*.json                             lifecycle overview, bootstrap cost, trust
                                                       center, PAN health

Generated rather than hand-edited so that panel ids stay unique, every panel names the
provisioned datasource, and queries use the recording rules of ``testbed.observe.rules`` by their
constants. ``python -m testbed.observe.dashboards`` rewrites the files; a unit test keeps them in
sync and the integration test runs every panel query against a real Prometheus holding a run.

Template variables: run (one), domain, vendor and pan (multi, All = ``.*``). Queries use
``$__rate_interval`` where they take rates.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.observe import rules as R
from testbed.observe.config import PROMETHEUS_PORT

DATASOURCE_UID = "testbed-prometheus"
FOLDER_UID = "testbed"  # folder "Testbed", provisioned or made by `dashboards push`
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
DASHBOARD_DIR = "/var/lib/grafana/dashboards/testbed"  # where Grafana finds dashboards/json
SCHEMA_VERSION = 39
RUN = 'run="$run"'
DOMAIN = 'domain=~"$domain"'
VENDOR = 'vendor=~"$vendor"'
PAN = 'pan=~"$pan"'


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[tuple[str, str], ...]  # (expr, legend)
    kind: str = "timeseries"  # timeseries | stat | table | bargauge
    unit: str = "short"
    description: str = ""
    stacked: bool = False
    width: int = 12


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    variables: tuple[str, ...]
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def _sel(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}"


def or_zero(expr: str, label: str) -> str:
    """``expr``, or one series of value 0 labelled ``label="none"`` when it has none.

    Failure and refusal counters have no series until the first failure, so on a healthy run
    their panels would say "No data", which reads as broken; zero is the answer. ``on()``
    matches everything, so the zero is added only when ``expr`` returns nothing at all.
    """
    return f'{expr} or on() label_replace(vector(0), "{label}", "none", "", "")'


THING = _sel(RUN, DOMAIN, VENDOR, PAN)
OPERATIONAL = 'state="operational"'
FAILED = 'state="failed"'
STATES = R.THINGS_BY_STATE + _sel(RUN, DOMAIN, VENDOR)
TC = _sel(RUN, 'role="trust_center"', DOMAIN)

LIFECYCLE = Dashboard(
    uid="testbed-lifecycle",
    title="Testbed: lifecycle overview",
    description="Things per lifecycle state over time, per domain and vendor; scrape health.",
    variables=("run", "domain", "vendor", "pan"),
    panels=(
        Panel(
            "Things per lifecycle state",
            ((f"sum by (state) ({STATES})", "{{state}}"),),
            stacked=True,
            width=16,
        ),
        Panel(
            "Operational / failed things",
            (
                (
                    f"sum({R.THINGS_BY_STATE}{_sel(RUN, DOMAIN, VENDOR, OPERATIONAL)})",
                    "operational",
                ),
                (f"sum({R.THINGS_BY_STATE}{_sel(RUN, DOMAIN, VENDOR, FAILED)})", "failed"),
            ),
            kind="stat",
            width=8,
        ),
        Panel(
            "Things per state, domain and vendor",
            (
                (
                    f"sum by (domain, vendor, state) ({STATES}) > 0",
                    "{{domain}} {{vendor}} {{state}}",
                ),
            ),
            kind="bargauge",
        ),
        Panel(
            "Lifecycle transitions",
            (
                (
                    f"sum by (from_state, to_state) "
                    f"(testbed_thing_lifecycle_transitions_total{THING})",
                    "{{from_state}} -> {{to_state}}",
                ),
            ),
            description="Transitions performed by the thing processes since they started.",
        ),
        Panel(
            "Current state of each thing",
            (
                (
                    f"max by (node, vendor, model, domain, pan, state) "
                    f"(testbed_thing_lifecycle_state{THING} == 1)",
                    "{{node}}",
                ),
            ),
            kind="table",
            width=24,
        ),
        Panel(
            "Nodes scraped, by role",
            ((f"{R.TARGETS_UP}{_sel(RUN)}", "{{role}}"),),
            description="Targets Prometheus reaches on mgmt (up == 1), per role.",
        ),
        Panel(
            "Node processes up",
            ((f"sum by (role) (testbed_node_up{_sel(RUN)})", "{{role}}"),),
        ),
    ),
)

BOOT = _sel(RUN, DOMAIN, VENDOR)
BOOTSTRAP = Dashboard(
    uid="testbed-bootstrap",
    title="Testbed: bootstrap cost",
    description="What bootstrapping costs per profile and vendor: time, bytes, datagrams, "
    "retransmissions, and why it fails.",
    variables=("run", "domain", "vendor"),
    panels=(
        Panel(
            "Bootstrap duration, thing side (quantiles over the run)",
            (
                (
                    f"{R.BOOTSTRAP_DURATION_Q}{_sel(RUN, VENDOR)}",
                    "{{profile}} {{vendor}} p{{quantile}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Bootstrap duration, trust center side (quantiles over the run)",
            (
                (
                    f"{R.TC_BOOTSTRAP_DURATION_Q}{_sel(RUN, DOMAIN, VENDOR)}",
                    "{{profile}} {{vendor}} p{{quantile}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Mean UDP payload bytes per bootstrap attempt",
            (
                (
                    f"{R.BOOTSTRAP_BYTES_MEAN}{_sel(RUN, VENDOR)}",
                    "{{profile}} {{vendor}} {{direction}}",
                ),
            ),
            unit="bytes",
        ),
        Panel(
            "Datagrams per bootstrap attempt",
            (
                (
                    f"sum by (profile, vendor, direction) (testbed_bootstrap_datagrams_total{BOOT})"
                    " / on (profile, vendor) group_left "
                    f"sum by (profile, vendor) (testbed_bootstrap_attempts_total{BOOT})",
                    "{{profile}} {{vendor}} {{direction}}",
                ),
            ),
        ),
        Panel(
            "Attempts by outcome",
            ((f"{R.BOOTSTRAP_ATTEMPTS}{_sel(RUN, VENDOR)}", "{{profile}} {{vendor}} {{outcome}}"),),
            stacked=True,
        ),
        Panel(
            "Failures by reason",
            (
                (
                    or_zero(f"{R.BOOTSTRAP_FAILURES}{_sel(RUN, VENDOR)}", "reason"),
                    "{{profile}} {{vendor}} {{reason}}",
                ),
            ),
            kind="bargauge",
            description="Failed bootstrap attempts, by the reason the thing reports.",
        ),
        Panel(
            "Retransmissions",
            (
                (
                    f"sum by (profile, vendor) (testbed_bootstrap_retransmissions_total{BOOT})",
                    "{{profile}} {{vendor}}",
                ),
            ),
        ),
        Panel(
            "Bootstrap duration histogram, thing side",
            (
                (
                    f"sum by (le) (testbed_bootstrap_duration_seconds_bucket{BOOT})",
                    "{{le}}",
                ),
            ),
            kind="bargauge",
            description="Cumulative bucket counts: attempts that took at most le seconds.",
        ),
    ),
)

TRUST_CENTER = Dashboard(
    uid="testbed-trust-center",
    title="Testbed: trust center",
    description="Enrollments, refusals, certificates, CRL and registry of each domain's trust "
    "center, and what it costs to run.",
    variables=("run", "domain", "vendor"),
    panels=(
        Panel(
            "Enrollments by outcome",
            ((f"{R.ENROLLMENTS}{_sel(RUN, DOMAIN)}", "{{domain}} {{outcome}}"),),
            stacked=True,
        ),
        Panel(
            "Enrollments by vendor and outcome",
            (
                (
                    f"sum by (vendor, outcome) (testbed_tc_enrollments_total{BOOT})",
                    "{{vendor}} {{outcome}}",
                ),
            ),
            kind="bargauge",
        ),
        Panel(
            "Refusals by reason",
            ((or_zero(f"{R.REFUSALS}{_sel(RUN, DOMAIN)}", "reason"), "{{domain}} {{reason}}"),),
            kind="bargauge",
        ),
        Panel(
            "Refusal rate by reason",
            (
                (
                    or_zero(f"{R.REFUSALS_RATE}{_sel(RUN, DOMAIN)}", "reason"),
                    "{{domain}} {{reason}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Certificates issued",
            (
                (
                    f"sum by (domain) (testbed_tc_certificates_issued_total{TC})",
                    "{{domain}}",
                ),
            ),
        ),
        Panel(
            "Registry: things per state",
            ((f"sum by (domain, state) (testbed_tc_registry_things{TC})", "{{domain}} {{state}}"),),
        ),
        Panel(
            "CRL entries",
            ((f"sum by (domain) (testbed_tc_crl_entries{TC})", "{{domain}}"),),
        ),
        Panel(
            "Group key generation (+1 per member revoked)",
            ((f"max by (domain) (testbed_tc_group_key_generation{TC})", "{{domain}}"),),
        ),
        Panel(
            "EDHOC sessions held",
            ((f"sum by (domain) (testbed_tc_edhoc_sessions{TC})", "{{domain}}"),),
        ),
        Panel(
            "Trust center reachable",
            ((f"up{TC}", "{{node}}"),),
            kind="stat",
        ),
        Panel(
            "Trust center CPU",
            (
                (
                    f"rate(process_cpu_seconds_total{TC}[$__rate_interval])",
                    "{{node}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Trust center resident memory",
            ((f"process_resident_memory_bytes{TC}", "{{node}}"),),
            unit="bytes",
        ),
        Panel(
            "Attack packets by outcome (attacker hosts)",
            (
                (
                    or_zero(
                        f"sum by (node, attack, outcome) "
                        f"(rate(testbed_attack_packets_total{_sel(RUN)}[$__rate_interval]))",
                        "attack",
                    ),
                    "{{node}} {{attack}} {{outcome}}",
                ),
            ),
            unit="pps",
            description="What each attack sent and what its target answered or refused "
            "(testbed.node.attacker; started by scenarios or the attack-start action); "
            "0 (none) while no attack has run.",
        ),
        Panel(
            "Attacks running",
            (
                (
                    or_zero(f"max by (node, attack) (testbed_attack_running{_sel(RUN)})", "attack"),
                    "{{node}} {{attack}}",
                ),
            ),
        ),
    ),
)

RADIO = _sel(RUN, PAN, R.MEDIUM)
PAN_HEALTH = Dashboard(
    uid="testbed-pan",
    title="Testbed: PAN health",
    description="The emulated IEEE 802.15.4 PANs as their border router's medium sees them: "
    "frames, losses by cause, airtime, fragmentation, MAC retries.",
    variables=("run", "pan"),
    panels=(
        Panel(
            "Frames put on the air",
            ((f"{R.PAN_FRAMES}{_sel(RUN, PAN)}", "{{pan}}"),),
            unit="pps",
            description="802.15.4 frames per second, MAC retries included.",
        ),
        Panel(
            "Frame loss on the channel",
            (
                (f"{R.PAN_LOSS}{_sel(RUN, PAN)}", "{{pan}} measured"),
                (f"testbed_radio_link_loss_ratio{_sel(RUN, PAN)}", "{{pan}} configured"),
            ),
            unit="percentunit",
        ),
        Panel(
            "Frames dropped, by cause",
            ((f"{R.PAN_DROPS}{_sel(RUN, PAN)}", "{{pan}} {{cause}}"),),
            unit="pps",
            stacked=True,
        ),
        Panel(
            "Channel busy",
            ((f"{R.PAN_BUSY}{_sel(RUN, PAN)}", "{{pan}}"),),
            unit="percentunit",
            description="Fraction of time the channel carried a frame (250 kbit/s airtime).",
        ),
        Panel(
            "Airtime per node",
            (
                (
                    f"sum by (pan, node) "
                    f"(rate(testbed_radio_airtime_seconds_total{RADIO}[$__rate_interval]))",
                    "{{pan}} {{node}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "MAC retries",
            (
                (
                    f"sum by (pan) (rate(testbed_radio_retries_total{RADIO}[$__rate_interval]))",
                    "{{pan}}",
                ),
            ),
            unit="pps",
        ),
        Panel(
            "Frames per IPv6 packet (6LoWPAN fragments)",
            (
                (
                    f"sum by (le) (testbed_radio_fragments_per_packet_bucket{RADIO})",
                    "{{le}}",
                ),
            ),
            kind="bargauge",
            description="Cumulative: packets sent in at most le frames.",
        ),
        Panel(
            "Frames per bootstrap attempt (median, thing side)",
            (
                (
                    "histogram_quantile(0.5, sum by (le, vendor, direction) "
                    f"(testbed_radio_bootstrap_frames_bucket{_sel(RUN, PAN)}))",
                    "{{vendor}} {{direction}}",
                ),
            ),
        ),
        Panel(
            "Dongle and SLIP uplink refusals, by cause",
            (
                (
                    or_zero(
                        "sum by (pan, radio, cause) "
                        f"(increase(testbed_radio_dongle_refused_total{_sel(RUN, PAN)}"
                        "[$__rate_interval]))",
                        "cause",
                    ),
                    "{{pan}} {{radio}} {{cause}}",
                ),
            ),
            stacked=True,
            description="What the PAN's USB dongles (Spinel) and SLIP uplinks refused: garbled "
            "HDLC/SLIP, bad FCS, wrong channel, oversize, unknown property, a device gone "
            "(line-lost) or not opened; 0 (none) on a PAN without radios.",
        ),
        Panel(
            "Estimated energy per thing (J, by component)",
            (
                (
                    or_zero(
                        "sum by (node, component) "
                        f"(testbed_thing_energy_joules_total{_sel(RUN, PAN)})",
                        "component",
                    ),
                    "{{node}} {{component}}",
                ),
            ),
            stacked=True,
            description="testbed.node.energy: radio airtime, reception, listening under the "
            "topology's MAC duty cycle, CPU and sleep, with the named radio datasheet's figures; "
            "0 (none) when the topology has no `energy:` section.",
        ),
        Panel(
            "Estimated power per thing (W)",
            (
                (
                    or_zero(
                        "sum by (node) (rate(testbed_thing_energy_joules_total"
                        f"{_sel(RUN, PAN)}[$__rate_interval]))",
                        "node",
                    ),
                    "{{node}}",
                ),
            ),
            unit="watt",
        ),
        Panel(
            "Energy of the last phase run per thing (J)",
            (
                (
                    or_zero(
                        f"max by (node, phase) (testbed_thing_energy_phase_joules{_sel(RUN, PAN)})",
                        "phase",
                    ),
                    "{{node}} {{phase}}",
                ),
            ),
            kind="bargauge",
        ),
    ),
)

DASHBOARDS = (LIFECYCLE, BOOTSTRAP, TRUST_CENTER, PAN_HEALTH)

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


def datasource_provisioning(url: str = f"http://prometheus:{PROMETHEUS_PORT}") -> dict[str, Any]:
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
                "jsonData": {"timeInterval": "5s"},
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
        "provisioning/datasources/testbed.yaml": header
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
