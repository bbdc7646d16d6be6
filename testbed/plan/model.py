"""Plain dataclasses of a plan. No backend handles, no topology logic: backends read these."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from testbed.contracts.node_config import NodeConfig
from testbed.contracts.radio import pan_address

NetworkKind = Literal["mgmt", "backbone", "internet", "pan"]


@dataclass(frozen=True)
class NetworkPlan:
    name: str  # logical: mgmt, backbone, internet, pan-<name>
    kind: NetworkKind
    resource: str  # the backend's name for it, e.g. tb-office-pan-floor1
    subnet6: str  # "fdxx:xxxx:xxxx:N::/64"
    gateway6: str  # the host side of the bridge: ::1 of the subnet
    labels: dict[str, str] = field(default_factory=dict)
    # The host must reach mgmt (metrics scraping); experiment networks are isolated from it.
    internal: bool = False


@dataclass(frozen=True)
class NodePlan:
    name: str
    role: str  # thing | trust_center | border_router | internet_host
    resource: str  # container name
    hostname: str
    volume: str  # persistent state volume name
    labels: dict[str, str]
    config: NodeConfig
    # Start order: nodes of a lower tier start (and become ready) before higher tiers.
    tier: int
    net_admin: bool = False
    tun: bool = False
    sysctls: dict[str, str] = field(default_factory=dict)
    devices: tuple[str, ...] = ()  # host devices passed in (radio dongles' serial lines)
    # A packed thing: the thing host (a node of the plan) whose container runs it; "" for a
    # node with a container of its own.
    packed_in: str = ""

    @property
    def networks(self) -> list[str]:
        return [iface.network for iface in self.config.interfaces]

    def data_address(self, network: str) -> str:
        """Where experiment traffic reaches this node on a network.

        On a radio PAN that is the address on the node's TUN (the Docker network only carries
        the medium's ZEP frames); elsewhere the address of the node's interface.
        """
        return pan_address(self.config.attributes, network) or self.config.address(network)


@dataclass(frozen=True)
class Plan:
    run: str
    building: str
    topology_path: str
    ula_prefix: str  # the /48 of this run
    networks: tuple[NetworkPlan, ...]
    nodes: tuple[NodePlan, ...]
    # How often the run's Prometheus scrapes every node (topology `observe: scrape_interval`).
    scrape_interval_s: int = 5

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def containers(self) -> list[NodePlan]:
        """The nodes that get a container of their own (packed things run in their thing
        host's: docs/packed-things.md)."""
        return [n for n in self.nodes if not n.packed_in]

    def members(self, host: NodePlan) -> list[NodePlan]:
        """The packed things a thing host runs ([] for any other node)."""
        return [n for n in self.nodes if n.packed_in == host.name]

    def network(self, name: str) -> NetworkPlan:
        for network in self.networks:
            if network.name == name:
                return network
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        """Content hash of the plan (without the topology path, which is not content)."""
        data = self.to_dict()
        data.pop("topology_path")
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
