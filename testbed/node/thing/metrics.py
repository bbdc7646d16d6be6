"""The thing's Prometheus metrics: bootstrap cost per attempt, requests served, refusals.

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

The vendor/model/domain/profile labels repeat on every thing, so that a query across the
building compares vendors and profiles without joining testbed_node_info. Bytes are UDP
payload bytes, retransmissions included (bootstrap.accounting).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from testbed.node.bootstrap.profile import BootstrapResult

IDENTITY_LABELS = ("vendor", "model", "domain", "profile")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BYTES_BUCKETS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536)


class ThingMetrics:
    def __init__(self, registry: CollectorRegistry, identity: dict[str, str]) -> None:
        self.identity = {k: identity.get(k) or "" for k in IDENTITY_LABELS}
        labels = list(IDENTITY_LABELS)
        self.duration = Histogram(
            "testbed_bootstrap_duration_seconds",
            "Duration of one bootstrap attempt, success or failure.",
            labels,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.bytes = Histogram(
            "testbed_bootstrap_bytes",
            "UDP payload bytes of one bootstrap attempt, per direction.",
            [*labels, "direction"],
            buckets=BYTES_BUCKETS,
            registry=registry,
        )
        self.datagrams = Counter(
            "testbed_bootstrap_datagrams",
            "UDP datagrams of bootstrap attempts, retransmissions included.",
            [*labels, "direction"],
            registry=registry,
        )
        self.retransmissions = Counter(
            "testbed_bootstrap_retransmissions",
            "Datagrams of bootstrap attempts that repeated an earlier one.",
            labels,
            registry=registry,
        )
        self.attempts = Counter(
            "testbed_bootstrap_attempts",
            "Bootstrap attempts by outcome and failure reason (none on success).",
            [*labels, "outcome", "reason"],
            registry=registry,
        )
        self.requests = Counter(
            "testbed_thing_requests",
            "Requests that reached a resource handler, by response code.",
            ["resource", "method", "code"],
            registry=registry,
        )
        self.refused = Counter(
            "testbed_thing_refused",
            "Requests refused before any handler ran, by reason.",
            ["reason"],
            registry=registry,
        )

        self.firmware_updates = Counter(
            "testbed_thing_firmware_updates",
            "Firmware update requests by outcome and refusal reason (none unless refused).",
            ["outcome", "reason"],
            registry=registry,
        )
        self.firmware = Gauge(
            "testbed_thing_firmware_info",
            "The installed firmware version (1 for it, no other series).",
            ["version"],
            registry=registry,
        )
        self.rekeys = Counter(
            "testbed_thing_rekeys",
            "Key rotations (LDevID renewal and new contexts) by outcome and failure reason.",
            ["outcome", "reason"],
            registry=registry,
        )

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
