"""Topology + run name -> Plan. Pure and deterministic: the same inputs give the same plan.

Who is where:
- mgmt: every node (metrics, control); never carries experiment traffic.
- backbone: border routers and trust centers.
- internet: border routers and Internet hosts.
- pan-<name>: the things of that PAN and the border router that serves it.
Border routers forward between PANs, backbone and internet; every other node gets static routes
through the router that owns the destination, so experiment traffic crosses a router as in a
real building.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re

from testbed.contracts import energy
from testbed.contracts.node_config import Attr, Interface, NodeConfig, Role, Route
from testbed.contracts.radio import RadioPanConfig
from testbed.errors import PlanError
from testbed.plan import addressing, cross_domain, packing, proxies
from testbed.plan import node_attributes as node_attrs
from testbed.plan import sysctls as kernel
from testbed.plan.labels import PLACEMENT, NodeLabels
from testbed.plan.model import NetworkPlan, NodePlan, Plan
from testbed.plan.networks import networks as _networks
from testbed.plan.networks import resource_name
from testbed.topology.fields import NAME_RE
from testbed.topology.schema import (
    BorderRouter,
    Domain,
    Host,
    Thing,
    Topology,
    TrustCenterDefences,
)

TIER_INFRA = 0
TIER_THINGS = 1
COAP_PORT = 5683  # testbed.node.material.COAP_PORT


def serial_number(building: str, vendor: str, thing: str) -> str:
    """The factory serial of a thing: stable for a building, unique per thing."""
    digest = hashlib.sha256(f"{building}/{thing}".encode()).hexdigest()[:10].upper()
    return f"{vendor.upper()}-{digest}"


def check_run_name(run: str) -> None:
    if not re.match(NAME_RE, run):
        raise PlanError(
            f"run name {run!r} is not valid: use lower case letters, digits and '-', "
            "starting with a letter, at most 30 characters",
            "pick another --run NAME",
        )


def make_plan(topology: Topology, run: str, topology_path: str = "", run_dir: str = "") -> Plan:
    check_run_name(run)
    prefix = addressing.ula_prefix(topology.building, run)
    networks = _networks(topology, run, prefix)
    builder = _Builder(topology, run, prefix, networks, topology_path, run_dir)
    # Addresses were handed out in a fixed order (routers, trust centers, hosts, things); nodes
    # are planned in the same order, one role after the other.
    for router in topology.border_routers:
        builder.border_router(router)
    for domain in topology.domains:
        builder.trust_center(domain)
    for host in topology.hosts:
        builder.internet_host(host)
    for thing in topology.things:
        builder.things(thing)
    return Plan(
        run=run,
        building=topology.building,
        topology_path=topology_path,
        ula_prefix=str(prefix),
        networks=tuple(networks),
        nodes=tuple(builder.nodes),
        scrape_interval_s=int(topology.observe.scrape_interval),
    )


class _Builder:
    """The addresses, routes and attributes every role's nodes are planned from, and one method
    per role that adds its nodes."""

    def __init__(
        self,
        topology: Topology,
        run: str,
        prefix: ipaddress.IPv6Network,
        networks: list[NetworkPlan],
        topology_path: str,
        run_dir: str,
    ) -> None:
        self.topology = topology
        self.run = run
        self.topology_path = topology_path
        self.run_dir = run_dir
        self.nets = {n.name: n for n in networks}
        self.numbers = addressing.HostNumbers()
        self.router_of_pan = {pan: r.name for r in topology.border_routers for pan in r.pans}
        self.first_router = topology.border_routers[0].name
        self.nodes: list[NodePlan] = []

        # Addresses are handed out in a fixed order: routers, trust centers, hosts, things.
        addr = self._address
        self.interfaces: dict[str, list[Interface]] = {}
        for router in topology.border_routers:
            names = ["mgmt", "backbone", "internet", *(f"pan-{p}" for p in router.pans)]
            self.interfaces[router.name] = [Interface(n, addr(n)) for n in names]
        for domain in topology.domains:
            self.interfaces[domain.trust_center_name] = [
                Interface(n, addr(n)) for n in ("mgmt", "backbone")
            ]
        for host in topology.hosts:
            # An attacker may sit on the backbone or on a PAN's carrier network (a guest station
            # of the radio medium: no radio attributes, it speaks ZEP itself).
            where = f"pan-{host.pan}" if host.placement == "pan" else host.placement
            self.interfaces[host.name] = [Interface(n, addr(n)) for n in ("mgmt", where)]
        for thing in topology.things:
            for name in thing.names():
                self.interfaces[name] = [
                    Interface(n, addr(n)) for n in ("mgmt", f"pan-{thing.pan}")
                ]
        # Thing hosts (packed things) after every thing, so that packing changes no address.
        self.packing = packing.Packing(topology)
        for thing_host, pan in self.packing.hosts.items():
            self.interfaces[thing_host] = [Interface(n, addr(n)) for n in ("mgmt", f"pan-{pan}")]

        # -- radio PANs: the node's PAN address is on its TUN, its interface on the carrier ---
        self.radio = {f"pan-{p.name}": p for p in topology.pans if p.medium == "radio"}
        guests = {h.name for h in topology.hosts if h.placement == "pan"}  # not planned stations
        self.pan_prefix = {
            f"pan-{p.name}": addressing.subnet(prefix, addressing.PAN_BASE + i)
            for i, p in enumerate(topology.pans)
        }
        self.radio_address = {
            (node, iface.network): addressing.radio_host(
                self.pan_prefix[iface.network], addressing.host_number(iface.ipv6)
            )
            for node, ifaces in self.interfaces.items()
            for iface in ifaces
            if iface.network in self.radio
            and node not in guests
            and node not in self.packing.hosts  # not a station: its things are
        }
        # A packed thing is reached at its host's mgmt and carrier addresses (its own ports
        # there); its PAN address, from the number it was given above, stays its own.
        for name, thing_host in self.packing.host_of.items():
            self.interfaces[name] = list(self.interfaces[thing_host])
        self.pan_routes = [
            (f"pan-{pan.name}", self.router_of_pan[pan.name]) for pan in topology.pans
        ]
        # SLIP uplinks (real border router boards): a routed /64 each, reached through the
        # router of their PAN like a PAN of it (testbed.node.radio.slipuplink).
        slips = [
            (p.name, r.station) for p in topology.pans for r in p.radios if r.protocol == "slip"
        ]
        self.slip_prefix = {
            station: addressing.subnet(prefix, addressing.SLIP_BASE + i)
            for i, (_, station) in enumerate(slips)
        }
        for pan_name, station in slips:
            self.pan_prefix[f"slip-{station}"] = self.slip_prefix[station]
            self.pan_routes.append((f"slip-{station}", self.router_of_pan[pan_name]))

        # -- cross-domain rules (testbed.plan.cross_domain): enforced by the routers, scoped lists
        self.rules = cross_domain.resolve(topology)
        data_network = {n: n_ifaces[-1].network for n, n_ifaces in self.interfaces.items()}
        self.policy_forward = (
            {
                cross_domain.FORWARD_ATTRIBUTE: cross_domain.forward_attribute(
                    self.rules,
                    lambda n: (
                        str(self.slip_prefix[n])
                        if n in self.slip_prefix
                        else self.address_of(n, data_network[n])
                    ),
                )
            }
            if self.rules
            else {}
        )
        # CoAP proxies of the border routers (testbed.plan.proxies); nothing without `proxy` keys.
        self.proxy_attributes = proxies.node_attributes(
            topology,
            self.address_of,
            lambda n: str(self.pan_prefix[n]) if n in self.radio else self.nets[n].subnet6,
        )
        self.backend_scope = cross_domain.backends_attribute(
            topology, self.rules, lambda v, n: serial_number(topology.building, v, n)
        )
        # Things fetch firmware from the building's first vendor cloud (internet side).
        clouds = [h.name for h in topology.hosts if h.role == "vendor-cloud"]
        self.cloud_uri = (
            f"coap://[{self.address_of(clouds[0], 'internet')}]:{COAP_PORT}" if clouds else None
        )

    # -- addresses and routes ------------------------------------------------------------------

    def _address(self, network: str) -> str:
        net = ipaddress.IPv6Network(self.nets[network].subnet6)
        return f"{addressing.host(net, self.numbers.take(network))}/64"

    def radio_attributes(self, node: str, pans: list[str], hub: bool) -> dict[str, str]:
        out = {}
        for network in (f"pan-{p}" for p in pans if f"pan-{p}" in self.radio):
            pan, router = self.radio[network], self.router_of_pan[network.removeprefix("pan-")]
            address = self.radio_address[node, network]
            names = {  # short address (hex) -> node, for the medium's metrics and link settings
                f"{addressing.host_number(str(a)) & 0xFFFF:04x}": n
                for (n, net), a in self.radio_address.items()
                if net == network
            }
            config = RadioPanConfig(
                local_port=self.packing.zep_port(node),
                pan=pan.name,
                address=f"{address}/64",
                short=addressing.host_number(str(address)) & 0xFFFF,
                medium=self.carrier_of(router, network),
                router="" if hub else str(self.radio_address[router, network]),
                channel=pan.channel,
                pan_id=pan.pan_id,
                reassembly_timeout=pan.reassembly_timeout,
                reassembly_policy=pan.reassembly.policy,
                reassembly_buffer=pan.reassembly.buffer_bytes,
                reassembly_per_sender=pan.reassembly.per_sender_bytes,
            )
            if hub:
                config = node_attrs.with_channel_model(config, pan, names)
                config = dataclasses.replace(
                    config,
                    radios=[
                        {**r, "prefix": str(self.slip_prefix[r["station"]])}
                        if r["protocol"] == "slip"
                        else r
                        for r in config.radios
                    ],
                )
                config = dataclasses.replace(
                    config,
                    carriers={
                        n: self.packing.carrier(n, self.carrier_of(n, network))
                        for n in names.values()
                        if n != node
                    },
                )
            out[config.key] = config.to_attribute()
        return out

    def carrier_of(self, node: str, network: str) -> str:
        return next(i.ipv6.split("/")[0] for i in self.interfaces[node] if i.network == network)

    def address_of(self, node: str, network: str) -> str:
        if (node, network) in self.radio_address:
            return str(self.radio_address[node, network])
        for iface in self.interfaces[node]:
            if iface.network == network:
                return iface.ipv6.split("/")[0]
        raise PlanError(f"node {node} is not on {network}")  # the schema makes this unreachable

    def routes_via(self, network: str, destinations: list[tuple[str, str]]) -> tuple[Route, ...]:
        return tuple(
            Route(
                prefix=str(self.pan_prefix[dest])
                if dest in self.radio or dest.startswith("slip-")
                else self.nets[dest].subnet6,
                via=self.address_of(router, network),
            )
            for dest, router in destinations
        )

    def trust_center_uri(self, domain_name: str) -> str:
        domain = next(d for d in self.topology.domains if d.name == domain_name)
        return f"coap://[{self.address_of(domain.trust_center_name, 'backbone')}]:{COAP_PORT}"

    # -- one method per role -------------------------------------------------------------------

    def border_router(self, router: BorderRouter) -> None:
        foreign = [(p, r) for p, r in self.pan_routes if r != router.name]
        self.add(
            router.name,
            Role.BORDER_ROUTER,
            TIER_INFRA,
            {
                Attr.PANS: ",".join(router.pans),
                **self.radio_attributes(router.name, router.pans, True),
                **node_attrs.link_attributes(self.topology),
                **self.policy_forward,
            },
            self.routes_via("backbone", foreign),
            forwarding=True,
            tun=True,
            devices=tuple(
                r.device for p in self.topology.pans if p.name in router.pans for r in p.radios
            ),
            placement=router.placement_constraint,
        )

    def trust_center(self, domain: Domain) -> None:
        trusted = domain.trusted_vendors or [v.name for v in self.topology.vendors]
        scope = self.backend_scope
        self.add(
            domain.trust_center_name,
            Role.TRUST_CENTER,
            TIER_INFRA,
            {
                Attr.DOMAIN: domain.name,
                Attr.TRUSTED_VENDORS: ",".join(trusted),
                **node_attrs.defence_attributes(
                    domain.defences or TrustCenterDefences.model_validate({})
                ),
                **({cross_domain.BACKENDS_ATTRIBUTE: scope} if scope else {}),
            },
            self.routes_via("backbone", [*self.pan_routes, ("internet", self.first_router)]),
            placement=domain.placement_constraint,
        )

    def internet_host(self, host: Host) -> None:
        host_attributes = {}
        # The schema allows these on a backend only.
        if host.read_interval is not None:
            host_attributes[Attr.READ_INTERVAL] = f"{host.read_interval:g}"
        if host.poll_interval is not None:
            host_attributes[Attr.POLL_INTERVAL] = f"{host.poll_interval:g}"
        if host.role == "backend":
            # A backend works for every operator domain of the building whose trust center the
            # cross-domain policy lets it reach (polling one it may not reach only times out).
            host_attributes[Attr.TRUST_CENTERS] = ",".join(
                f"{d.name}={self.trust_center_uri(d.name)}"
                for d in self.topology.domains
                if cross_domain.allowed(self.rules, host.name, d.trust_center_name, COAP_PORT)
            )
        host_routes: tuple[Route, ...]
        if host.placement == "pan" and host.pan is not None:
            pan_model = next(p for p in self.topology.pans if p.name == host.pan)
            network = f"pan-{host.pan}"
            serving = self.router_of_pan[host.pan]
            host_attributes.update(
                {
                    "placement": "pan",
                    Attr.PAN: host.pan,
                    Attr.ZEP_MEDIUM: self.carrier_of(serving, network),
                    Attr.PAN_ID: str(pan_model.pan_id),
                    Attr.CHANNEL: str(pan_model.channel),
                    Attr.ROUTER_SHORT: f"{self.router_short(serving, network):04x}",
                    Attr.PAN_PREFIX: str(self.pan_prefix[network]),
                }
            )
            host_routes = ()
        elif host.placement == "backbone":
            host_attributes["placement"] = "backbone"
            host_routes = self.routes_via(
                "backbone", [*self.pan_routes, ("internet", self.first_router)]
            )
        else:
            host_routes = self.routes_via(
                "internet", [*self.pan_routes, ("backbone", self.first_router)]
            )
        self.add(
            host.name,
            Role.INTERNET_HOST,
            TIER_INFRA,
            host_attributes,
            host_routes,
            kind=host.role,
            placement=host.placement_constraint,
        )

    def router_short(self, router: str, network: str) -> int:
        return addressing.host_number(str(self.radio_address[router, network])) & 0xFFFF

    def things(self, thing: Thing) -> None:
        topology = self.topology
        model = topology.model(thing.vendor, thing.model)
        pan_router = self.router_of_pan[thing.pan]
        attributes = {
            Attr.VENDOR: thing.vendor,
            Attr.MODEL: thing.model,
            Attr.DEVICE_CLASS: thing.role or model.role,
            Attr.DOMAIN: thing.domain,
            Attr.PAN: thing.pan,
            Attr.PROFILE: thing.profile or model.profile,
            Attr.FIRMWARE: model.firmware,
            Attr.TRUST_CENTER_URI: self.trust_center_uri(thing.domain),
            # With phases, the commission playbook starts the bootstrap, not the thing itself.
            Attr.AUTO_COMMISSION: "true" if topology.commissioning == "auto" else "false",
        }
        if self.cloud_uri:
            attributes[Attr.VENDOR_CLOUD_URI] = self.cloud_uri
        if thing.faults:
            attributes[Attr.FAULTS] = ",".join(thing.faults)
        if topology.energy is not None and f"pan-{thing.pan}" in self.radio:
            attributes[energy.ATTRIBUTE] = node_attrs.energy_model(topology.energy).to_attribute()
        others = [(n, pan_router) for n in ("backbone", "internet")]
        # Other PANs are reached through the own router, which forwards over the backbone.
        others += [(p, pan_router) for p, _ in self.pan_routes if p != f"pan-{thing.pan}"]
        routes = self.routes_via(f"pan-{thing.pan}", others)
        for name in thing.names():
            self.add(
                name,
                Role.THING,
                TIER_THINGS,
                {
                    **attributes,
                    Attr.SERIAL: serial_number(topology.building, thing.vendor, name),
                    **self.radio_attributes(name, [thing.pan], False),
                    **self.packing.thing_attributes(name, self.radio_address),
                },
                routes,
                tun=True,
                placement=thing.placement_constraint,
            )
        for host, names in thing.packs():
            packed = set(names)
            members = [n for n in self.nodes if n.name in packed]
            self.add(
                host,
                packing.ROLE,
                TIER_THINGS,
                {Attr.PAN: thing.pan, packing.THINGS_ATTRIBUTE: ",".join(names)},
                routes,
                tun=True,
                placement=thing.placement_constraint,
                extra_labels=packing.member_labels(members),
            )

    def add(
        self,
        name: str,
        role: str,
        tier: int,
        attributes: dict[str, str],
        routes: tuple[Route, ...] = (),
        *,
        kind: str = "",
        forwarding: bool = False,
        tun: bool = False,
        devices: tuple[str, ...] = (),
        placement: str | None = None,
        extra_labels: dict[str, str] | None = None,
    ) -> None:
        attributes = {**attributes, **self.proxy_attributes.get(name, {})}
        config = NodeConfig(
            run=self.run,
            building=self.topology.building,
            node=name,
            role=role,
            interfaces=tuple(self.interfaces[name]),
            routes=routes,
            attributes={**attributes, **({Attr.KIND: kind} if kind else {})},
            forwarding=forwarding,
            isolate=True,
            **self.packing.ports(name),
        )
        labels = NodeLabels(
            run=self.run,
            node=name,
            role=role,
            building=self.topology.building,
            kind=kind,
            run_dir=self.run_dir,
            topology=self.topology_path,
            attributes=tuple(sorted(attributes.items())),
        )
        sysctls = dict(
            kernel.ALL,
            **kernel.NO_IPV4_FORWARDING,
            **kernel.no_router_advertisements(len(self.interfaces[name])),
            **(kernel.ROUTER if forwarding else {}),
        )
        self.nodes.append(
            NodePlan(
                name=name,
                role=role,
                resource=resource_name(self.run, name),
                hostname=name,
                volume=resource_name(self.run, f"{name}-state"),
                # Only where set: plans without placements stay as they were.
                labels=labels.to_labels()
                | ({PLACEMENT: placement} if placement else {})
                | (extra_labels or {}),
                config=config,
                tier=tier,
                net_admin=True,  # every node installs its own routes
                tun=tun,
                sysctls=sysctls,
                devices=devices,
                packed_in=self.packing.host_of.get(name, ""),
            )
        )
