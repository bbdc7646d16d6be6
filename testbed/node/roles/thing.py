"""The thing: a constrained device of some vendor, owned by some operator domain.

For now it keeps its lifecycle state on its volume and reports its facts. The bootstrap profile
(testbed.node.bootstrap) will run from here to move it installed -> bootstrapping -> operational.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from testbed.node.errors import ActionError
from testbed.node.lifecycle import LifecycleState, LifecycleStore
from testbed.node.roles.base import Action, Role, RoleContext

STATE_FILE = "state.json"


class ThingRole(Role):
    name = "thing"
    # domain is not required: a manufactured or decommissioned thing has no owner.
    required_attributes = ("vendor", "model")

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        self.lifecycle = LifecycleStore(ctx.state_dir / STATE_FILE)
        self._state_gauge: Gauge | None = None
        self._transitions: Counter | None = None

    def facts(self) -> dict[str, Any]:
        return {
            "vendor": self.attribute("vendor"),
            "model": self.attribute("model"),
            "device_class": self.attribute("device-class"),  # sensor, actuator, luminaire...
            "domain": self.attribute("domain"),
            "pan": self.attribute("pan"),
            "profile": self.attribute("profile"),  # bootstrap profile, e.g. edhoc-oscore
            "firmware": self.attribute("firmware"),
        }

    def state(self) -> dict[str, Any]:
        record = self.lifecycle.record
        return {
            **self.facts(),
            "lifecycle": record.state.value,
            "lifecycle_since": record.since,
            "lifecycle_transitions": record.transitions,
        }

    def register_metrics(self, registry: CollectorRegistry) -> None:
        # One series per state, 1 for the current one (the StateSet pattern): a dashboard can
        # count things per state across the building with sum by (state).
        self._state_gauge = Gauge(
            "testbed_thing_lifecycle_state",
            "Lifecycle state of the thing (1 for the current state, 0 otherwise).",
            ["state"],
            registry=registry,
        )
        self._transitions = Counter(
            "testbed_thing_lifecycle_transitions",
            "Lifecycle transitions performed by this process.",
            ["from_state", "to_state"],
            registry=registry,
        )

    async def start(self) -> None:
        record, created = self.lifecycle.load()
        self.log.info(
            "lifecycle.created" if created else "lifecycle.loaded",
            state=record.state.value,
            path=str(self.lifecycle.path),
        )
        self._publish_state()

    def actions(self) -> Mapping[str, Action]:
        return {"transition": self._transition}

    async def _transition(self, params: dict[str, Any]) -> dict[str, Any]:
        """{"to": STATE}: move the lifecycle by hand (experiments, phases). Checked by the table."""
        if "to" not in params:
            raise ActionError("missing parameter 'to'", 'send {"to": "<lifecycle state>"}')
        try:
            target = LifecycleState(str(params["to"]))
        except ValueError:
            known = ", ".join(s.value for s in LifecycleState)
            raise ActionError(
                f"unknown lifecycle state {params['to']!r}", f"one of: {known}"
            ) from None
        before = self.lifecycle.state
        self.lifecycle.move(target)
        if self._transitions is not None:
            self._transitions.labels(before.value, target.value).inc()
        self._publish_state()
        self.log.info("lifecycle.transition", from_state=before.value, to_state=target.value)
        return {"from": before.value, "to": target.value}

    def _publish_state(self) -> None:
        if self._state_gauge is None:
            return
        for s in LifecycleState:
            self._state_gauge.labels(s.value).set(1 if s is self.lifecycle.state else 0)
