"""The per-node configuration file: written by the host planner, read by the node process.

It is plain JSON (``/etc/testbed/node.json`` inside the container, read-only) so that the node
needs nothing but the standard library to read it, and the host can import this module without
pulling node-side dependencies.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONFIG_DIR = Path("/etc/testbed")
CONFIG_FILE = CONFIG_DIR / "node.json"
STATE_DIR = Path("/var/lib/testbed")
METRICS_PORT = 9180
CONTROL_PORT = 8730


@dataclass(frozen=True)
class Interface:
    """One attachment of the node to a network of the plan."""

    network: str  # logical name: "mgmt", "backbone", "internet", "pan-<name>"
    ipv6: str  # address with prefix length, e.g. "fd12:3456:789a:1::10/64"


@dataclass(frozen=True)
class Route:
    """A static IPv6 route the node installs at start (PAN <-> backbone <-> internet)."""

    prefix: str  # "fd12:3456:789a:2::/64"
    via: str  # next hop, an address of a border router on a directly attached network


@dataclass(frozen=True)
class NodeConfig:
    run: str
    building: str
    node: str
    role: str  # thing | trust_center | border_router | internet_host
    interfaces: tuple[Interface, ...]
    routes: tuple[Route, ...] = ()
    # Role-specific facts: vendor, model, domain, pan, kind (backend/vendor-cloud/attacker), ...
    attributes: dict[str, str] = field(default_factory=dict)
    forwarding: bool = False
    # Drop the default routes Docker installs (through mgmt to the host): experiment traffic
    # must only take the plan's routes through border routers, never a shortcut via the host.
    isolate: bool = False
    metrics_port: int = METRICS_PORT
    control_port: int = CONTROL_PORT

    def address(self, network: str) -> str:
        """The node's IPv6 address (without prefix length) on a logical network."""
        for iface in self.interfaces:
            if iface.network == network:
                return iface.ipv6.split("/")[0]
        raise KeyError(f"node {self.node} has no interface on network {network!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeConfig:
        return cls(
            run=data["run"],
            building=data["building"],
            node=data["node"],
            role=data["role"],
            interfaces=tuple(Interface(**i) for i in data["interfaces"]),
            routes=tuple(Route(**r) for r in data.get("routes", ())),
            attributes=dict(data.get("attributes", {})),
            forwarding=bool(data.get("forwarding", False)),
            isolate=bool(data.get("isolate", False)),
            metrics_port=int(data.get("metrics_port", METRICS_PORT)),
            control_port=int(data.get("control_port", CONTROL_PORT)),
        )

    @classmethod
    def load(cls, path: Path = CONFIG_FILE) -> NodeConfig:
        return cls.from_dict(json.loads(path.read_text()))


class Role:
    """The roles a node can have (``NodeConfig.role``, the ``testbed.role`` label)."""

    THING = "thing"
    TRUST_CENTER = "trust_center"
    BORDER_ROUTER = "border_router"
    INTERNET_HOST = "internet_host"
    ALL = (BORDER_ROUTER, TRUST_CENTER, INTERNET_HOST, THING)  # the order `status` lists them in


class Attr:
    """Names of the role facts the planner writes (``NodeConfig.attributes``) and the node reads;
    each is also a ``testbed.<name>`` label. Plain strings: they go into JSON, YAML and labels."""

    KIND = "kind"  # internet hosts: backend, vendor-cloud, attacker
    VENDOR = "vendor"
    MODEL = "model"
    DEVICE_CLASS = "device-class"
    DOMAIN = "domain"
    PAN = "pan"  # a thing's PAN
    PANS = "pans"  # the PANs a border router serves, comma-separated
    PROFILE = "profile"
    FIRMWARE = "firmware"
    SERIAL = "serial"
    TRUST_CENTER_URI = "trust-center-uri"
    TRUST_CENTERS = "trust-centers"  # backends: domain=uri,...
    READ_INTERVAL = "read-interval"  # backends: seconds between two reads of a thing
    POLL_INTERVAL = "poll-interval"  # backends: seconds between two listings of a trust center
    TRUSTED_VENDORS = "trusted-vendors"
    AUTO_COMMISSION = "auto-commission"
    VENDOR_CLOUD_URI = "vendor-cloud-uri"
    FAULTS = "faults"
    PROFILES = "profiles"  # trust centers: the bootstrap profiles it serves, comma-separated
    POLICY_BACKENDS = "policy-backends"  # trust centers: the backends each domain may reach
    COAP_PORT = "coap-port"  # a node's CoAP server port (tests and single-host rigs)
    COAP_BIND = "coap-bind"  # the address it binds ("::" by default)
    BOOTSTRAP_TIMEOUT = "bootstrap-timeout"  # a thing's bootstrap deadline, seconds
    GROUP_RELAY = "group-relay"  # border routers: "off" turns the group command relay off
    # Attackers on a radio PAN: the medium, its PAN id and channel, the PAN prefix, the router.
    ZEP_MEDIUM = "zep-medium"
    PAN_ID = "pan-id"
    CHANNEL = "channel"
    PAN_PREFIX = "pan-prefix"
    ROUTER_SHORT = "router-short"
    THING_HOST = "thing-host"  # a packed thing: the thing host whose container runs it
