"""`testbed status` asks running things what they are now: lifecycle state and owner."""

from __future__ import annotations

import dataclasses
from typing import Any

from testbed import bringup
from testbed.engines.base import NodeStatus
from testbed.node.lifecycle import LifecycleState as S
from testbed.node.thing.status import ThingStatus

BASE = NodeStatus(
    run="office",
    node="",
    role="thing",
    kind="thing",
    state="running",
    resource="",
    image="testbed/node:x",
    attributes={"domain": "hvac"},
)


class Answers:
    """What each node's GET /state answers (None: it does not answer)."""

    def __init__(self, answers: dict[str, dict[str, Any] | None]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def node_state(self, run: str, node: str) -> dict[str, Any] | None:
        self.asked.append(node)
        return self.answers.get(node)


def test_a_transferred_thing_reports_its_new_owner_and_keeps_its_label() -> None:
    nodes = [
        dataclasses.replace(BASE, node="moved"),
        dataclasses.replace(BASE, node="stayed"),
        dataclasses.replace(BASE, node="silent"),
        dataclasses.replace(BASE, node="stopped", state="exited"),
        dataclasses.replace(BASE, node="tc-hvac", role="trust_center", kind="trust_center"),
    ]
    backend = Answers(
        {
            # What a thing's GET /state carries: built by the node's own record, so that a key
            # the node renames cannot leave this test faking the old one.
            "moved": {"state": ThingStatus(S.OPERATIONAL, domain="lighting").to_dict()},
            "stayed": {"state": ThingStatus(S.FAILED, "refused", domain="hvac").to_dict()},
            "silent": None,
        }
    )
    out = {n.node: n for n in bringup.with_lifecycle(backend, nodes)}  # type: ignore[arg-type]
    assert sorted(backend.asked) == ["moved", "silent", "stayed"]  # running things only
    assert (out["moved"].domain, out["moved"].attributes["domain"]) == ("lighting", "hvac")
    assert (out["stayed"].lifecycle, out["stayed"].reason, out["stayed"].domain) == (
        "failed",
        "refused",
        "hvac",
    )
    assert (out["silent"].lifecycle, out["silent"].domain) == ("", "")
    assert (out["stopped"].domain, out["tc-hvac"].domain) == ("", "")
