"""The backend's Prometheus metrics (declared in testbed.contracts.metric_catalogue).

testbed_backend_reads_total{thing,resource,outcome}      outcome: ok, refused (4.01/4.03),
                                                         error (other codes), timeout,
                                                         unreachable
testbed_backend_read_latency_seconds{device_class}       request to response, answered reads
testbed_backend_polls_total{domain,outcome}              GET /things: ok, error
testbed_backend_things{domain}                           operational things listed
testbed_backend_refused_responses{reason}                responses our OSCORE contexts refused
testbed_backend_proxied_requests{via,method,outcome}     through a border router's proxy
testbed_backend_proxied_latency_seconds{via}             the same, answered ones
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from testbed.node import declared_metrics as declared


class BackendMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reads = declared.counter("testbed_backend_reads", registry)
        self.latency = declared.histogram("testbed_backend_read_latency_seconds", registry)
        self.polls = declared.counter("testbed_backend_polls", registry)
        self.things = declared.gauge("testbed_backend_things", registry)
        self.refused_responses = declared.counter("testbed_backend_refused_responses", registry)
        self.proxied = declared.counter("testbed_backend_proxied_requests", registry)
        self.proxied_latency = declared.histogram(
            "testbed_backend_proxied_latency_seconds", registry
        )


def outcome_of(code: str | None) -> str:
    if code is None:
        return "timeout"
    if code.startswith("2."):
        return "ok"
    if code in ("4.01", "4.03"):
        return "refused"
    return "error"
