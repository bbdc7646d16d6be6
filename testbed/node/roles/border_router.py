"""The border router (6LBR): routes between its PANs, the backbone and the Internet.

The PANs it serves come from the planner's ``pans`` attribute (comma-separated names); without
it, from the networks it is attached to whose name starts with ``pan-``. An optional CoAP proxy
will be started from :meth:`BorderRouterRole.start`.

For a PAN with ``medium: radio`` the node runs the PAN's radio medium (testbed.node.radio.attach,
started by the node before its routes): a ZEP hub on the router's carrier address, and a TUN
``lowpan<i>`` with the router's PAN address that the kernel forwards to and from like any
interface; its ``link-show``/``link-set``/``link-reset`` actions change the PAN's frame loss live.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from testbed.node.roles.base import Role, RoleContext

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

    def facts(self) -> dict[str, Any]:
        return {"pans": self.pans, "forwarding": self.config.forwarding}

    def register_metrics(self, registry: CollectorRegistry) -> None:
        Gauge(
            "testbed_border_router_served_pans",
            "Number of PANs this border router serves.",
            registry=registry,
        ).set(len(self.pans))

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
