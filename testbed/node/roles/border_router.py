"""The border router (6LBR): routes between its PANs, the backbone and the Internet.

The PANs it serves come from the planner's ``pans`` attribute (comma-separated names); without
it, from the networks it is attached to whose name starts with ``pan-``. An optional CoAP proxy
will be started from :meth:`BorderRouterRole.start`.

For a PAN with ``medium: radio`` the node runs the PAN's radio medium (testbed.node.radio.attach,
started by the node before its routes): a ZEP hub on the router's carrier address, and a TUN
``lowpan<i>`` with the router's PAN address that the kernel forwards to and from like any
interface; its ``link-show``/``link-set``/``link-reset`` actions change the PAN's frame loss live.

It installs an nftables forward chain at start (testbed.node.policy): always the guards (no
IPv4, no forged source addresses per ingress interface, nothing from or to mgmt), and with a
``policy-forward`` attribute (a topology with ``policies:``) the cross-domain rules; it exports
testbed_policy_dropped_packets_total{rule} and answers ``policy-show``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from testbed.node import metric_catalogue as catalogue
from testbed.node.policy.firewall import PolicyFirewall
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

    def facts(self) -> dict[str, Any]:
        return {"pans": self.pans, "forwarding": self.config.forwarding}

    def state(self) -> dict[str, Any]:
        return {**self.facts(), "policy": self.policy.snapshot()}

    def actions(self) -> Mapping[str, Action]:
        return self.policy.actions()

    def register_metrics(self, registry: CollectorRegistry) -> None:
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
        await self.policy.start()
