"""Install the cross-domain policy on a border router and count what it drops.

    testbed_policy_dropped_packets_total{rule}   packets dropped, by the rule that dropped them

The counters live in the kernel (named nft counters, testbed.node.firewall.ruleset); a scrape
reads them with ``nft -j list counters``. A router whose ruleset cannot be loaded stops the
node (NetSetupError): forwarding everything unfiltered would make every policy experiment
silently wrong.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import subprocess
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from testbed.contracts.impairment import LINK_NAMES
from testbed.contracts.node_config import NodeConfig
from testbed.node import declared_metrics as declared
from testbed.node import netns
from testbed.node.errors import ConfigError, NetSetupError
from testbed.node.firewall.ruleset import (
    ALLOW_ALL,
    TABLE,
    ForwardPolicy,
    PolicyConfigError,
    parse,
    render,
    sources_from_routes,
)
from testbed.node.logs import EventLog
from testbed.node.netsetup import IP_COMMAND, load_nft
from testbed.node.shaping.userspace import INGRESS, device_name

ATTRIBUTE = "policy-forward"  # testbed.plan.cross_domain.FORWARD_ATTRIBUTE
NFT_COMMAND: tuple[str, ...] = ("nft",)
NFT_TIMEOUT = 5.0
SCRAPE_TIMEOUT = 2.0
Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class PolicyFirewall:
    def __init__(
        self,
        policy: ForwardPolicy,
        log: EventLog,
        nft: Sequence[str] = NFT_COMMAND,
        links: Mapping[str, str] | None = None,
    ) -> None:
        self.policy = policy
        self.log = log
        self.nft = tuple(nft)
        self.links = dict(links or {})  # shaped link -> the subnet of our interface on it
        self.installed = False

    @classmethod
    def for_node(cls, config: NodeConfig, log: EventLog) -> PolicyFirewall:
        """Every router gets the guards (no IPv4, no forged sources, nothing to or from mgmt);
        the cross-domain rules only where the topology has ``policies``."""
        mgmt = next((i.ipv6 for i in config.interfaces if i.network == "mgmt"), "")
        links = {
            i.network: str(ipaddress.IPv6Interface(i.ipv6).network)
            for i in config.interfaces
            if i.network in LINK_NAMES
        }
        raw = config.attributes.get(ATTRIBUTE)
        if not raw:
            return cls(ForwardPolicy((), ALLOW_ALL, mgmt), log, links=links)
        try:
            return cls(dataclasses.replace(parse(raw), mgmt=mgmt), log, links=links)
        except PolicyConfigError as exc:
            raise ConfigError(
                str(exc), "the planner writes it from the topology's policies"
            ) from exc

    async def start(
        self,
        namespace: Callable[[], netns.Namespace] = netns.check,
        ip_command: Sequence[str] = IP_COMMAND,
    ) -> None:
        where = namespace()
        if not where.own:  # a node process on a developer's host: never touch its firewall
            self.log.warning("policy.skipped", reason=where.reason)
            return
        if not self.policy.sources:  # the router's routes are in place: read who sends what
            sources = await interface_sources(self.log, self.links, ip_command)
            self.policy = dataclasses.replace(self.policy, sources=sources)
        # Delete first so that a restart (same network namespace) replaces, not duplicates.
        text = f"table inet {TABLE} {{ }}\ndelete table inet {TABLE}\n" + render(self.policy)
        code, err = await load_nft(self.nft, text, NFT_TIMEOUT)
        if code != 0:
            raise NetSetupError(
                "cannot install the cross-domain policy: " + err[:300],
                "the border router needs CAP_NET_ADMIN and nftables in its kernel",
            )
        self.installed = True
        self.log.info("policy.installed", rules=len(self.policy.rules))

    async def stop(self) -> None:
        """Nothing to undo: the table goes with the container's network namespace."""

    def dropped(self) -> dict[str, int]:
        """Dropped packets by rule label, from the kernel's counters (0s when unreadable)."""
        names = self.policy.counters()
        out = dict.fromkeys(names.values(), 0)
        if not self.installed:
            return out
        try:
            done = subprocess.run(
                [*self.nft, "-j", "list", "counters", "table", "inet", TABLE],
                capture_output=True,
                timeout=SCRAPE_TIMEOUT,
                check=True,
            )
            entries = json.loads(done.stdout)["nftables"]
        except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
            self.log.warning("policy.counters_unreadable", error=str(exc))
            return out
        for entry in entries:
            counter = entry.get("counter") if isinstance(entry, dict) else None
            if isinstance(counter, dict) and counter.get("name") in names:
                out[names[counter["name"]]] += int(counter.get("packets", 0))
        return out

    def register_metrics(self, registry: CollectorRegistry) -> None:
        registry.register(_Collector(self))

    def snapshot(self) -> dict[str, Any]:
        return {
            "installed": self.installed,
            "rules": [
                {
                    "label": r.label,
                    "allow": r.allow,
                    "from": len(r.sources),
                    "to": len(r.destinations),
                }
                for r in self.policy.rules
            ],
        }

    def actions(self) -> Mapping[str, Action]:
        return {"policy-show": self._show}

    async def _show(self, params: dict[str, Any]) -> dict[str, Any]:
        dropped = await asyncio.to_thread(self.dropped)
        return {
            **self.snapshot(),
            "dropped": dropped,
            "ruleset": render(self.policy),
            "changed": False,
        }


async def interface_sources(
    log: EventLog, links: Mapping[str, str], ip_command: Sequence[str] = IP_COMMAND
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Per interface, the prefixes this router routes out of it (testbed.node.firewall.ruleset).

    ``links``: shaped link name -> the subnet of the router's interface on it. The user-space
    shaper's ingress TUN ``shp-<link>-i`` hands the kernel what arrived on that interface, so it
    may bring in the same prefixes (whether the shaper runs yet or not).
    """
    hint = "the border router needs its routes before its policy"
    try:
        code, routes = await _output([*ip_command, "-6", "-o", "route", "show", "table", "main"])
    except FileNotFoundError:
        raise NetSetupError("cannot read the router's routes: no ip command", hint) from None
    if code != 0:
        raise NetSetupError("cannot read the router's routes", hint)
    by_device = dict(sources_from_routes(routes))
    # Whether or not the shaper runs now: `testbed link set` may start it at any time, and its
    # device names are fixed (an iifname rule for a device that does not exist matches nothing).
    aliases = {}
    for link, subnet in links.items():
        shaped = next((d for d, p in by_device.items() if subnet in p), None)
        if shaped is not None:
            aliases[device_name(link, INGRESS)] = shaped
    sources = sources_from_routes(routes, aliases)
    log.info("policy.sources", interfaces={d: list(p) for d, p in sources})
    return sources


async def _output(cmd: Sequence[str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await asyncio.wait_for(proc.communicate(), NFT_TIMEOUT)
    return proc.returncode or 0, out.decode(errors="replace")


class _Collector(Collector):
    def __init__(self, firewall: PolicyFirewall) -> None:
        self.firewall = firewall

    def collect(self) -> Iterable[Metric]:
        family = declared.counter_family("testbed_policy_dropped_packets")
        for label, packets in sorted(self.firewall.dropped().items()):
            family.add_metric([label], packets)
        yield family
