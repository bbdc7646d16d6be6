"""The proxy's contract between planner and nodes: attribute names, ports, PSK file names.

A border router with ``proxy`` gets the attribute ``proxy`` (JSON, ``ProxyConfig``): the modes
it offers, the tamper switch, the PAN prefixes it may forward to, the things it holds a PSK
for (address -> name) and the backends that may use it. A thing behind a hop-by-hop proxy gets
``operation-dtls-identity`` (the PSK identity its proxy presents). A backend gets ``proxies``
(JSON, ``ProxyRoute`` per router). Secrets never travel in attributes: they are 0600 files
(``material``): ``identity/operation.psk`` in the thing, ``proxy/things/<thing>.psk`` and
``proxy/backends/<backend>.psk`` in the router, ``proxies/<router>.psk`` in the backend.

Standard library only: the planner writes what the nodes read.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

ATTRIBUTE = "proxy"  # border router
THING_IDENTITY_ATTRIBUTE = "operation-dtls-identity"  # thing behind a hop-by-hop proxy
BACKEND_ATTRIBUTE = "proxies"  # backend
END_TO_END = "end-to-end"
HOP_BY_HOP = "hop-by-hop"
MODES = (END_TO_END, HOP_BY_HOP)
COAP_PORT = 5683  # the end-to-end proxy, plain CoAP (RFC 7252 5.7.2 forward proxy)
COAPS_PORT = 5684  # the hop-by-hop proxy, and a thing's operation DTLS server

OPERATION_PSK = "identity/operation.psk"  # thing: the PSK it shares with its router's proxy
PROXY_THINGS_DIR = "proxy/things"  # router: proxy/things/<thing>.psk
PROXY_BACKENDS_DIR = "proxy/backends"  # router: proxy/backends/<backend>.psk
BACKEND_PROXIES_DIR = "proxies"  # backend: proxies/<router>.psk


class ProxyConfigError(ValueError):
    """An attribute is not what the planner writes."""


def thing_psk(thing: str) -> str:
    return f"{PROXY_THINGS_DIR}/{thing}.psk"


def backend_psk(backend: str) -> str:
    return f"{PROXY_BACKENDS_DIR}/{backend}.psk"


def router_psk(router: str) -> str:
    return f"{BACKEND_PROXIES_DIR}/{router}.psk"


@dataclass(frozen=True)
class ProxyConfig:
    modes: tuple[str, ...]
    tamper: bool = False
    pans: tuple[str, ...] = ()  # prefixes it forwards to (no open relay)
    things: dict[str, str] = field(default_factory=dict)  # address -> thing name (hop by hop)
    backends: tuple[str, ...] = ()  # node names: PSK identities (hop by hop)
    allowed_sources: tuple[str, ...] = ()  # backend addresses (end to end); empty: anyone

    def to_attribute(self) -> str:
        return json.dumps(
            {
                "modes": list(self.modes),
                "tamper": self.tamper,
                "pans": list(self.pans),
                "things": self.things,
                "backends": list(self.backends),
                "sources": list(self.allowed_sources),
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def parse(cls, raw: str) -> ProxyConfig:
        try:
            data = json.loads(raw)
            modes = tuple(str(m) for m in data["modes"])
            if not modes or any(m not in MODES for m in modes):
                raise ValueError(f"modes {modes!r}: each one of {', '.join(MODES)}")
            pans = tuple(str(ipaddress.IPv6Network(p)) for p in data.get("pans", []))
            things = {
                str(ipaddress.IPv6Address(a)): str(n) for a, n in data.get("things", {}).items()
            }
            sources = tuple(str(ipaddress.IPv6Address(a)) for a in data.get("sources", []))
            tamper = data.get("tamper", False)
            if not isinstance(tamper, bool):
                raise TypeError("tamper must be true or false")
            return cls(
                modes=modes,
                tamper=tamper,
                pans=pans,
                things=things,
                backends=tuple(str(b) for b in data.get("backends", [])),
                allowed_sources=sources,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProxyConfigError(f"attribute proxy is not valid: {exc}") from exc

    def forwards_to(self, address: str) -> bool:
        try:
            ip = ipaddress.IPv6Address(address.strip("[]"))
        except ValueError:
            return False
        return any(ip in ipaddress.IPv6Network(p) for p in self.pans)


@dataclass(frozen=True)
class ProxyRoute:
    """How a backend reaches the things of one router's PANs through its proxy."""

    router: str
    pans: tuple[str, ...]
    coap: str | None = None  # "[addr]:5683" when end-to-end is offered
    coaps: str | None = None  # "[addr]:5684" when hop-by-hop is offered

    def serves(self, address: str) -> bool:
        try:
            ip = ipaddress.IPv6Address(address.strip("[]"))
        except ValueError:
            return False
        return any(ip in ipaddress.IPv6Network(p) for p in self.pans)


def routes_attribute(routes: list[ProxyRoute]) -> str:
    return json.dumps(
        {
            r.router: {
                "pans": list(r.pans),
                **({"coap": r.coap} if r.coap else {}),
                **({"coaps": r.coaps} if r.coaps else {}),
            }
            for r in routes
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def parse_routes(raw: str) -> list[ProxyRoute]:
    try:
        data = json.loads(raw)
        return [
            ProxyRoute(
                router=str(router),
                pans=tuple(str(ipaddress.IPv6Network(p)) for p in entry["pans"]),
                coap=entry.get("coap"),
                coaps=entry.get("coaps"),
            )
            for router, entry in sorted(data.items())
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProxyConfigError(f"attribute proxies is not valid: {exc}") from exc


def hostport(hostinfo: str) -> tuple[str, int]:
    """'[fd00::1]:5683' -> ('fd00::1', 5683)."""
    host, _, port = hostinfo.rpartition(":")
    return host.strip("[]"), int(port)
