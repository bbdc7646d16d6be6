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

from testbed.errors import PlanError
from testbed.node.config import Interface, NodeConfig, Route
from testbed.node.radio.config import GilbertElliottSpec, RadioPanConfig
from testbed.node.shaping import impairment as shaping
from testbed.plan import addressing
from testbed.plan import policy as cross_domain
from testbed.plan.labels import NETWORK, RUN, NodeLabels
from testbed.plan.model import NetworkKind, NetworkPlan, NodePlan, Plan
from testbed.topology.schema import NAME_RE, IpLink, Pan, Topology

RESOURCE_PREFIX = "tb"
SYSCTLS_ALL = {
    # Docker leaves IPv6 off on interfaces created later (TUN); DAD would delay binding.
    "net.ipv6.conf.all.disable_ipv6": "0",
    "net.ipv6.conf.default.disable_ipv6": "0",
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
}
SYSCTLS_ROUTER = {"net.ipv6.conf.all.forwarding": "1"}
TIER_INFRA = 0
TIER_THINGS = 1


def resource_name(run: str, name: str) -> str:
    return f"{RESOURCE_PREFIX}-{run}-{name}"


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
    nets = {n.name: n for n in networks}
    numbers = addressing.HostNumbers()
    router_of_pan = {pan: r.name for r in topology.border_routers for pan in r.pans}
    first_router = topology.border_routers[0].name

    def addr(network: str) -> str:
        net = ipaddress.IPv6Network(nets[network].subnet6)
        return f"{addressing.host(net, numbers.take(network))}/64"

    # Addresses are handed out in a fixed order: routers, trust centers, hosts, things.
    interfaces: dict[str, list[Interface]] = {}
    for router in topology.border_routers:
        names = ["mgmt", "backbone", "internet", *(f"pan-{p}" for p in router.pans)]
        interfaces[router.name] = [Interface(n, addr(n)) for n in names]
    for domain in topology.domains:
        interfaces[domain.trust_center_name] = [Interface(n, addr(n)) for n in ("mgmt", "backbone")]
    for host in topology.hosts:
        interfaces[host.name] = [Interface(n, addr(n)) for n in ("mgmt", "internet")]
    for thing in topology.things:
        for name in thing.names():
            interfaces[name] = [Interface(n, addr(n)) for n in ("mgmt", f"pan-{thing.pan}")]

    # -- radio PANs: the node's PAN address is on its TUN, its interface is on the carrier ---
    radio = {f"pan-{p.name}": p for p in topology.pans if p.medium == "radio"}
    pan_prefix = {
        f"pan-{p.name}": addressing.subnet(prefix, addressing.PAN_BASE + i)
        for i, p in enumerate(topology.pans)
    }
    radio_address = {
        (node, iface.network): addressing.radio_host(
            pan_prefix[iface.network], addressing.host_number(iface.ipv6)
        )
        for node, ifaces in interfaces.items()
        for iface in ifaces
        if iface.network in radio
    }

    def radio_attributes(node: str, pans: list[str], hub: bool) -> dict[str, str]:
        out = {}
        for network in (f"pan-{p}" for p in pans if f"pan-{p}" in radio):
            pan, router = radio[network], router_of_pan[network.removeprefix("pan-")]
            address = radio_address[node, network]
            names = {  # short address (hex) -> node, for the medium's metrics and link settings
                f"{addressing.host_number(str(a)) & 0xFFFF:04x}": n
                for (n, net), a in radio_address.items()
                if net == network
            }
            config = RadioPanConfig(
                pan=pan.name,
                address=f"{address}/64",
                short=addressing.host_number(str(address)) & 0xFFFF,
                medium=carrier_of(router, network),
                router="" if hub else str(radio_address[router, network]),
                channel=pan.channel,
                pan_id=pan.pan_id,
                reassembly_timeout=pan.reassembly_timeout,
            )
            if hub:
                config = _with_channel_model(config, pan, names)
            out[config.key] = config.to_attribute()
        return out

    def carrier_of(node: str, network: str) -> str:
        return next(i.ipv6.split("/")[0] for i in interfaces[node] if i.network == network)

    def address_of(node: str, network: str) -> str:
        if (node, network) in radio_address:
            return str(radio_address[node, network])
        for iface in interfaces[node]:
            if iface.network == network:
                return iface.ipv6.split("/")[0]
        raise PlanError(f"node {node} is not on {network}")  # the schema makes this unreachable

    def routes_via(network: str, destinations: list[tuple[str, str]]) -> tuple[Route, ...]:
        return tuple(
            Route(
                prefix=str(pan_prefix[dest]) if dest in radio else nets[dest].subnet6,
                via=address_of(router, network),
            )
            for dest, router in destinations
        )

    coap_port = 5683  # testbed.node.material.COAP_PORT

    def trust_center_uri(domain_name: str) -> str:
        domain = next(d for d in topology.domains if d.name == domain_name)
        return f"coap://[{address_of(domain.trust_center_name, 'backbone')}]:{coap_port}"

    pan_routes = [(f"pan-{pan.name}", router_of_pan[pan.name]) for pan in topology.pans]
    nodes: list[NodePlan] = []
    # -- cross-domain policy (testbed.plan.policy): enforced by the routers, scoped listings --
    rules = cross_domain.resolve(topology)
    data_network = {n: n_ifaces[-1].network for n, n_ifaces in interfaces.items()}
    policy_forward = (
        {
            cross_domain.FORWARD_ATTRIBUTE: cross_domain.forward_attribute(
                rules, lambda n: address_of(n, data_network[n])
            )
        }
        if rules
        else {}
    )
    backend_scope = cross_domain.backends_attribute(
        topology, rules, lambda v, n: serial_number(topology.building, v, n)
    )

    def add(
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
    ) -> None:
        config = NodeConfig(
            run=run,
            building=topology.building,
            node=name,
            role=role,
            interfaces=tuple(interfaces[name]),
            routes=routes,
            attributes={**attributes, **({"kind": kind} if kind else {})},
            forwarding=forwarding,
            isolate=True,
        )
        labels = NodeLabels(
            run=run,
            node=name,
            role=role,
            building=topology.building,
            kind=kind,
            run_dir=run_dir,
            topology=topology_path,
            attributes=tuple(sorted(attributes.items())),
        )
        sysctls = dict(SYSCTLS_ALL, **(SYSCTLS_ROUTER if forwarding else {}))
        nodes.append(
            NodePlan(
                name=name,
                role=role,
                resource=resource_name(run, name),
                hostname=name,
                volume=resource_name(run, f"{name}-state"),
                labels=labels.to_labels(),
                config=config,
                tier=tier,
                net_admin=True,  # every node installs its own routes
                tun=tun,
                sysctls=sysctls,
                devices=devices,
            )
        )

    for router in topology.border_routers:
        foreign = [(p, r) for p, r in pan_routes if r != router.name]
        add(
            router.name,
            "border_router",
            TIER_INFRA,
            {
                "pans": ",".join(router.pans),
                **radio_attributes(router.name, router.pans, True),
                **link_attributes(topology),
                **policy_forward,
            },
            routes_via("backbone", foreign),
            forwarding=True,
            tun=True,
            devices=tuple(
                r.device for p in topology.pans if p.name in router.pans for r in p.radios
            ),
        )
    for domain in topology.domains:
        trusted = domain.trusted_vendors or [v.name for v in topology.vendors]
        add(
            domain.trust_center_name,
            "trust_center",
            TIER_INFRA,
            {
                "domain": domain.name,
                "trusted-vendors": ",".join(trusted),
                **({cross_domain.BACKENDS_ATTRIBUTE: backend_scope} if backend_scope else {}),
            },
            routes_via("backbone", [*pan_routes, ("internet", first_router)]),
        )
    for host in topology.hosts:
        host_attributes = {}
        if host.role == "backend":
            # A backend works for every operator domain of the building whose trust center the
            # cross-domain policy lets it reach (polling one it may not reach only times out).
            host_attributes["trust-centers"] = ",".join(
                f"{d.name}={trust_center_uri(d.name)}"
                for d in topology.domains
                if cross_domain.allowed(rules, host.name, d.trust_center_name, coap_port)
            )
        add(
            host.name,
            "internet_host",
            TIER_INFRA,
            host_attributes,
            routes_via("internet", [*pan_routes, ("backbone", first_router)]),
            kind=host.role,
        )
    # Things fetch firmware from the building's first vendor cloud (internet side).
    clouds = [h.name for h in topology.hosts if h.role == "vendor-cloud"]
    cloud_uri = f"coap://[{address_of(clouds[0], 'internet')}]:{coap_port}" if clouds else None
    for thing in topology.things:
        model = topology.model(thing.vendor, thing.model)
        pan_router = router_of_pan[thing.pan]
        attributes = {
            "vendor": thing.vendor,
            "model": thing.model,
            "device-class": thing.role or model.role,
            "domain": thing.domain,
            "pan": thing.pan,
            "profile": thing.profile or model.profile,
            "firmware": model.firmware,
            "trust-center-uri": trust_center_uri(thing.domain),
            # With phases, the commission playbook starts the bootstrap, not the thing itself.
            "auto-commission": "true" if topology.commissioning == "auto" else "false",
        }
        if cloud_uri:
            attributes["vendor-cloud-uri"] = cloud_uri
        if thing.faults:
            attributes["faults"] = ",".join(thing.faults)
        others = [(n, pan_router) for n in ("backbone", "internet")]
        # Other PANs are reached through the own router, which forwards over the backbone.
        others += [(p, pan_router) for p, _ in pan_routes if p != f"pan-{thing.pan}"]
        for name in thing.names():
            add(
                name,
                "thing",
                TIER_THINGS,
                {
                    **attributes,
                    "serial": serial_number(topology.building, thing.vendor, name),
                    **radio_attributes(name, [thing.pan], False),
                },
                routes_via(f"pan-{thing.pan}", others),
                tun=True,
            )
    return Plan(
        run=run,
        building=topology.building,
        topology_path=topology_path,
        ula_prefix=str(prefix),
        networks=tuple(networks),
        nodes=tuple(nodes),
    )


