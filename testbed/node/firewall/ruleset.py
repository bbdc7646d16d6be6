"""``policy-forward`` (testbed.plan.cross_domain) -> an nftables ruleset for the forward hook.

    table inet tb_policy {
      counter r3 { }                               one named counter per deny rule, + guards
      chain forward {
        type filter hook forward priority 0; policy accept;
        meta nfproto ipv4 counter name "r_ipv4" drop        experiment networks are IPv6 only
        iifname "eth1" ip6 saddr != { P1, P2 } counter name "r_spoofed" drop   per interface:
        ...                                        the prefixes the router routes out of it
        iifname != { "eth1", ... } counter name "r_spoofed" drop
        ip6 saddr M counter name "r_mgmt" drop      mgmt never carries experiment traffic
        ip6 daddr M counter name "r_mgmt" drop
        ct state established,related accept       replies of an allowed flow; ICMPv6 errors
        ip6 saddr { A, B } ip6 daddr { C } [meta l4proto { tcp, udp } th dport { P }] accept
        ip6 saddr { D } ip6 daddr { E } counter name "r3" drop
        counter name "r_default" drop             (accept when the topology has no policies)
      }
    }

Only what the router *forwards* is filtered: traffic between two nodes of one PAN never
reaches it (on a real 802.15.4 PAN neither), and its own traffic (input/output) is untouched.
The guards come first, before the established-flow shortcut, so that no forged packet rides
on an allowed flow: IPv4 is never forwarded (Docker gives every container an IPv4 address on
every network; the policy speaks of IPv6 addresses only); a packet whose source address the
router would not route back out of the interface it came in on is forged (a strict reverse path
check, per interface: a denied thing on one PAN cannot pass as an allowed thing of another PAN
or of the backbone); and nothing is forwarded from or to mgmt. The reverse path check is spelt
out per interface (``sources``: interface -> prefixes, read from the router's routes at start)
rather than left to nft's ``fib`` lookup, because the user-space shaper hands received packets
to the kernel on its own TUN (``shp-<link>-i``), which must count as the shaped interface.
Deny rules and guards count into named counters so the drop counter can say what dropped;
accepts are not counted (the hot path stays one lookup per rule).

Stdlib only: the planner's unit tests render the same text and check it with ``nft -c``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

TABLE = "tb_policy"  # not testbed_*: that prefix is for metric names
DEFAULT_COUNTER = "r_default"
# Guard counters and the labels testbed_policy_dropped_packets_total{rule} gives them.
GUARDS = {"r_ipv4": "ipv4", "r_spoofed": "spoofed-source", "r_mgmt": "mgmt"}
ALLOW_ALL = "allow-all"  # default label of a topology without policies


class PolicyConfigError(ValueError):
    """The ``policy-forward`` attribute is not what the planner writes."""


@dataclass(frozen=True)
class ForwardRule:
    label: str
    allow: bool
    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class ForwardPolicy:
    rules: tuple[ForwardRule, ...]
    default_label: str = "default-deny"
    # The router's mgmt /64 (never forwarded from or to); "" when unknown.
    mgmt: str = ""
    # Interface -> the source prefixes it may bring in; empty: no per-interface check.
    sources: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def default_allows(self) -> bool:
        return self.default_label == ALLOW_ALL

    def counters(self) -> dict[str, str]:
        """nft counter name -> rule label, for every rule and guard that drops."""
        out = {k: v for k, v in GUARDS.items() if k != "r_mgmt" or self.mgmt}
        out.update({f"r{i}": r.label for i, r in enumerate(self.rules) if not r.allow})
        if not self.default_allows:
            out[DEFAULT_COUNTER] = self.default_label
        return out


def parse(raw: str) -> ForwardPolicy:
    """Validate strictly: every address and port ends up in a ruleset the router loads."""
    try:
        data = json.loads(raw)
        rules = tuple(_rule(entry) for entry in data["rules"])
        default = str(data.get("default", "default-deny"))
    except (ValueError, KeyError, TypeError) as exc:
        raise PolicyConfigError(f"policy-forward is not valid: {exc}") from exc
    return ForwardPolicy(rules, default)


def _rule(entry: dict[str, object]) -> ForwardRule:
    def addresses(key: str) -> tuple[str, ...]:
        values = entry[key]
        if not isinstance(values, list):
            raise TypeError(f"{key} must be a list")
        return tuple(_address_or_prefix(str(v)) for v in values)

    ports = entry.get("ports") or []
    if not isinstance(ports, list) or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
        raise ValueError(f"bad ports {ports!r}")
    allow = entry["allow"]
    if not isinstance(allow, bool):
        raise TypeError("allow must be true or false")
    return ForwardRule(
        label=str(entry["label"]),
        allow=allow,
        sources=addresses("from"),
        destinations=addresses("to"),
        ports=tuple(ports),
    )


def _address_or_prefix(text: str) -> str:
    """A node's address, or a routed prefix (a SLIP uplink's board and its nodes)."""
    if "/" not in text:
        return str(ipaddress.IPv6Address(text))
    net = ipaddress.IPv6Network(text)  # strict: host bits set is a planner bug
    return str(net.network_address) if net.prefixlen == 128 else str(net)


def render(policy: ForwardPolicy) -> str:
    """The whole table; loaded with ``nft -f`` after deleting an older one (idempotent)."""
    lines = [f"table inet {TABLE} {{"]
    for name in policy.counters():
        lines.append(f"  counter {name} {{ }}")
    lines += [
        "  chain forward {",
        "    type filter hook forward priority 0; policy accept;",
        '    meta nfproto ipv4 counter name "r_ipv4" drop',
    ]
    for device, prefixes in policy.sources:
        match = f'iifname "{device}"'
        if prefixes:
            match += f" ip6 saddr != {_set(prefixes)}"
        lines.append(f'    {match} counter name "r_spoofed" drop')
    if policy.sources:
        devices = ", ".join(f'"{d}"' for d, _ in policy.sources)
        lines.append(f'    iifname != {{ {devices} }} counter name "r_spoofed" drop')
    if policy.mgmt:
        mgmt = str(ipaddress.IPv6Network(policy.mgmt, strict=False))
        lines += [
            f'    ip6 saddr {mgmt} counter name "r_mgmt" drop',
            f'    ip6 daddr {mgmt} counter name "r_mgmt" drop',
        ]
    lines.append("    ct state established,related accept")
    for index, rule in enumerate(policy.rules):
        if not rule.sources or not rule.destinations:
            continue  # a selector without members (nft has no empty anonymous sets)
        match = f"ip6 saddr {_set(rule.sources)} ip6 daddr {_set(rule.destinations)}"
        if rule.ports:
            match += f" meta l4proto {{ tcp, udp }} th dport {_set(map(str, rule.ports))}"
        verdict = "accept" if rule.allow else f'counter name "r{index}" drop'
        lines.append(f"    {match} {verdict}")
    if not policy.default_allows:
        lines.append(f'    counter name "{DEFAULT_COUNTER}" drop')
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def sources_from_routes(
    routes: str, aliases: dict[str, str] | None = None
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``ip -6 -o route show table main`` -> interface -> the prefixes routed out of it.

    The default route, link-local and multicast prefixes are left out (a router forwards none
    of them). ``aliases`` maps an extra interface to the one whose prefixes it may bring in (the
    user-space shaper's ingress TUN to its shaped interface).
    """
    out: dict[str, set[str]] = {}
    for line in routes.splitlines():
        words = line.split()
        if len(words) < 3 or "dev" not in words:
            continue
        device = words[words.index("dev") + 1]
        try:
            prefix = ipaddress.IPv6Network(words[0], strict=False)
        except ValueError:
            continue  # "default", "unreachable ...", "anycast ..."
        if prefix.is_link_local or prefix.is_multicast or prefix.prefixlen == 0:
            continue
        out.setdefault(device, set()).add(str(prefix))
    for extra, device in (aliases or {}).items():
        out[extra] = set(out.get(device, ()))
    for device in out:
        if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,15}", device):
            raise PolicyConfigError(f"unexpected interface name {device!r} in the routes")
    return tuple(sorted((d, tuple(sorted(p))) for d, p in out.items()))


def _set(values: Iterable[str]) -> str:
    return "{ " + ", ".join(sorted(set(values))) + " }"
