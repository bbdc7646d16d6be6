"""What the testbed's Grafana dashboards show: four dashboards (lifecycle overview, bootstrap
cost, trust center, PAN health), each a list of panels with their PromQL queries, written
against the recording rules of ``testbed.observe.rules`` by their constants.
testbed.observe.dashboards turns them into Grafana JSON and provisioning files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from testbed.observe import rules as R

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
