"""Placement constraints of the Swarm engine: which swarm node runs a testbed node.

The topology's ``placement`` key (label ``testbed.placement`` on the node) holds one Swarm
constraint in Swarm's own syntax (``node.labels.zone==east``, ``node.hostname!=edge-1``,
``node.role==manager``). The engine evaluates it against the swarm's nodes itself, because a
testbed node is a container the engine creates through the Docker API of the chosen swarm
node (see ``testbed.engines.swarm`` for why it is not a service). Pure functions over the
inspected node records, so they are tested without a swarm.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from testbed.errors import InputError

_CONSTRAINT = re.compile(r"^\s*(node\.[A-Za-z0-9_.-]+)\s*(==|!=)\s*(\S+)\s*$")
# Swarm node label that names the Docker API of that node for the testbed (tcp://, ssh://).
ENGINE_LABEL = "testbed.engine"


@dataclass(frozen=True)
class SwarmNode:
    """What a constraint can test of a swarm node, and how to reach its Docker API."""

    id: str
    hostname: str
    role: str  # manager | worker
    ready: bool
    labels: dict[str, str] = field(default_factory=dict)
    os: str = ""
    arch: str = ""

    @property
    def engine(self) -> str:
        """Docker API URL of this node ("" = none given: only the local node is reachable)."""
        return self.labels.get(ENGINE_LABEL, "")

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> SwarmNode:
        spec = attrs.get("Spec") or {}
        description = attrs.get("Description") or {}
        platform = description.get("Platform") or {}
        state = (attrs.get("Status") or {}).get("State", "")
        return cls(
            id=str(attrs.get("ID", "")),
            hostname=str(description.get("Hostname", "")),
            role=str(spec.get("Role", "")),
            ready=state == "ready" and spec.get("Availability", "active") == "active",
            labels=dict(spec.get("Labels") or {}),
            os=str(platform.get("OS", "")),
            arch=str(platform.get("Architecture", "")),
        )

    def attribute(self, key: str) -> str | None:
        if key.startswith("node.labels."):
            return self.labels.get(key.removeprefix("node.labels."))
        return {
            "node.id": self.id,
            "node.hostname": self.hostname,
            "node.role": self.role,
            "node.platform.os": self.os,
            "node.platform.arch": self.arch,
        }.get(key)


def matches(node: SwarmNode, constraint: str) -> bool:
    """Does ``node`` satisfy one constraint (Swarm's semantics: == needs the attribute to exist
    and be equal; != holds when it is missing or different)."""
    found = _CONSTRAINT.match(constraint)
    if found is None:
        raise InputError(
            f"placement {constraint!r} is not a Swarm constraint",
            "write it as node.labels.KEY==VALUE (or !=, node.hostname, node.role, node.id)",
        )
    key, operator, value = found.groups()
    actual = node.attribute(key)
    return actual == value if operator == "==" else actual != value


def choose(constraints: Mapping[str, str], nodes: Iterable[SwarmNode]) -> dict[str, SwarmNode]:
    """Testbed node -> swarm node for every testbed node, spreading each constraint's nodes
    round-robin over the ready swarm nodes that satisfy it (a node without a constraint: any
    ready node, the same way). InputError naming the constraint when no swarm node fits."""
    ready = sorted((n for n in nodes if n.ready), key=lambda n: (n.role != "manager", n.hostname))
    if not ready:
        raise InputError("the swarm has no ready node", "check `docker node ls`")
    chosen: dict[str, SwarmNode] = {}
    turn: dict[str, int] = {}
    for name in sorted(constraints):
        constraint = constraints[name]
        fitting = [n for n in ready if not constraint or matches(n, constraint)]
        if not fitting:
            raise InputError(
                f"no ready swarm node satisfies the placement {constraint!r} of node {name}",
                "label a swarm node to fit (`docker node update --label-add KEY=VALUE NODE`) "
                "or change the topology's placement",
            )
        index = turn.get(constraint, 0)
        chosen[name] = fitting[index % len(fitting)]
        turn[constraint] = index + 1
    return chosen
