"""The Docker networks of a run: names, kinds and subnets, one per network role (mgmt, backbone,
internet) and one per PAN (for a radio PAN, the carrier of its ZEP datagrams; the PAN's /64
itself lives on the nodes' TUNs). Resource names of every engine object of a run."""

from __future__ import annotations

import ipaddress

from testbed.plan import addressing
from testbed.plan.labels import NETWORK, RUN
from testbed.plan.model import NetworkKind, NetworkPlan
from testbed.topology.schema import Topology

RESOURCE_PREFIX = "tb"


def resource_name(run: str, name: str) -> str:
    """The engine's name of a run's container, network or volume ``name``."""
    return f"{RESOURCE_PREFIX}-{run}-{name}"


def networks(topology: Topology, run: str, prefix: ipaddress.IPv6Network) -> list[NetworkPlan]:
    specs: list[tuple[str, NetworkKind, int]] = [
        ("mgmt", "mgmt", addressing.SUBNET_IDS["mgmt"]),
        ("backbone", "backbone", addressing.SUBNET_IDS["backbone"]),
        ("internet", "internet", addressing.SUBNET_IDS["internet"]),
    ]
    specs += [
        # A radio PAN's Docker network is its ZEP carrier; the PAN /64 is on the nodes' TUNs.
        (
            f"pan-{pan.name}",
            "pan",
            (addressing.CARRIER_BASE if pan.medium == "radio" else addressing.PAN_BASE) + index,
        )
        for index, pan in enumerate(topology.pans)
    ]
    out = []
    for name, kind, subnet_id in specs:
        net = addressing.subnet(prefix, subnet_id)
        out.append(
            NetworkPlan(
                name=name,
                kind=kind,
                resource=resource_name(run, name),
                subnet6=str(net),
                gateway6=str(addressing.host(net, addressing.GATEWAY_HOST)),
                labels={RUN: run, NETWORK: name},
                internal=kind != "mgmt",
            )
        )
    return out
