"""Packed things in the plan: which thing host runs which things, and what each thing gets there.

A group of things with ``pack: K`` (topology) is planned as its things, as ever (each with its
own node.json, credentials, serial, PAN address and short address), plus one thing host node
per K of them (``testbed.node.packing``), which is the only container. Each packed thing's
interfaces are its host's (mgmt and the PAN's carrier network), and it gets its own ports
there: control ``CONTROL_PORT + 1 + i``, metrics ``METRICS_PORT + 1 + i`` and ZEP
``ZEP_PORT + 1 + i`` for the i-th thing of its pack. The border router's medium binds each
packed station to exactly that endpoint ("[carrier]:port" in its ``carriers``).

The thing host's container carries one label per packed thing (``testbed.packed.<name>``: its
ports and role facts as JSON), so the host side finds and reaches every thing of a running run
from labels alone, as it does for a thing with a container of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from ipaddress import IPv6Address
from typing import Any

from testbed.contracts.node_config import CONTROL_PORT, METRICS_PORT, Attr
from testbed.contracts.packing import ROLE, THINGS_ATTRIBUTE
from testbed.contracts.radio import ZEP_PORT
from testbed.plan.labels import PREFIX
from testbed.plan.model import NodePlan
from testbed.topology.schema import Topology

__all__ = ["LABEL_PREFIX", "ROLE", "THINGS_ATTRIBUTE", "Packing", "member_labels", "parse_label"]

LABEL_PREFIX = PREFIX + "packed."
CONTROL_PORT_KEY = "control_port"
METRICS_PORT_KEY = "metrics_port"


class Packing:
    """Who is packed where in one topology, and the per-thing ports that follow."""

    def __init__(self, topology: Topology) -> None:
        self.hosts: dict[str, str] = {}  # thing host -> its PAN
        self.host_of: dict[str, str] = {}  # packed thing -> its thing host
        self.index: dict[str, int] = {}  # packed thing -> its place in the pack
        for thing in topology.things:
            for host, names in thing.packs():
                self.hosts[host] = thing.pan
                for i, name in enumerate(names):
                    self.host_of[name] = host
                    self.index[name] = i

    def ports(self, node: str) -> dict[str, int]:
        """NodeConfig's control and metrics ports of a packed thing ({} for other nodes)."""
        if node not in self.index:
            return {}
        i = self.index[node]
        return {CONTROL_PORT_KEY: CONTROL_PORT + 1 + i, METRICS_PORT_KEY: METRICS_PORT + 1 + i}

    def zep_port(self, node: str) -> int:
        """The UDP port a packed thing's radio sends from (0: the PAN's ZEP port)."""
        return ZEP_PORT + 1 + self.index[node] if node in self.index else 0

    def carrier(self, node: str, address: str) -> str:
        """The hub's ``carriers`` entry of a station at ``address`` on the carrier network."""
        return f"[{address}]:{self.zep_port(node)}" if node in self.index else address

    def thing_attributes(
        self, node: str, radio_address: Mapping[tuple[str, str], IPv6Address]
    ) -> dict[str, str]:
        """A packed thing serves CoAP on its own PAN address (its packmates hold others)."""
        if node not in self.host_of:
            return {}
        pan_address = next(a for (n, _), a in radio_address.items() if n == node)
        return {"coap-bind": str(pan_address), Attr.THING_HOST: self.host_of[node]}


def member_labels(members: Iterable[NodePlan]) -> dict[str, str]:
    """The thing host's labels that describe its things (``testbed.packed.<name>``)."""
    return {
        LABEL_PREFIX + m.name: json.dumps(
            {
                CONTROL_PORT_KEY: m.config.control_port,
                METRICS_PORT_KEY: m.config.metrics_port,
                "attributes": m.config.attributes,
            },
            separators=(",", ":"),
            sort_keys=True,
        )
        for m in members
    }


def parse_label(value: str) -> dict[str, Any]:
    """A ``testbed.packed.<name>`` label back as {control_port, metrics_port, attributes}."""
    data: dict[str, Any] = json.loads(value)
    return data
