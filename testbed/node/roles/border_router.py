"""The border router (6LBR): routes between its PANs, the backbone and the Internet.

The PANs it serves come from the planner's ``pans`` attribute (comma-separated names); without
it, from the networks it is attached to whose name starts with ``pan-``. With a ``proxy``
attribute (a topology router with ``proxy``) it runs the CoAP proxy (testbed.node.proxy:
end to end on 5683, hop by hop on 5684; actions ``proxy-show`` and ``proxy-tamper``).

For a PAN with ``medium: radio`` the node runs the PAN's radio medium (testbed.node.radio.attach,
started by the node before its routes): a ZEP hub on the router's carrier address, and a TUN
``lowpan<i>`` with the router's PAN address that the kernel forwards to and from like any
interface; its ``link-show``/``link-set``/``link-reset`` actions change the PAN's frame loss live.

It relays group commands (testbed.node.coap.group_relay): a Group OSCORE datagram sent to its
address on a PAN, port 5690, goes out once to ff05::fd on that PAN (``group-relay``: "off"
disables it); ``state`` counts what it relayed and refused.

It installs an nftables forward chain at start (testbed.node.firewall): always the guards (no
IPv4, no forged source addresses per ingress interface, nothing from or to mgmt), and with a
``policy-forward`` attribute (a topology with ``policies:``) the cross-domain rules; it exports
testbed_policy_dropped_packets_total{rule} and answers ``policy-show``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from testbed.contracts.node_config import Attr
from testbed.contracts.proxy import ATTRIBUTE as PROXY_ATTRIBUTE
from testbed.contracts.proxy import ProxyConfig, ProxyConfigError
from testbed.contracts.radio import pan_address
from testbed.node import declared_metrics as declared
from testbed.node.coap.group_relay import GroupRelay
from testbed.node.errors import ActionError, ConfigError
from testbed.node.firewall.firewall import PolicyFirewall
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
        declared = self.attribute(Attr.PANS)
        self.pans = (
            sorted(p.strip() for p in declared.split(",") if p.strip())
            if declared is not None
            else self.attached
        )
        self.policy = PolicyFirewall.for_node(self.config, self.log)
        self.proxy_config = _proxy_config(self.attribute(PROXY_ATTRIBUTE))
        self.proxy: Any = None  # testbed.node.proxy.service.CoapProxy once started
        self._registry: CollectorRegistry | None = None
        self.group_relay: GroupRelay | None = None
        if self.attribute(Attr.GROUP_RELAY) != "off":
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
        policy = {"policy": self.policy.snapshot()}
        proxy = {"proxy": self.proxy.snapshot()} if self.proxy is not None else {}
        relay = {"group_relay": self.group_relay.snapshot()} if self.group_relay else {}
        return {**self.facts(), **policy, **proxy, **relay}

    def actions(self) -> Mapping[str, Action]:
        actions = dict(self.policy.actions())
        if self.proxy_config is not None:
            actions.update({"proxy-show": self._proxy_show, "proxy-tamper": self._proxy_tamper})
        return actions

    def register_metrics(self, registry: CollectorRegistry) -> None:
        self.policy.register_metrics(registry)
        declared.gauge("testbed_border_router_served_pans", registry).set(len(self.pans))
        self._registry = registry

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
        if self.group_relay is not None:
            await self.group_relay.start()  # a PAN it cannot serve is reported, not fatal
        if self.proxy_config is not None:
            await self._start_proxy(self.proxy_config)

    async def _start_proxy(self, config: ProxyConfig) -> None:
        # Imported here: a router without a proxy never loads the CoAP and DTLS stacks.
        from testbed.node.proxy.inspect import ProxyMetrics
        from testbed.node.proxy.service import CoapProxy

        proxy = CoapProxy(
            config,
            name=self.config.node,
            material_root=self.ctx.material_root,
            metrics=ProxyMetrics(self._registry or CollectorRegistry()),
            log=self.log,
            firewall=bool(config.allowed_sources),
        )
        await proxy.start()
        self.proxy = proxy

    async def stop(self) -> None:
        if self.group_relay is not None:
            self.group_relay.close()
        await super().stop()
        if self.proxy is not None:
            await self.proxy.close()
            self.proxy = None

    def _running_proxy(self) -> Any:
        if self.proxy is None:
            raise ActionError("the proxy is not running", "wait until the node is ready")
        return self.proxy

    async def _proxy_show(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._running_proxy().actions()["proxy-show"](params))

    async def _proxy_tamper(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._running_proxy().actions()["proxy-tamper"](params))


def _proxy_config(raw: str | None) -> ProxyConfig | None:
    if not raw:
        return None
    try:
        return ProxyConfig.parse(raw)
    except ProxyConfigError as exc:
        raise ConfigError(str(exc), "the planner writes it from the router's proxy key") from exc
