"""The border routers' CoAP proxies in the plan (topology ``border_routers[].proxy``).

``node_attributes`` says which attributes each node gets, nothing when no router has a proxy:

- the router: ``proxy`` (testbed.contracts.proxy.ProxyConfig as JSON: modes, tamper, the
  prefixes of its PANs, the things it holds a PSK with by address, the backends by name and
  by address);
- every backend: ``proxies`` (how to reach each proxy and which PAN prefixes it serves);
- a thing behind a hop-by-hop proxy: ``operation-dtls-identity`` (the router's name: the PSK
  identity its operation DTLS server accepts).

The keys themselves are minted by testbed.manufacture from these attributes.
"""

from __future__ import annotations

from collections.abc import Callable

from testbed.contracts import proxy as contract
from testbed.topology.schema import Topology

Address = Callable[[str, str], str]  # (node, network) -> its address there
Prefix = Callable[[str], str]  # PAN network ("pan-x") -> its /64


def node_attributes(
    topology: Topology, address_of: Address, prefix_of: Prefix
) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    routes: list[contract.ProxyRoute] = []
    backends = [h.name for h in topology.hosts if h.role == "backend"]
    for router in topology.border_routers:
        if router.proxy is None:
            continue
        modes = tuple(m for m in contract.MODES if m in router.proxy.modes)
        prefixes = tuple(prefix_of(f"pan-{p}") for p in router.pans)
        hop_by_hop = contract.HOP_BY_HOP in modes
        behind = [n for t in topology.things if t.pan in router.pans for n in t.names()]
        things: dict[str, str] = {}
        if hop_by_hop:
            for thing in topology.things:
                if thing.pan not in router.pans:
                    continue
                for name in thing.names():
                    things[address_of(name, f"pan-{thing.pan}")] = name
            for name in behind:
                out.setdefault(name, {})[contract.THING_IDENTITY_ATTRIBUTE] = router.name
        config = contract.ProxyConfig(
            modes=modes,
            tamper=router.proxy.tamper,
            pans=prefixes,
            things=things,
            backends=tuple(backends) if hop_by_hop else (),
            allowed_sources=tuple(sorted(address_of(b, "internet") for b in backends)),
        )
        out.setdefault(router.name, {})[contract.ATTRIBUTE] = config.to_attribute()
        here = f"[{address_of(router.name, 'internet')}]"
        routes.append(
            contract.ProxyRoute(
                router=router.name,
                pans=prefixes,
                coap=f"{here}:{contract.COAP_PORT}" if contract.END_TO_END in modes else None,
                coaps=f"{here}:{contract.COAPS_PORT}" if hop_by_hop else None,
            )
        )
    if routes:
        for backend in backends:
            out.setdefault(backend, {})[contract.BACKEND_ATTRIBUTE] = contract.routes_attribute(
                routes
            )
    return out
