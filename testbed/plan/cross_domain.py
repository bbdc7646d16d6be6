"""The topology's cross-domain rules as the nodes enforce them.

Border routers get ``policy-forward``: the ordered rules with the selectors resolved to the
nodes' data addresses (where experiment traffic reaches them: PAN, backbone or internet), which
testbed.node.firewall turns into an nftables forward chain. Trust centers get ``policy-backends``:
for each backend the policy restricts, the serials of the things it may talk to, so that GET
/things lists only those (a listing of things the network would not let it reach helps nobody).

The defaults, tried after the topology's own rules (first match wins), then everything else is
dropped (``default-deny``):

    default-domain        a domain's things and its trust center talk among themselves
    default-backend       every backend may talk to every domain (a backend works for every
                          operator of the building, as the planner's trust-centers attribute says)
    default-vendor-cloud  things (and trust centers) may fetch from the vendor clouds

So things of different domains may not talk to each other, trust centers reach only their own
domain's things, and attacker hosts reach nothing unless a rule says so.

Domains are resolved as planned: a thing transferred to another domain at run time keeps the
address pairs of its planned domain; give it a ``thing:`` rule for the new one (as
two-operators.yaml does for occupancy-01).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from testbed.topology.cross_domain_rules import selector_kind

if TYPE_CHECKING:
    from collections.abc import Callable

    from testbed.topology.schema import Topology

FORWARD_ATTRIBUTE = "policy-forward"
BACKENDS_ATTRIBUTE = "policy-backends"
DEFAULT_DENY = "default-deny"
COAP_PORT = 5683  # what a backend's reads use (testbed.node.material.COAP_PORT)


@dataclass(frozen=True)
class ResolvedRule:
    label: str  # the drop counter's label: the rule's name or key path, or default-*
    allow: bool
    sources: tuple[str, ...]  # node names
    destinations: tuple[str, ...]
    ports: tuple[int, ...] = ()  # empty: any protocol and port

    def matches(self, source: str, destination: str, port: int | None) -> bool:
        if source not in self.sources or destination not in self.destinations:
            return False
        return not self.ports or (port is not None and port in self.ports)


def members(topo: Topology, selector: str) -> tuple[str, ...]:
    """The node names a selector stands for (border routers never: they are the filter)."""
    kind, name = selector_kind(selector)
    if kind == "thing":
        return (name,)
    if kind == "host":
        return (name,)
    if kind == "domain":
        domain = next(d for d in topo.domains if d.name == name)
        things = [n for t in topo.things if t.domain == name for n in t.names()]
        # A SLIP uplink of the domain: its routed prefix stands for its board's nodes.
        things += [r.station for p in topo.pans for r in p.radios if r.domain == name]
        return (domain.trust_center_name, *things)
    routers = {r.name for r in topo.border_routers}
    return tuple(n for n in topo.node_names() if n not in routers)


def resolve(topo: Topology) -> list[ResolvedRule]:
    """The topology's rules in order, then the defaults; empty when it has no policies."""
    if topo.policies is None:
        return []
    rules = [
        ResolvedRule(
            label=rule.name or f"policies[{index}]",
            allow=rule.allow,
            sources=members(topo, rule.source),
            destinations=members(topo, rule.to),
            ports=tuple(rule.ports),
        )
        for index, rule in enumerate(topo.policies)
    ]
    domains = [f"domain:{d.name}" for d in topo.domains]
    for domain in domains:
        rules.append(_default(topo, "default-domain", domain, domain))
    for host in (h for h in topo.hosts if h.role == "backend"):
        for domain in domains:
            rules.append(_default(topo, "default-backend", f"host:{host.name}", domain))
    for host in (h for h in topo.hosts if h.role == "vendor-cloud"):
        for domain in domains:
            rules.append(_default(topo, "default-vendor-cloud", domain, f"host:{host.name}"))
    return rules


def _default(topo: Topology, label: str, source: str, destination: str) -> ResolvedRule:
    return ResolvedRule(label, True, members(topo, source), members(topo, destination))


def allowed(rules: list[ResolvedRule], source: str, destination: str, port: int | None) -> bool:
    """First match wins; no match is the default deny. No rules at all: no filter."""
    if not rules:
        return True
    for rule in rules:
        if rule.matches(source, destination, port):
            return rule.allow
    return False


def forward_attribute(rules: list[ResolvedRule], address: Callable[[str], str]) -> str:
    """``policy-forward`` of a border router: the rules over data addresses, as JSON."""
    out = []
    for rule in rules:
        out.append(
            {
                "label": rule.label,
                "allow": rule.allow,
                "from": sorted({address(n) for n in rule.sources}),
                "to": sorted({address(n) for n in rule.destinations}),
                "ports": list(rule.ports),
            }
        )
    return json.dumps({"rules": out, "default": DEFAULT_DENY}, separators=(",", ":"))


def backends_attribute(
    topo: Topology, rules: list[ResolvedRule], serial: Callable[[str, str], str]
) -> str | None:
    """``policy-backends`` of a trust center: restricted backend -> serials it may talk to.

    A backend the policy lets reach every thing is left out (it sees the full listing). None
    when no backend is restricted. ``serial(vendor, thing)`` names a thing's factory serial.
    """
    scope: dict[str, list[str]] = {}
    things = [(t.vendor, n) for t in topo.things for n in t.names()]
    for host in (h.name for h in topo.hosts if h.role == "backend"):
        reachable = [n for _, n in things if allowed(rules, host, n, COAP_PORT)]
        if len(reachable) < len(things):
            scope[host] = sorted(serial(v, n) for v, n in things if n in reachable)
    return json.dumps(scope, separators=(",", ":"), sort_keys=True) if scope else None
