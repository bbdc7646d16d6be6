"""Every metric a node exports, declared once: name, type, labels, help, unit, who exports it.

Node code builds its metrics from here (``counter``, ``gauge``, ``histogram``, ``info`` for the
client library's objects, ``family`` for custom collectors), so names, help texts and label
sets cannot drift from this list; ``docs/metrics.md`` is generated from it
(``python -m testbed.observe.catalogue``), and tests compare it with what real node processes
export. Standard library only: it runs inside the node image and on the host; the node builds its
Prometheus objects from it with testbed.node.declared_metrics.

Names are the base names the client library is given: a counter ``testbed_x`` is exposed as
``testbed_x_total``, an info ``testbed_x`` as ``testbed_x_info``, a histogram as ``_bucket``,
``_sum`` and ``_count`` series (``MetricSpec.samples``). Prometheus' unit conventions apply:
seconds and bytes carry the unit in the name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["counter", "gauge", "histogram", "info"]

ALL_ROLES = ("thing", "trust_center", "border_router", "internet_host")
PAN_NODES = ("thing", "border_router")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    roles: tuple[str, ...] = ALL_ROLES  # who exports it (roles, or "internet_host:<kind>")
    component: str = "node"  # the section of docs/metrics.md
    buckets: tuple[float, ...] = ()
    # Labels beyond ``labels`` that vary per node (testbed_node_info: the role's attributes).
    open_labels: bool = False
    note: str = ""  # when it appears, what the label values are
    always: bool = True  # False: only where the node has the feature (e.g. shaped links)

    @property
    def exposed(self) -> str:
        """The metric family name as scraped (counters end in _total, infos in _info)."""
        return {"counter": f"{self.name}_total", "info": f"{self.name}_info"}.get(
            self.type, self.name
        )

    @property
    def samples(self) -> tuple[str, ...]:
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.exposed,)


DURATION_BUCKETS_THING = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BYTES_BUCKETS_THING = (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536)
DURATION_BUCKETS_TC = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BYTES_BUCKETS_TC = (100, 200, 400, 600, 800, 1000, 1500, 2000, 3000, 5000, 10000, 20000)
LATENCY_BUCKETS_BACKEND = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
FRAGMENT_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16)
BOOTSTRAP_FRAME_BUCKETS = (5, 10, 20, 40, 80, 160, 320, 640)

IDENTITY = ("vendor", "model", "domain", "profile")
RADIO_NODE = ("pan", "node")
BACKEND = ("internet_host:backend",)
CLOUD = ("internet_host:vendor-cloud",)
ATTACKER = ("internet_host:attacker",)

_SPECS: tuple[MetricSpec, ...] = (
    # -- every node (testbed.node.metrics) ---------------------------------------------------
    MetricSpec(
        "testbed_node",
        "info",
        "Identity and role facts of this node.",
        ("run", "building", "node", "role"),
        open_labels=True,
        note="plus one label per plan attribute of the node (vendor, model, domain, pan, ...)",
    ),
    MetricSpec("testbed_node_up", "gauge", "1 while the node process runs."),
    MetricSpec("testbed_node_ready", "gauge", "1 once the node's role has started."),
    MetricSpec(
        "testbed_node_start_time_seconds",
        "gauge",
        "Start time of the node process since the Unix epoch.",
        unit="seconds",
    ),
    # -- lifecycle phase runs (testbed.node.phase_marks; the playbooks' phase_mark) ---------
    MetricSpec(
        "testbed_phase_runs",
        "counter",
        "Lifecycle phase runs that included this node, by outcome.",
        ("phase", "outcome"),
        note="after the first `testbed phase` run on the node; outcome: successful or failed",
        always=False,
    ),
    MetricSpec(
        "testbed_phase_last_run_start_seconds",
        "gauge",
        "Start of the last run of the phase that included this node, Unix time.",
        ("phase",),
        unit="seconds",
        note="after the first `testbed phase` run on the node",
        always=False,
    ),
    MetricSpec(
        "testbed_phase_last_run_end_seconds",
        "gauge",
        "End of the last run of the phase on this node, Unix time.",
        ("phase",),
        unit="seconds",
        note="after the first `testbed phase` run on the node",
        always=False,
    ),
    # -- things (testbed.node.thing.metrics, testbed.node.thing.role) -----------------------
    MetricSpec(
        "testbed_thing_lifecycle_state",
        "gauge",
        "Lifecycle state of the thing (1 for the current state, 0 otherwise).",
        ("state",),
        roles=("thing",),
        component="thing",
    ),
    MetricSpec(
        "testbed_thing_lifecycle_transitions",
        "counter",
        "Lifecycle transitions performed by this process.",
        ("from_state", "to_state"),
        roles=("thing",),
        component="thing",
    ),
    MetricSpec(
        "testbed_bootstrap_duration_seconds",
        "histogram",
        "Duration of one bootstrap attempt, success or failure.",
        IDENTITY,
        unit="seconds",
        roles=("thing",),
        component="thing",
        buckets=DURATION_BUCKETS_THING,
    ),
    MetricSpec(
        "testbed_bootstrap_bytes",
        "histogram",
        "UDP payload bytes of one bootstrap attempt, per direction.",
        (*IDENTITY, "direction"),
        unit="bytes",
        roles=("thing",),
        component="thing",
        buckets=BYTES_BUCKETS_THING,
        note="direction: sent, received; retransmissions included",
    ),
    MetricSpec(
        "testbed_bootstrap_datagrams",
        "counter",
        "UDP datagrams of bootstrap attempts, retransmissions included.",
        (*IDENTITY, "direction"),
        roles=("thing",),
        component="thing",
    ),
    MetricSpec(
        "testbed_bootstrap_retransmissions",
        "counter",
        "Datagrams of bootstrap attempts that repeated an earlier one.",
        IDENTITY,
        roles=("thing",),
        component="thing",
    ),
    MetricSpec(
        "testbed_bootstrap_attempts",
        "counter",
        "Bootstrap attempts by outcome and failure reason (none on success).",
        (*IDENTITY, "outcome", "reason"),
        roles=("thing",),
        component="thing",
    ),
    MetricSpec(
        "testbed_thing_requests",
        "counter",
        "Requests that reached a resource handler, by response code.",
        ("resource", "method", "code"),
        roles=("thing",),
        component="thing",
    ),
    MetricSpec(
        "testbed_thing_refused",
        "counter",
        "Requests refused before any handler ran, by reason.",
        ("reason",),
        roles=("thing",),
        component="thing",
        note="reason: unprotected, replay, echo-recovery, invalid",
    ),
    MetricSpec(
        "testbed_thing_firmware_updates",
        "counter",
        "Firmware update requests by outcome and refusal reason (none unless refused).",
        ("outcome", "reason"),
        roles=("thing",),
        component="thing",
        note="outcome: updated, refused, unchanged",
    ),
    MetricSpec(
        "testbed_thing_firmware_info",
        "gauge",
        "The installed firmware version (1 for it, no other series).",
        ("version",),
        roles=("thing",),
        component="thing",
    ),
    MetricSpec(
        "testbed_thing_rekeys",
        "counter",
        "Key rotations (LDevID renewal and new contexts) by outcome and failure reason.",
        ("outcome", "reason"),
        roles=("thing",),
        component="thing",
        note="outcome: renewed, failed",
    ),
    MetricSpec(
        "testbed_thing_moves",
        "counter",
        "Moves of the thing to another PAN (testbed move).",
        IDENTITY,
        roles=("thing",),
        component="thing",
    ),
    MetricSpec(
        "testbed_thing_move_handshakes",
        "counter",
        "Bootstrap attempts (handshakes) the thing needed to re-register after a move.",
        IDENTITY,
        roles=("thing",),
        component="thing",
        note="0 per move when it keeps its contexts (no re-registration)",
    ),
    # -- trust centers (testbed.node.trust_center.metrics) ----------------------------------
    MetricSpec(
        "testbed_tc_enrollments",
        "counter",
        "Enrollment requests answered, by outcome and refusal reason.",
        ("vendor", "model", "domain", "profile", "outcome", "reason"),
        roles=("trust_center",),
        component="trust center",
        note='outcome: success, refused; reason "" on success',
    ),
    MetricSpec(
        "testbed_tc_refusals",
        "counter",
        "Refusals recorded in the registry (EDHOC handshakes and CoAP requests).",
        ("reason", "vendor"),
        roles=("trust_center",),
        component="trust center",
    ),
    MetricSpec(
        "testbed_tc_certificates_issued",
        "counter",
        "LDevID certificates issued (committed to the registry).",
        roles=("trust_center",),
        component="trust center",
    ),
    MetricSpec(
        "testbed_tc_registry_things",
        "gauge",
        "Things in the registry per state.",
        ("state",),
        roles=("trust_center",),
        component="trust center",
    ),
    MetricSpec(
        "testbed_tc_crl_entries",
        "gauge",
        "Revoked certificates the domain CRL lists (superseded ones included).",
        roles=("trust_center",),
        component="trust center",
    ),
    MetricSpec(
        "testbed_tc_group_key_generation",
        "gauge",
        "Generation of the domain's OSCORE group key (0 before the first member asked for it).",
        roles=("trust_center",),
        component="trust center",
        note="goes up by one each time a member is revoked (decommission, transfer)",
    ),
    MetricSpec(
        "testbed_tc_edhoc_sessions",
        "gauge",
        "EDHOC sessions held by the responder (half-done and established).",
        roles=("trust_center",),
        component="trust center",
    ),
    MetricSpec(
        "testbed_tc_handshake_gate",
        "counter",
        "EDHOC message_1 decisions of the responder's defences, before any state is kept.",
        ("outcome",),
        roles=("trust_center",),
        component="trust center",
        note="outcome: challenged (4.01 + Echo sent), echo-verified, echo-invalid, rate-limited"
        " (4.29 sent); only while a defence is on (testbed_tc_defence_enabled)",
        always=False,
    ),
    MetricSpec(
        "testbed_tc_defence_enabled",
        "gauge",
        "Trust center defences switched on (1) or off (0) by the topology.",
        ("defence",),
        roles=("trust_center",),
        component="trust center",
        note="defence: return_routability, rate_limit_per_source",
    ),
    MetricSpec(
        "testbed_tc_half_open_handshakes",
        "gauge",
        "EDHOC handshakes answered with message_2 and waiting for message_3.",
        roles=("trust_center",),
        component="trust center",
    ),
    MetricSpec(
        "testbed_tc_half_open_sources",
        "gauge",
        "Source addresses holding half-open EDHOC handshakes.",
        roles=("trust_center",),
        component="trust center",
    ),
    MetricSpec(
        "testbed_tc_half_open_max_per_source",
        "gauge",
        "The most half-open EDHOC handshakes one source address holds.",
        roles=("trust_center",),
        component="trust center",
        note="bounded by the max_pending_per_source defence",
    ),
    MetricSpec(
        "testbed_tc_half_open_evicted",
        "counter",
        "Half-open EDHOC handshakes dropped before message_3, by cause.",
        ("cause",),
        roles=("trust_center",),
        component="trust center",
        note="cause: timeout, source-share (its source was over its share), table-full (its"
        " source held the most when the table was full)",
    ),
    MetricSpec(
        "testbed_tc_refusals_unrecorded",
        "counter",
        "Refusals counted but not written as rows of their own (refusal queue full): each"
        " reason's count goes into one summary row.",
        roles=("trust_center",),
        component="trust center",
    ),
    MetricSpec(
        "testbed_tc_refusal_queue",
        "gauge",
        "Refusal rows waiting for the registry writer.",
        roles=("trust_center",),
        component="trust center",
    ),
    MetricSpec(
        "testbed_tc_bootstrap_duration_seconds",
        "histogram",
        "Server-side bootstrap duration: EDHOC message_1 (DTLS: the first ClientHello) received"
        " to enrollment response sent.",
        ("vendor", "model", "domain", "profile"),
        unit="seconds",
        roles=("trust_center",),
        component="trust center",
        buckets=DURATION_BUCKETS_TC,
    ),
    MetricSpec(
        "testbed_tc_bootstrap_bytes",
        "histogram",
        "UDP payload bytes of one bootstrap at the trust center's socket.",
        ("domain", "profile", "direction"),
        unit="bytes",
        roles=("trust_center",),
        component="trust center",
        buckets=BYTES_BUCKETS_TC,
    ),
    # -- backend hosts (testbed.node.backend.metrics) ---------------------------------------
    MetricSpec(
        "testbed_backend_reads",
        "counter",
        "Reads of thing resources by the backend, by outcome.",
        ("thing", "resource", "outcome"),
        roles=BACKEND,
        component="backend",
        note="outcome: ok, refused, error, timeout, unreachable",
    ),
    MetricSpec(
        "testbed_backend_read_latency_seconds",
        "histogram",
        "Latency of answered reads (protected request to response).",
        ("device_class",),
        unit="seconds",
        roles=BACKEND,
        component="backend",
        buckets=LATENCY_BUCKETS_BACKEND,
    ),
    MetricSpec(
        "testbed_backend_proxied_requests",
        "counter",
        "Requests the backend sent through a border router's proxy, by way and outcome.",
        ("via", "method", "outcome"),
        roles=BACKEND,
        component="backend",
        note="only with a router `proxy`; via: proxy (OSCORE end to end), proxy-dtls (DTLS hop "
        "by hop); outcome: ok, refused, error, timeout, integrity-failure",
        always=False,
    ),
    MetricSpec(
        "testbed_backend_proxied_latency_seconds",
        "histogram",
        "Latency of answered requests through a border router's proxy (request to response).",
        ("via",),
        unit="seconds",
        roles=BACKEND,
        component="backend",
        buckets=LATENCY_BUCKETS_BACKEND,
        note="only with a router `proxy`; the first hop-by-hop request includes two handshakes",
        always=False,
    ),
    MetricSpec(
        "testbed_backend_refused_responses",
        "counter",
        "Responses the backend's OSCORE contexts refused to unprotect, by reason.",
        ("reason",),
        roles=BACKEND,
        component="backend",
        note="reason: invalid (integrity check failed), replay, echo-recovery",
        always=False,
    ),
    MetricSpec(
        "testbed_backend_polls",
        "counter",
        "GET /things at the trust centers, by outcome.",
        ("domain", "outcome"),
        roles=BACKEND,
        component="backend",
    ),
    MetricSpec(
        "testbed_backend_things",
        "gauge",
        "Operational things the trust center listed at the last successful poll.",
        ("domain",),
        roles=BACKEND,
        component="backend",
    ),
    # -- vendor clouds (testbed.node.firmware.cloud) ----------------------------------------
    MetricSpec(
        "testbed_vendor_cloud_requests",
        "counter",
        "Representations the vendor cloud rendered, by kind (one per block-wise transfer).",
        ("kind",),
        roles=CLOUD,
        component="vendor cloud",
    ),
    MetricSpec(
        "testbed_vendor_cloud_releases",
        "gauge",
        "Firmware releases served.",
        roles=CLOUD,
        component="vendor cloud",
    ),
    # -- energy estimate of a thing on a radio PAN (testbed.node.energy) --------------------
    MetricSpec(
        "testbed_thing_energy_joules",
        "counter",
        "Estimated energy the thing used since its start, by component (tx, rx, listen, cpu, "
        "sleep), from its radio counters, CPU time and the topology's radio datasheet figures.",
        ("component",),
        unit="joules",
        roles=("thing",),
        component="thing",
        note="things on a medium: radio PAN with the topology's `energy` section",
        always=False,
    ),
    MetricSpec(
        "testbed_thing_energy_phase_joules",
        "gauge",
        "Estimated energy of the thing during the last run of each lifecycle phase.",
        ("phase",),
        unit="joules",
        roles=("thing",),
        component="thing",
        always=False,
    ),
    # -- attackers (testbed.node.attacker) --------------------------------------------------
    MetricSpec(
        "testbed_attack_packets",
        "counter",
        "Packets of an attack, by what became of them.",
        ("attack", "outcome"),
        roles=ATTACKER,
        component="attacker",
        note="outcome: sent (put on the wire), answered (the target replied with success), "
        "refused (the target replied with an error or a reset); attack: edhoc-flood, "
        "coap-flood, fragment-flood",
        always=False,
    ),
    MetricSpec(
        "testbed_attack_running",
        "gauge",
        "1 while the attack runs.",
        ("attack",),
        roles=ATTACKER,
        component="attacker",
        always=False,
    ),
    # -- border routers (testbed.node.roles.border_router, testbed.node.shaping) ------------
    MetricSpec(
        "testbed_border_router_served_pans",
        "gauge",
        "Number of PANs this border router serves.",
        roles=("border_router",),
        component="border router",
    ),
    MetricSpec(
        "testbed_link_packets",
        "counter",
        "Packets the IP link's shaper handled, by action (both directions; netem reports "
        "shaped and dropped only).",
        ("link", "action"),
        roles=("border_router",),
        component="border router",
        note="only on routers with shaped IP links (topology `links`)",
        always=False,
    ),
    MetricSpec(
        "testbed_link_info",
        "gauge",
        "The implementation shaping each IP link (1).",
        ("link", "implementation", "impairment"),
        roles=("border_router",),
        component="border router",
        note="only on routers with shaped IP links (topology `links`)",
        always=False,
    ),
    # -- cross-domain policy (testbed.node.firewall; topologies with `policies`) --------------
    MetricSpec(
        "testbed_policy_dropped_packets",
        "counter",
        "Forwarded packets the cross-domain policy dropped, by the rule that dropped them.",
        ("rule",),
        roles=("border_router",),
        component="border router",
        note="rule: the guards of every router, `ipv4`, `spoofed-source` (source address not "
        "routed out of its ingress interface) and `mgmt`; with a topology `policies` key also "
        "a rule's `name`, its key path (`policies[N]`) or `default-deny`",
    ),
    # -- CoAP proxy (testbed.node.proxy; border routers with `proxy`) ------------------------
    MetricSpec(
        "testbed_proxy_requests",
        "counter",
        "Requests the border router's CoAP proxy handled, by mode and outcome.",
        ("mode", "outcome"),
        roles=("border_router",),
        component="border router",
        note="only with a `proxy` key on the router; mode: end-to-end, hop-by-hop; outcome: "
        "answered, timeout, unreachable, refused (not a backend, not a PAN address, wrong scheme)",
        always=False,
    ),
    MetricSpec(
        "testbed_proxy_plaintext_bytes",
        "counter",
        "Payload bytes the proxy could read in clear (CoAP payloads not protected end to end).",
        ("mode", "direction"),
        unit="bytes",
        roles=("border_router",),
        component="border router",
        note="only with `proxy`; direction: request, response",
        always=False,
    ),
    MetricSpec(
        "testbed_proxy_opaque_bytes",
        "counter",
        "Payload bytes the proxy forwarded without being able to read them (OSCORE ciphertext).",
        ("mode", "direction"),
        unit="bytes",
        roles=("border_router",),
        component="border router",
        note="only with `proxy`; direction: request, response",
        always=False,
    ),
    MetricSpec(
        "testbed_proxy_tampered",
        "counter",
        "Messages a compromised proxy (`tamper`) altered before forwarding them.",
        ("mode", "direction"),
        roles=("border_router",),
        component="border router",
        note="only with `proxy`; direction: request, response",
        always=False,
    ),
    MetricSpec(
        "testbed_proxy_wire_bytes",
        "counter",
        "UDP payload bytes on the proxy's sockets, by leg and direction.",
        ("leg", "direction"),
        unit="bytes",
        roles=("border_router",),
        component="border router",
        note="only with `proxy`; leg: backend-coap, thing-coap (end to end), backend-coaps, "
        "thing-coaps (hop by hop, DTLS handshakes included); direction: sent, received",
        always=False,
    ),
    MetricSpec(
        "testbed_proxy_datagrams",
        "counter",
        "UDP datagrams on the proxy's sockets, by leg and direction.",
        ("leg", "direction"),
        roles=("border_router",),
        component="border router",
        note="only with `proxy`; as testbed_proxy_wire_bytes",
        always=False,
    ),
    # -- radio PANs (testbed.node.radio.metrics; PANs with medium: radio) -------------------
    MetricSpec(
        "testbed_radio_frames_sent",
        "counter",
        "802.15.4 frames put on the air.",
        RADIO_NODE,
        roles=PAN_NODES,
        component="radio",
        note="router: the medium's view of every node (MAC retries included); thing: itself",
    ),
    MetricSpec(
        "testbed_radio_frames_received",
        "counter",
        "802.15.4 data frames received.",
        RADIO_NODE,
        roles=PAN_NODES,
        component="radio",
    ),
    MetricSpec(
        "testbed_radio_frames_dropped",
        "counter",
        "Frames lost or discarded, by cause.",
        (*RADIO_NODE, "cause"),
        roles=PAN_NODES,
        component="radio",
        note="cause: channel-loss, retries-exhausted, queue-full, garbled, reassembly-timeout, ...",
    ),
    MetricSpec(
        "testbed_radio_retries",
        "counter",
        "MAC retransmissions of the node's frames.",
        RADIO_NODE,
        roles=("border_router",),
        component="radio",
    ),
    MetricSpec(
        "testbed_radio_fragments_per_packet",
        "histogram",
        "Frames per IPv6 packet sent (6LoWPAN fragments; 1 = unfragmented).",
        RADIO_NODE,
        roles=PAN_NODES,
        component="radio",
        buckets=FRAGMENT_BUCKETS,
    ),
    MetricSpec(
        "testbed_radio_airtime_seconds",
        "counter",
        "Channel time of the node's frames.",
        RADIO_NODE,
        unit="seconds",
        roles=PAN_NODES,
        component="radio",
    ),
    MetricSpec(
        "testbed_radio_queue_length",
        "gauge",
        "Frames waiting for the channel.",
        RADIO_NODE,
        roles=("border_router",),
        component="radio",
    ),
    MetricSpec(
        "testbed_radio_packets_filtered",
        "counter",
        "IPv6 packets from the TUN not sent on the PAN, by kind.",
        (*RADIO_NODE, "kind"),
        roles=PAN_NODES,
        component="radio",
    ),
    MetricSpec(
        "testbed_radio_channel_busy_seconds",
        "counter",
        "Time the PAN's channel was busy.",
        ("pan",),
        unit="seconds",
        roles=("border_router",),
        component="radio",
    ),
    MetricSpec(
        "testbed_radio_link_loss_ratio",
        "gauge",
        "Configured default frame loss per link.",
        ("pan",),
        unit="ratio",
        roles=("border_router",),
        component="radio",
    ),
    MetricSpec(
        "testbed_radio_datagrams_refused",
        "counter",
        "ZEP datagrams the PAN's medium refused, by cause (garbled-*, wrong-channel, "
        "too-many-nodes, foreign-sender, station-hijack, no-endpoint).",
        ("pan", "cause"),
        roles=("border_router",),
        component="radio",
    ),
    MetricSpec(
        "testbed_radio_nd_registrations",
        "gauge",
        "Addresses registered with the border router by 6LoWPAN-ND (RFC 6775/8505 ARO/EARO).",
        ("pan",),
        roles=("border_router",),
        component="radio",
        note="hosts that join by ND (RIOT, Contiki-NG); the plan's things keep static addresses",
    ),
    MetricSpec(
        "testbed_radio_nd_registration_requests",
        "counter",
        "Address registrations (NS with ARO/EARO) answered, by status; expired registrations.",
        ("pan", "status"),
        roles=("border_router",),
        component="radio",
        note="status: success, duplicate, neighbour-cache-full, removed (lifetime 0), expired",
    ),
    MetricSpec(
        "testbed_radio_nd_router_advertisements",
        "counter",
        "6LoWPAN-ND router advertisements sent (PIO, 6CO, ABRO), by kind.",
        ("pan", "kind"),
        roles=("border_router",),
        component="radio",
        note="kind: solicited (answering an RS), unsolicited (periodic multicast)",
    ),
    MetricSpec(
        "testbed_radio_fragmented_datagrams",
        "counter",
        "Unicast datagrams the node sent in 6LoWPAN fragments, by fate on the medium.",
        (*RADIO_NODE, "outcome"),
        roles=("border_router",),
        component="radio",
        note="outcome: delivered, lost-one-fragment, lost-several-fragments (RFC 4944 has no "
        "fragment recovery: one lost fragment loses the datagram); samples once a node has "
        "sent a fragmented datagram",
        always=False,
    ),
    MetricSpec(
        "testbed_radio_dongle_refused",
        "counter",
        "What a PAN's USB dongle (Spinel) or SLIP uplink refused, by station and cause.",
        ("pan", "radio", "cause"),
        roles=("border_router",),
        component="radio",
        note="PANs with radios: only. cause: from the line: hdlc-bad-fcs, hdlc-bad-escape, "
        "hdlc-truncated, hdlc-overlong, spinel-bad-header, spinel-bad-uint, "
        "spinel-bad-stream-length, spinel-truncated-stream, spinel-unexpected-command, "
        "spinel-unknown-property, wrong-channel, slip-bad-escape, slip-oversize, slip-not-ipv6, "
        "ipv6-bad-length, foreign-source; for the line: oversize, queue-full, line-full, "
        "no-answer, status-N (the radio's transmit status), closed; the device: line-lost "
        "(gone mid-run), open-failed (could not be opened at start)",
        always=False,
    ),
    MetricSpec(
        "testbed_radio_bootstrap_frames",
        "histogram",
        "802.15.4 frames of one bootstrap attempt, per direction (sent: put on the air).",
        ("direction",),
        roles=("thing",),
        component="radio",
        buckets=BOOTSTRAP_FRAME_BUCKETS,
    ),
)

METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}

# What prometheus_client's ProcessCollector and PlatformCollector add to every node's registry
# (testbed.node.metrics): declared for the documentation and the export check, not built here.
LIBRARY_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "process_cpu_seconds",
        "counter",
        "Total user and system CPU time spent in seconds.",
        unit="seconds",
        component="process",
    ),
    MetricSpec(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        unit="bytes",
        component="process",
    ),
    MetricSpec(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        unit="bytes",
        component="process",
    ),
    MetricSpec(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        unit="seconds",
        component="process",
    ),
    MetricSpec(
        "process_open_fds", "gauge", "Number of open file descriptors.", component="process"
    ),
    MetricSpec(
        "process_max_fds", "gauge", "Maximum number of open file descriptors.", component="process"
    ),
    MetricSpec(
        "python_info",
        "gauge",
        "Python platform information",
        ("implementation", "major", "minor", "patchlevel", "version"),
        component="process",
    ),
)


def spec(name: str) -> MetricSpec:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(
            f"metric {name!r} is not declared in testbed.contracts.metric_catalogue"
        ) from None
