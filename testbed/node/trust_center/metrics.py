"""Prometheus metrics of the trust center role (declared in testbed.contracts.metric_catalogue).

    testbed_tc_enrollments_total{vendor,model,domain,profile,outcome,reason}
                                     answers of /est/sen and /est/sren (outcome success|refused;
                                     reason "" on success, a RefusalReason value or
                                     "unauthenticated" otherwise)
    testbed_tc_refusals_total{reason,vendor}
                                     every refusal recorded in the registry, handshakes included
    testbed_tc_certificates_issued_total
    testbed_tc_registry_things{state}        things per registry state
    testbed_tc_crl_entries                   revoked certificates (superseded included)
    testbed_tc_group_key_generation          the group key's generation (+1 per revoked member)
    testbed_tc_edhoc_sessions                EDHOC sessions the responder holds (pending + live)
    testbed_tc_defence_enabled{defence}, testbed_tc_handshake_gate_total{outcome},
    testbed_tc_half_open_*, testbed_tc_refusals_unrecorded_total, testbed_tc_refusal_queue
                                     the flood defences (trust_center.defences)
    testbed_tc_bootstrap_duration_seconds{vendor,model,domain,profile}
                                     histogram: message_1 received to enrollment response sent
    testbed_tc_bootstrap_bytes{domain,profile,direction}
                                     histogram: UDP payload bytes of one bootstrap, per direction
                                     (received | sent, as the trust center's socket saw them)

Label values come from device records and the protocol, never from what a peer sends, so an
attacker cannot blow up the number of series.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from testbed.node import declared_metrics as declared
from testbed.node.trust_center.registry import STATES

PROFILE = "edhoc-oscore"  # the EDHOC responder's; the CoAPS server labels dtls-cert / dtls-psk
UNKNOWN = "unknown"


class TrustCenterMetrics:
    def __init__(self, registry: CollectorRegistry, domain: str) -> None:
        self.domain = domain
        self._registry = registry
        self.enrollments = declared.counter("testbed_tc_enrollments", registry)
        self.refusals = declared.counter("testbed_tc_refusals", registry)
        self.certificates = declared.counter("testbed_tc_certificates_issued", registry)
        self.things = declared.gauge("testbed_tc_registry_things", registry)
        for state in STATES:
            self.things.labels(state).set(0)
        self.crl_entries = declared.gauge("testbed_tc_crl_entries", registry)
        self.group_generation = declared.gauge("testbed_tc_group_key_generation", registry)
        self.edhoc_sessions = declared.gauge("testbed_tc_edhoc_sessions", registry)
        self.duration = declared.histogram("testbed_tc_bootstrap_duration_seconds", registry)
        self.bytes = declared.histogram("testbed_tc_bootstrap_bytes", registry)

    def watch_defences(self, collector: Collector) -> None:
        """The defences' counters and the half-open table, read at scrape time."""
        self._registry.register(collector)

    def watch_sessions(self, count: Callable[[], int]) -> None:
        # Read at scrape time (from the exporter's thread): len() of the session table's dicts
        # is atomic under the GIL, and nothing has to remember to update a gauge.
        self.edhoc_sessions.set_function(lambda: float(count()))

    def enrollment(
        self, vendor: str, model: str, outcome: str, reason: str | None, profile: str = PROFILE
    ) -> None:
        self.enrollments.labels(vendor, model, self.domain, profile, outcome, reason or "").inc()

    def refusal(self, reason: str, vendor: str | None) -> None:
        self.refusals.labels(reason, vendor or UNKNOWN).inc()

    def registry_summary(
        self, state_counts: dict[str, int], crl_entries: int, group_generation: int
    ) -> None:
        for state, count in state_counts.items():
            self.things.labels(state).set(count)
        self.crl_entries.set(crl_entries)
        self.group_generation.set(group_generation)

    def bootstrap(
        self,
        vendor: str,
        model: str,
        duration_s: float,
        received: int,
        sent: int,
        profile: str = PROFILE,
    ) -> None:
        self.duration.labels(vendor, model, self.domain, profile).observe(duration_s)
        self.bytes.labels(self.domain, profile, "received").observe(received)
        self.bytes.labels(self.domain, profile, "sent").observe(sent)
