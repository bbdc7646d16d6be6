"""What a thing reports about itself: one typed record, built in one place.

The thing's ``status`` control action, the ``state`` section of its GET /state and every
lifecycle action's answer carry these fields under these keys; the host (``testbed status``,
``testbed up``), the Ansible module and the tests read them back with :meth:`ThingStatus.parse`.

    lifecycle         a LifecycleState value
    reason            why the thing is in that state, where that matters ("revoked",
                      "firmware-update:downgrade"); None otherwise
    firmware          the firmware version installed now
    domain            the operator domain that owns the thing now (None: no owner)
    trust_center_uri  where it bootstraps (None: nowhere)
    ldevid_serial     serial number of its operational certificate (None: not enrolled)
    generation        generation of its backend OSCORE contexts (None: none granted)
    group_generation  generation of its domain's group context (None: none granted)

Standard library only: the host imports it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from testbed.node.lifecycle import LifecycleState


@dataclass(frozen=True)
class ThingStatus:
    lifecycle: LifecycleState
    reason: str | None = None
    firmware: str | None = None
    domain: str | None = None
    trust_center_uri: str | None = None
    ldevid_serial: int | None = None
    generation: int | None = None
    group_generation: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, the lifecycle as its value."""
        return {**asdict(self), "lifecycle": self.lifecycle.value}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ThingStatus | None:
        """The record in a thing's answer (its ``status`` result, or the ``state`` section of
        GET /state); None when the answer holds no known lifecycle state (no thing, no answer,
        or a node of another version)."""
        try:
            lifecycle = LifecycleState(str(data.get("lifecycle")))
        except ValueError:
            return None

        def text(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        def number(key: str) -> int | None:
            value = data.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return cls(
            lifecycle=lifecycle,
            reason=text("reason"),
            firmware=text("firmware"),
            domain=text("domain"),
            trust_center_uri=text("trust_center_uri"),
            ldevid_serial=number("ldevid_serial"),
            generation=number("generation"),
            group_generation=number("group_generation"),
        )
