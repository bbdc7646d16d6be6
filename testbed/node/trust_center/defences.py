"""The trust center's defences against handshake floods, switched by the topology.

Node attributes (the planner writes them from ``domains[].defences`` of the topology):

    defence-return-routability      true | false   CoAP Echo before any EDHOC state (default
                                                   false: RFC 9528 lets the responder choose,
                                                   RFC 9175's SHOULD covers responses over three
                                                   times the request, and message_2 is not)
    defence-rate-limit-per-source   message_1 per second per source address, or "off"
                                    (default off)
    defence-rate-limit-burst        message_1 one source may send at once (default 5)
    defence-max-pending-per-source  half-open handshakes one source may hold (default 64;
                                    always on: the fairness of the half-open table)

Exported (``DefenceCollector``, read at scrape time): testbed_tc_defence_enabled{defence},
testbed_tc_handshake_gate_total{outcome}, testbed_tc_half_open_* and the refusal writer's
testbed_tc_refusals_unrecorded_total and testbed_tc_refusal_queue.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from testbed.node import declared_metrics as declared
from testbed.node.coap.handshake_gate import GateConfig, HandshakeGate
from testbed.node.coap.sessions import SessionTable
from testbed.node.errors import ConfigError
from testbed.node.trust_center.refusal_log import RefusalLog

RETURN_ROUTABILITY = "defence-return-routability"
RATE_LIMIT = "defence-rate-limit-per-source"
RATE_BURST = "defence-rate-limit-burst"
MAX_PENDING_PER_SOURCE = "defence-max-pending-per-source"
ATTRIBUTES = (RETURN_ROUTABILITY, RATE_LIMIT, RATE_BURST, MAX_PENDING_PER_SOURCE)


@dataclass(frozen=True)
class Defences:
    return_routability: bool = False
    rate_limit_per_source: float | None = None
    rate_limit_burst: int = 5
    max_pending_per_source: int = 64

    def gate(self) -> HandshakeGate | None:
        config = GateConfig(
            return_routability=self.return_routability,
            rate_per_source=self.rate_limit_per_source,
            burst=self.rate_limit_burst,
        )
        return HandshakeGate(config) if config.active else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "return_routability": self.return_routability,
            "rate_limit_per_source": self.rate_limit_per_source,
            "rate_limit_burst": self.rate_limit_burst,
            "max_pending_per_source": self.max_pending_per_source,
        }


def parse_defences(attributes: Mapping[str, str]) -> Defences:
    """Defences from node attributes; ConfigError naming the attribute for a bad value."""
    rr = attributes.get(RETURN_ROUTABILITY, "false").strip().lower()
    if rr not in ("true", "false"):
        raise ConfigError(f"attribute {RETURN_ROUTABILITY}={rr!r}", "use true or false")
    rate_text = attributes.get(RATE_LIMIT, "off").strip().lower()
    rate = None if rate_text in ("off", "", "none") else _number(RATE_LIMIT, rate_text, float)
    burst = int(_number(RATE_BURST, attributes.get(RATE_BURST, "5"), int))
    pending = int(
        _number(MAX_PENDING_PER_SOURCE, attributes.get(MAX_PENDING_PER_SOURCE, "64"), int)
    )
    return Defences(rr == "true", rate, burst, pending)


def _number(name: str, text: str, kind: type[float] | type[int]) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"attribute {name}={text!r} is not a number", "e.g. 2 or 0.5") from None
    if value <= 0:
        raise ConfigError(f"attribute {name}={text!r} must be positive")
    return float(value)


class DefenceCollector:
    """The defences' state as metrics, read when Prometheus scrapes."""

    def __init__(
        self,
        defences: Defences,
        gate: HandshakeGate | None,
        sessions: SessionTable,
        refusals: RefusalLog | None,
    ) -> None:
        self.defences = defences
        self.gate = gate
        self.sessions = sessions
        self.refusals = refusals

    def collect(self) -> Iterator[Any]:
        enabled = declared.gauge_family("testbed_tc_defence_enabled")
        enabled.add_metric(["return_routability"], float(self.defences.return_routability))
        limited = self.defences.rate_limit_per_source is not None
        enabled.add_metric(["rate_limit_per_source"], float(limited))
        yield enabled
        if self.gate is not None:
            gate = declared.counter_family("testbed_tc_handshake_gate")
            stats = self.gate.stats
            for outcome, value in (
                ("challenged", stats.echo_challenges),
                ("echo-verified", stats.echo_verified),
                ("echo-invalid", stats.echo_invalid),
                ("rate-limited", stats.rate_limited),
            ):
                gate.add_metric([outcome], float(value))
            yield gate
        by_source = dict(self.sessions.pending_by_source)  # a copy: read from another thread
        for name, value in (
            ("testbed_tc_half_open_handshakes", self.sessions.pending),
            ("testbed_tc_half_open_sources", len(by_source)),
            ("testbed_tc_half_open_max_per_source", max(by_source.values(), default=0)),
        ):
            family = declared.gauge_family(name)
            family.add_metric([], float(value))
            yield family
        s = self.sessions.stats
        evicted = declared.counter_family("testbed_tc_half_open_evicted")
        evicted.add_metric(["timeout"], float(s.expired_pending))
        evicted.add_metric(["source-share"], float(s.evicted_own))
        table_full = s.evicted_pending - s.expired_pending - s.evicted_own
        evicted.add_metric(["table-full"], float(table_full))
        yield evicted
        if self.refusals is not None:
            unrecorded = declared.counter_family("testbed_tc_refusals_unrecorded")
            pending_counts = sum(self.refusals.unrecorded.values())
            unrecorded.add_metric([], float(self.refusals.summarised + pending_counts))
            yield unrecorded
            queue = declared.gauge_family("testbed_tc_refusal_queue")
            queue.add_metric([], float(self.refusals.queued))
            yield queue
