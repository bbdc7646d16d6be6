"""Packed things on a container engine: a thing host's container stands for each of its things.

The host side knows a thing by its node name everywhere (status, phases with ``--limit``,
``exec``, logs, metrics). A packed thing has no container of its own: its thing host's container
carries a label per packed thing (``testbed.packed.<name>``, testbed.plan.packing) with its
control and metrics ports and its role facts. This module turns such a container's status into
one status entry per thing, finds the container of a packed thing, and says which control port
to ask inside it. Engine-neutral: the Docker and Swarm engines use it alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from testbed.contracts.node_config import Attr, Role
from testbed.engines.base import NodeStatus
from testbed.plan import packing

# What a probe or a testbed.iot module inside the container reads for the port to ask
# (testbed.node.probe, module_utils/control.py).
CONTROL_PORT_ENV = "TESTBED_CONTROL_PORT"
CONTROL_PORT_ATTRIBUTE = "control-port"  # a packed thing's status attribute: where it answers
METRICS_PORT_ATTRIBUTE = "metrics-port"


def label_key(node: str) -> str:
    return packing.LABEL_PREFIX + node


def expand(host: NodeStatus, labels: Mapping[str, str]) -> list[NodeStatus]:
    """One status entry per packed thing of a thing host's container (none for other nodes)."""
    if host.role != packing.ROLE:
        return []
    out = []
    for key, value in sorted(labels.items()):
        if not key.startswith(packing.LABEL_PREFIX):
            continue
        data = packing.parse_label(value)
        attributes = {str(k): str(v) for k, v in data["attributes"].items()}
        attributes[CONTROL_PORT_ATTRIBUTE] = str(data[packing.CONTROL_PORT_KEY])
        attributes[METRICS_PORT_ATTRIBUTE] = str(data[packing.METRICS_PORT_KEY])
        # Its addresses are the host's interfaces (mgmt, the PAN's carrier, shared with its
        # packmates); its own PAN address is in its radio attribute (NodePlan.data_address).
        out.append(
            dataclasses.replace(
                host,
                node=key.removeprefix(packing.LABEL_PREFIX),
                role=Role.THING,
                kind="",
                attributes=attributes,
            )
        )
    return out


def control_port(status: NodeStatus) -> int | None:
    """The control port of a packed thing inside its host's container; None for other nodes."""
    port = status.attributes.get(CONTROL_PORT_ATTRIBUTE)
    return int(port) if port and status.attributes.get(Attr.THING_HOST) else None


def exec_environment(labels: Mapping[str, str], node: str) -> dict[str, str]:
    """The environment of a command run "in" ``node`` inside the container with ``labels``:
    a packed thing's control port when the container is its thing host's, else nothing."""
    value = labels.get(label_key(node))
    if value is None:
        return {}
    return {CONTROL_PORT_ENV: str(packing.parse_label(value)[packing.CONTROL_PORT_KEY])}


class StateSource(Protocol):
    def node_state(self, run: str, node: str) -> dict[str, Any] | None: ...


def thing_hosts(statuses: Sequence[NodeStatus]) -> dict[str, str]:
    """Packed thing -> its thing host, from status entries."""
    return {
        s.node: s.attributes[Attr.THING_HOST]
        for s in statuses
        if s.role == Role.THING and s.attributes.get(Attr.THING_HOST)
    }


def node_states(
    backend: StateSource,
    run: str,
    nodes: Sequence[str],
    packed_in: Mapping[str, str],
    workers: int = 8,
) -> dict[str, dict[str, Any] | None]:
    """GET /state of each named node, asking a thing host once for all its packed things
    (its /state carries theirs under "packed") and every other node by itself.
    ``packed_in``: packed thing -> thing host (:func:`thing_hosts`)."""
    hosts: dict[str, list[str]] = {}
    alone: list[str] = []
    for node in nodes:
        host = packed_in.get(node, "")
        if host:
            hosts.setdefault(host, []).append(node)
        else:
            alone.append(node)
    asked = [*hosts, *alone]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = dict(
            zip(asked, pool.map(lambda n: backend.node_state(run, n), asked), strict=True)
        )
    out: dict[str, dict[str, Any] | None] = {n: answers[n] for n in alone}
    for host, members in hosts.items():
        pack = (answers[host] or {}).get("packed") or {}
        for node in members:
            state = pack.get(node)
            out[node] = state if isinstance(state, dict) else None
    return out
