"""The border router (6LBR): routes between its PANs, the backbone and the Internet.

The PANs it serves come from the planner's ``pans`` attribute (comma-separated names); without
it, from the networks it is attached to whose name starts with ``pan-``. An optional CoAP proxy
will be started from :meth:`BorderRouterRole.start`.

For a PAN with ``medium: radio`` the node runs the PAN's radio medium (testbed.node.radio.attach,
started by the node before its routes): a ZEP hub on the router's carrier address, and a TUN
``lowpan<i>`` with the router's PAN address that the kernel forwards to and from like any
interface; its ``link-show``/``link-set``/``link-reset`` actions change the PAN's frame loss live.

It relays group commands (testbed.node.coap.group_relay): a Group OSCORE datagram sent to its
address on a PAN, port 5690, goes out once to ff05::fd on that PAN (``group-relay``: "off"
disables it); ``state`` counts what it relayed and refused.

With a ``policy-forward`` attribute (a topology with ``policies:``) it installs the cross-domain
policy as an nftables forward chain at start (testbed.node.policy), exports
testbed_policy_dropped_packets_total{rule} and answers ``policy-show``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from testbed.node import metric_catalogue as catalogue
from testbed.node.coap.group_relay import GroupRelay
from testbed.node.policy.firewall import PolicyFirewall
from testbed.node.radio.config import pan_address
from testbed.node.roles.base import Action, Role, RoleContext

PAN_PREFIX = "pan-"


class BorderRouterRole(Role):
    name = "border_router"

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        self.attached = sorted(
            iface.network.removeprefix(PAN_PREFIX)
            for iface in self.config.interfaces
            if iface.network.startswith(PAN_PREFIX)
        )
        declared = self.attribute("pans")
        self.pans = (
            sorted(p.strip() for p in declared.split(",") if p.strip())
            if declared is not None
            else self.attached
        )
        self.policy = PolicyFirewall.for_node(self.config, self.log)
        self.group_relay: GroupRelay | None = None
        if self.attribute("group-relay") != "off":
            self.group_relay = GroupRelay(self._pan_addresses(), self.log)

    def _pan_addresses(self) -> dict[str, str]:
        """This router's address on each PAN it serves (its TUN's on a radio PAN)."""
        out = {}
        for iface in self.config.interfaces:
            pan = iface.network.removeprefix(PAN_PREFIX)
            if iface.network.startswith(PAN_PREFIX) and pan in self.pans:
                address = pan_address(self.config.attributes, iface.network)
                out[str(ipaddress.IPv6Address(address or iface.ipv6.split("/")[0]))] = pan
        return out

    def facts(self) -> dict[str, Any]:
        return {"pans": self.pans, "forwarding": self.config.forwarding}

    def state(self) -> dict[str, Any]:
        policy = {"policy": self.policy.snapshot()} if self.policy is not None else {}
        relay = {"group_relay": self.group_relay.snapshot()} if self.group_relay else {}
        return {**self.facts(), **policy, **relay}

    def actions(self) -> Mapping[str, Action]:
        return self.policy.actions() if self.policy is not None else {}

    def register_metrics(self, registry: CollectorRegistry) -> None:
        if self.policy is not None:
            self.policy.register_metrics(registry)
        catalogue.gauge("testbed_border_router_served_pans", registry).set(len(self.pans))

    async def start(self) -> None:
        # Not fatal: a plan may legitimately bring a PAN up later; but say it loudly, since a
        # border router that does not forward cuts its PANs off and results would mislead.
        if not self.config.forwarding:
            self.log.warning("border_router.no_forwarding", hint="set forwarding in node.json")
        if not self.pans:
            self.log.warning("border_router.no_pans", hint="no 'pans' attribute, no pan-* network")
        elif set(self.pans) != set(self.attached):
            # Legitimate when a PAN is carried by the radio medium only; worth a line anyway.
            self.log.warning("border_router.pans_differ", pans=self.pans, attached=self.attached)
        if self.policy is not None:
            await self.policy.start()
        if self.group_relay is not None:
            await self.group_relay.start()  # a PAN it cannot serve is reported, not fatal

    async def stop(self) -> None:
        if self.group_relay is not None:
            self.group_relay.close()
        await super().stop()
