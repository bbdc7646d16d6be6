"""The thing's Prometheus metrics: bootstrap cost per attempt, requests served, refusals.

Declared in testbed.contracts.metric_catalogue (names, help, labels, buckets); built from there.

    testbed_bootstrap_duration_seconds{vendor,model,domain,profile}            histogram
    testbed_bootstrap_bytes{vendor,model,domain,profile,direction}             histogram
    testbed_bootstrap_datagrams_total{vendor,model,domain,profile,direction}   counter
    testbed_bootstrap_retransmissions_total{vendor,model,domain,profile}       counter
    testbed_bootstrap_attempts_total{vendor,model,domain,profile,outcome,reason}
    testbed_thing_requests_total{resource,method,code}      requests that reached a handler
    testbed_thing_refused_total{reason}                     unprotected, replay, echo-recovery,
                                                            invalid: stopped before any handler
    testbed_thing_firmware_updates_total{outcome,reason}    outcome updated, refused, unchanged;
                                                            reason the refusal (none otherwise)
    testbed_thing_firmware_info{version}                    1 for the installed version
    testbed_thing_rekeys_total{outcome,reason}              outcome renewed, failed; reason as
                                                            for bootstrap attempts (none)
    testbed_thing_moves_total{vendor,model,domain,profile}  moves to another PAN
    testbed_thing_move_handshakes_total{vendor,model,domain,profile}
                                                            bootstrap attempts re-registering
                                                            after a move

The vendor/model/domain/profile labels repeat on every thing, so that a query across the
building compares vendors and profiles without joining testbed_node_info. Bytes are UDP
payload bytes, retransmissions included (bootstrap.accounting).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from testbed.contracts import metric_catalogue as catalogue
from testbed.node import declared_metrics as declared
from testbed.node.bootstrap.profile import BootstrapResult

IDENTITY_LABELS = catalogue.IDENTITY


class ThingMetrics:
    def __init__(self, registry: CollectorRegistry, identity: dict[str, str]) -> None:
        self.identity = {k: identity.get(k) or "" for k in IDENTITY_LABELS}
        self.duration = declared.histogram("testbed_bootstrap_duration_seconds", registry)
        self.bytes = declared.histogram("testbed_bootstrap_bytes", registry)
        self.datagrams = declared.counter("testbed_bootstrap_datagrams", registry)
        self.retransmissions = declared.counter("testbed_bootstrap_retransmissions", registry)
        self.attempts = declared.counter("testbed_bootstrap_attempts", registry)
        self.requests = declared.counter("testbed_thing_requests", registry)
        self.refused = declared.counter("testbed_thing_refused", registry)
        self.firmware_updates = declared.counter("testbed_thing_firmware_updates", registry)
        self.firmware = declared.gauge("testbed_thing_firmware_info", registry)
        self.rekeys = declared.counter("testbed_thing_rekeys", registry)
        self.moves = declared.counter("testbed_thing_moves", registry)
        self.move_handshakes = declared.counter("testbed_thing_move_handshakes", registry)

    def installed(self, version: str | None) -> None:
        self.firmware.clear()
        if version is not None:
            self.firmware.labels(version).set(1)

    def observe_attempt(self, result: BootstrapResult, reason: str) -> None:
        ident = self.identity
        self.duration.labels(**ident).observe(result.duration_s)
        for direction in ("sent", "received"):
            size, count = result.total(direction)
            self.bytes.labels(**ident, direction=direction).observe(size)
            self.datagrams.labels(**ident, direction=direction).inc(count)
        self.retransmissions.labels(**ident).inc(result.retransmissions)
        self.attempts.labels(**ident, outcome=result.outcome.value, reason=reason).inc()