def _networks(topology: Topology, run: str, prefix: ipaddress.IPv6Network) -> list[NetworkPlan]:
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


def _with_channel_model(config: RadioPanConfig, pan: Pan, names: dict[str, str]) -> RadioPanConfig:
    """What the medium in the border router applies to a radio PAN (from the topology)."""
    ge = pan.gilbert_elliott
    return dataclasses.replace(
        config,
        loss=pan.loss,
        gilbert_elliott=GilbertElliottSpec(ge.p, ge.r, ge.loss_good, ge.loss_bad) if ge else None,
        max_frame_retries=pan.mac_max_frame_retries,
        seed=pan.seed,
        names=names,
        guest_stations=pan.guest_stations,
        radios=[r.model_dump() for r in pan.radios],
    )


# -- IP link impairments: carried by every border router (a link = its interface there) -------


def link_attributes(topology: Topology) -> dict[str, str]:
    """``links-backbone``/``links-internet``: what the router's shaper starts with."""
    out = {}
    for name in shaping.LINK_NAMES:
        spec = shaping.LinkSpec(
            name=name,
            planned=ip_impairment(getattr(topology.links, name), f"links.{name}"),
            seed=int(hashlib.sha256(f"{topology.building}/{name}".encode()).hexdigest()[:8], 16),
        )
        out[spec.key] = spec.to_attribute()
    return out


def ip_impairment(link: IpLink, where: str) -> shaping.Impairment:
    ge = link.gilbert_elliott
    try:
        return shaping.Impairment(
            delay=link.delay,
            jitter=link.jitter,
            loss=link.loss,
            gilbert_elliott=shaping.GilbertElliott(ge.p, ge.r, ge.loss_good, ge.loss_bad)
            if ge
            else None,
            rate=link.rate,
            duplicate=link.duplicate,
            reorder=link.reorder,
            corrupt=link.corrupt,
        )
    except shaping.ImpairmentError as exc:
        raise PlanError(
            f"{where}.{exc.option}: {exc.reason}", f"fix {where} in the topology file"
        ) from None
