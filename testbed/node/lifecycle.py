"""The lifecycle of a thing (RFC 8576 Fig. 1; Heer et al. 2011 Fig. 1) and where it is kept.

    manufactured -> installed -> bootstrapping -> operational <-> maintenance
         ^            ^    |        |     ^          |    |            |
         |            |    |        v     +----------+----+------------+  (re-bootstrapping)
         |            |    |      failed ---> bootstrapping (retry)
         |            |    v
         +------ decommissioned <---- (installed, bootstrapping, operational, maintenance,
                      |                failed)
                      +--> installed: re-ownership, the thing now points at a new owner's
                           trust center (control action ``transfer``)

The table is the single authority on which moves are legal; everything that changes a thing's
state (bootstrap profiles, control actions, the phases) goes through :meth:`LifecycleStore.move`,
which checks it and persists the result before anyone can observe the new state.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from testbed.node.errors import LifecycleError, StateError
from testbed.node.statefile import read_json, write_json_atomic


class LifecycleState(StrEnum):
    MANUFACTURED = "manufactured"
    INSTALLED = "installed"
    BOOTSTRAPPING = "bootstrapping"
    OPERATIONAL = "operational"
    MAINTENANCE = "maintenance"
    DECOMMISSIONED = "decommissioned"
    FAILED = "failed"


S = LifecycleState

TRANSITIONS: Mapping[LifecycleState, frozenset[LifecycleState]] = {
    S.MANUFACTURED: frozenset({S.INSTALLED}),
    # An installed thing can be removed before it was ever commissioned.
    S.INSTALLED: frozenset({S.BOOTSTRAPPING, S.DECOMMISSIONED}),
    # Decommissioning a thing mid-bootstrap abandons the run (the operator gave up on it).
    S.BOOTSTRAPPING: frozenset({S.OPERATIONAL, S.FAILED, S.DECOMMISSIONED}),
    # Re-bootstrapping (new keys, new trust center) starts again from bootstrapping.
    S.OPERATIONAL: frozenset({S.MAINTENANCE, S.BOOTSTRAPPING, S.DECOMMISSIONED, S.FAILED}),
    S.MAINTENANCE: frozenset({S.OPERATIONAL, S.BOOTSTRAPPING, S.DECOMMISSIONED, S.FAILED}),
    # Re-ownership: operational keys are wiped, the factory identity is kept, so the thing is
    # as good as new for its next owner: back to the vendor (manufactured), or transferred in
    # place to the next owner's trust center (installed, awaiting commissioning).
    S.DECOMMISSIONED: frozenset({S.MANUFACTURED, S.INSTALLED}),
    # From failed: retry, give up (back to installed, awaiting an operator), or remove.
    S.FAILED: frozenset({S.BOOTSTRAPPING, S.INSTALLED, S.DECOMMISSIONED}),
}

INITIAL = S.INSTALLED  # things are placed in the building already installed

# Where each lifecycle operation may start. The thing's control actions enforce them
# (testbed.node.thing.actions); the Ansible module (testbed.iot.thing) predicts refusals in
# check mode from the same sets.
COMMISSIONABLE = frozenset({S.INSTALLED, S.BOOTSTRAPPING, S.FAILED})
REBOOTSTRAPPABLE = frozenset({S.OPERATIONAL, S.FAILED})
MAINTAINABLE = frozenset({S.OPERATIONAL})  # firmware update, key renewal
TRANSFERABLE = frozenset({S.DECOMMISSIONED})  # to the next owner
# A bootstrap run may start (bootstrapping: resume after a crash; operational, maintenance:
# a re-bootstrap).
BOOTSTRAPPABLE = frozenset({S.INSTALLED, S.BOOTSTRAPPING, S.FAILED, S.OPERATIONAL, S.MAINTENANCE})
# Where a commissioning ends: `testbed up` waits for one of these.
SETTLED = frozenset({S.OPERATIONAL, S.FAILED})


def check_transition(current: LifecycleState, target: LifecycleState) -> None:
    """Raise LifecycleError unless the table allows current -> target."""
    allowed = TRANSITIONS[current]
    if target not in allowed:
        options = ", ".join(sorted(s.value for s in allowed)) or "none"
        raise LifecycleError(
            f"illegal lifecycle transition {current.value} -> {target.value}",
            f"from {current.value} the thing can go to: {options}",
        )


@dataclass(frozen=True)
class LifecycleRecord:
    state: LifecycleState
    since: float  # wall clock (epoch seconds) of the last change
    transitions: int  # changes since the record was created
    # Why the thing is in this state, where that matters (e.g. failed: "revoked"); None else.
    reason: str | None = None


class LifecycleStore:
    """The thing's lifecycle state in ``state.json`` on the state volume."""

    SCHEMA = 1

    def __init__(self, path: Path) -> None:
        self.path = path
        self._record: LifecycleRecord | None = None

    @property
    def record(self) -> LifecycleRecord:
        if self._record is None:
            raise RuntimeError("LifecycleStore.load() has not been called")
        return self._record

    @property
    def state(self) -> LifecycleState:
        return self.record.state

    def load(self, initial: LifecycleState = INITIAL) -> tuple[LifecycleRecord, bool]:
        """Read the persisted record, creating it in ``initial`` on first start.

        Returns the record and whether it was created now.
        """
        data = read_json(self.path)
        if data is None:
            self._save(LifecycleRecord(initial, time.time(), 0))
            return self.record, True
        try:
            record = LifecycleRecord(
                state=LifecycleState(data["lifecycle"]),
                since=float(data["since"]),
                transitions=int(data["transitions"]),
                reason=None if data.get("reason") is None else str(data["reason"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise StateError(
                f"{self.path} does not hold a valid lifecycle record: {exc!r}",
                "inspect it; delete it only if resetting this thing to 'installed' is intended",
            ) from exc
        self._record = record
        return record, False

    def move(self, target: LifecycleState, reason: str | None = None) -> LifecycleRecord:
        """Check and persist a transition; the old record stays if anything fails.

        ``reason`` is kept with the new state (and dropped by the next move without one).
        """
        current = self.record
        check_transition(current.state, target)
        self._save(LifecycleRecord(target, time.time(), current.transitions + 1, reason))
        return self.record

    def _save(self, record: LifecycleRecord) -> None:
        write_json_atomic(
            self.path,
            {
                "schema": self.SCHEMA,
                "lifecycle": record.state.value,
                "since": record.since,
                "transitions": record.transitions,
                # Optional and additive: files without it read back as reason None.
                **({} if record.reason is None else {"reason": record.reason}),
            },
        )
        self._record = record
