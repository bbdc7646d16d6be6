"""The backend's Prometheus metrics.

testbed_backend_reads_total{thing,resource,outcome}      outcome: ok, refused (4.01/4.03),
                                                         error (other codes), timeout,
                                                         unreachable
testbed_backend_read_latency_seconds{device_class}       request to response, answered reads
testbed_backend_polls_total{domain,outcome}              GET /things: ok, error
testbed_backend_things{domain}                           operational things listed
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class BackendMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reads = Counter(
            "testbed_backend_reads",
            "Reads of thing resources by the backend, by outcome.",
            ["thing", "resource", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "testbed_backend_read_latency_seconds",
            "Latency of answered reads (protected request to response).",
            ["device_class"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.polls = Counter(
            "testbed_backend_polls",
            "GET /things at the trust centers, by outcome.",
            ["domain", "outcome"],
            registry=registry,
        )
        self.things = Gauge(
            "testbed_backend_things",
            "Operational things the trust center listed at the last successful poll.",
            ["domain"],
            registry=registry,
        )


def outcome_of(code: str | None) -> str:
    if code is None:
        return "timeout"
    if code.startswith("2."):
        return "ok"
    if code in ("4.01", "4.03"):
        return "refused"
    return "error"
