"""A host on the Internet side: the backend service, a vendor cloud, or the attacker.

``kind`` selects what it will run: backend polling and commanding things end to end; firmware
and voucher service for a vendor; DoS and eavesdropping tools for the attacker.

A backend with trust centers (attribute ``trust-centers``: "domain=coap://[addr]:port,...")
runs ``testbed.node.backend.Backend``. Without that attribute it is inert (facts only). Actions
of a running backend:

    read {thing, resource[, via]}        protected GET -> value, code, latency_s
    write {thing, resource, payload[, via]}
                                         protected PUT of the JSON payload as CBOR
                                         via: direct (default), proxy (OSCORE end to end
                                         through the thing's border router's proxy),
                                         proxy-dtls (DTLS hop by hop through it)
    probe-unprotected {thing, resource}  plain CoAP GET -> the code (a thing answers 4.01)
    probe-replay {thing, resource}       one protected GET, its datagram re-sent from a fresh
                                         socket -> the replay's code (4.01 Replay detected)
    status {}                            the backend's state (things, generations, polls)

Optional attributes: poll-interval (2 s) and read-interval (5 s) (a backend's ``poll_interval``
and ``read_interval`` in the topology), request-timeout (10 s),
proxies (the border routers' CoAP proxies, testbed.contracts.proxy.ProxyRoute as JSON).

A vendor cloud serves the firmware releases of its material over CoAP on
[``coap-bind``]:``coap-port`` (default [::]:5683; testbed.node.firmware.cloud); action
``status`` lists them. The attacker runs attacks by name (testbed.node.attacker): actions
``attack-start {attack, ...}``, ``attack-stop {attack}``, ``attack-status``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from testbed.contracts.node_config import Attr
from testbed.contracts.proxy import BACKEND_ATTRIBUTE, ProxyConfigError, ProxyRoute, parse_routes
from testbed.node import material
from testbed.node.errors import ActionError, ConfigError
from testbed.node.roles.base import Action, Role, RoleContext

if TYPE_CHECKING:
    from testbed.node.attacker.service import AttackerService
    from testbed.node.backend.service import Backend
    from testbed.node.firmware.cloud import VendorCloud


class HostKind(StrEnum):
    BACKEND = "backend"
    VENDOR_CLOUD = "vendor-cloud"
    ATTACKER = "attacker"


class InternetHostRole(Role):
    name = "internet_host"
    required_attributes = ("kind",)

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        raw = self.config.attributes[Attr.KIND]
        try:
            self.kind = HostKind(raw)
        except ValueError:
            raise ConfigError(
                f"internet host {self.config.node} has unknown kind {raw!r}",
                "attribute 'kind' must be one of: " + ", ".join(k.value for k in HostKind),
            ) from None
        self.material_root = ctx.material_root  # beside node.json: /etc/testbed
        self.trust_centers: dict[str, str] = {}
        if self.kind is HostKind.BACKEND and self.attribute(Attr.TRUST_CENTERS):
            try:
                self.trust_centers = material.parse_trust_centers(
                    self.config.attributes[Attr.TRUST_CENTERS]
                )
            except ValueError as exc:
                raise ConfigError(str(exc), 'write "domain=coap://[addr]:port,..."') from None
        self.intervals = {
            "poll_interval": self.number_attribute(Attr.POLL_INTERVAL, 2.0, positive=True),
            "read_interval": self.number_attribute(Attr.READ_INTERVAL, 5.0, positive=True),
            "timeout": self.number_attribute("request-timeout", 10.0, positive=True),
        }
        self.proxies: list[ProxyRoute] = []
        if self.kind is HostKind.BACKEND and self.attribute(BACKEND_ATTRIBUTE):
            try:
                self.proxies = parse_routes(self.config.attributes[BACKEND_ATTRIBUTE])
            except ProxyConfigError as exc:
                raise ConfigError(
                    str(exc), "the planner writes it from the routers' proxy"
                ) from exc
        self._registry: CollectorRegistry | None = None
        self.backend: Backend | None = None
        self.cloud: VendorCloud | None = None
        self.attacker: AttackerService | None = None

    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"kind": self.kind.value}
        if self.kind is HostKind.VENDOR_CLOUD and self.attribute(Attr.VENDOR):
            facts["vendor"] = self.attribute(Attr.VENDOR)
        return facts

    def state(self) -> dict[str, Any]:
        state = self.facts()
        if self.backend is not None:
            state["backend"] = self.backend.state()
        if self.cloud is not None:
            state["vendor_cloud"] = self.cloud.state()
        if self.attacker is not None:
            state["attacker"] = self.attacker.status()
        return state

    def register_metrics(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    async def start(self) -> None:
        if self.kind is HostKind.VENDOR_CLOUD:
            await self._start_cloud()
        if self.kind is HostKind.ATTACKER:
            from testbed.node.attacker.service import AttackerService

            self.attacker = AttackerService(self.config.attributes, self._registry, self.log)
        if not self.trust_centers:
            return
        # Imported here: an attacker or vendor cloud never loads the CoAP stack for nothing.
        from testbed.node.backend.metrics import BackendMetrics
        from testbed.node.backend.service import Backend
        from testbed.node.coap.errors import CredentialError

        backend = Backend(
            trust_centers=self.trust_centers,
            material_root=self.material_root,
            state_dir=self.ctx.state_dir,
            metrics=BackendMetrics(self._registry or CollectorRegistry()),
            log=self.log,
            proxies=self.proxies,
            name=self.config.node,
            **self.intervals,
        )
        try:
            await backend.start(self.spawn)
        except (CredentialError, OSError) as exc:
            await backend.stop()
            raise ConfigError(
                f"backend {self.config.node} cannot load its EDHOC material: {exc}",
                "the host needs identity/host.key.cbor, identity/host.ccs.cbor and "
                "trust-centers/<domain>.ccs.cbor for every domain in 'trust-centers'",
            ) from exc
        self.backend = backend
        self.log.info("backend.started", trust_centers=sorted(self.trust_centers))

    async def _start_cloud(self) -> None:
        from testbed.node.firmware.cloud import VendorCloud

        port = self.attribute(Attr.COAP_PORT)
        try:
            bind = (self.attribute(Attr.COAP_BIND) or "::", int(port or material.COAP_PORT))
        except ValueError:
            raise ConfigError(f"attribute coap-port={port!r} is not a port number") from None
        cloud = VendorCloud(self.material_root, bind, self._registry)
        await cloud.start()
        self.cloud = cloud
        self.log.info("vendor_cloud.serving", port=cloud.port, releases=len(cloud.releases))

    async def stop(self) -> None:
        await super().stop()
        if self.backend is not None:
            await self.backend.stop()
            self.backend = None
        if self.cloud is not None:
            await self.cloud.stop()
            self.cloud = None
        if self.attacker is not None:
            await self.attacker.close()
            self.attacker = None

    def actions(self) -> Mapping[str, Action]:
        if self.kind is HostKind.VENDOR_CLOUD:
            return {"status": self._status}
        if self.kind is HostKind.ATTACKER:
            return {
                "attack-start": self._attack_start,
                "attack-stop": self._attack_stop,
                "attack-status": self._attack_status,
                "status": self._status,
            }
        if not self.trust_centers:
            return {}
        return {
            "read": self._read,
            "write": self._write,
            "probe-unprotected": self._probe_unprotected,
            "probe-replay": self._probe_replay,
            "group": self._group,
            "status": self._status,
        }

    def _attacks(self) -> AttackerService:
        if self.attacker is None:
            raise ActionError("the attacker is not running", "wait until the node is ready")
        return self.attacker

    async def _attack_start(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._attacks().start(params)

    async def _attack_stop(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._attacks().stop(params)

    async def _attack_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self._attacks().status(), "changed": False}

    async def _status(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self.state(), "changed": False}

    def _running(self) -> Backend:
        if self.backend is None:
            raise ActionError("the backend is not running", "wait until the node is ready")
        return self.backend

    async def _read(self, params: dict[str, Any]) -> dict[str, Any]:
        backend = self._running()
        peer, resource = await backend.peer(params)
        via = params.get("via", "direct")
        if via != "direct":
            return {**await backend.proxied(peer, resource, str(via)), "changed": False}
        return {**await backend.request(peer, resource), "changed": False}

    async def _write(self, params: dict[str, Any]) -> dict[str, Any]:
        backend = self._running()
        peer, resource = await backend.peer(params)
        if "payload" not in params:
            raise ActionError("missing parameter 'payload'", '{"payload": 22.5} (sent as CBOR)')
        via = params.get("via", "direct")
        if via != "direct":
            result = await backend.proxied(peer, resource, str(via), params["payload"], write=True)
        else:
            result = await backend.request(peer, resource, params["payload"], write=True)
        return {**result, "changed": result["outcome"] == "ok"}

    async def _group(self, params: dict[str, Any]) -> dict[str, Any]:
        """One group command: {"relay": border router's PAN address, "domain", "path",
        "value"} (testbed.node.backend.group); domain defaults to the only one."""
        backend = self._running()
        missing = [k for k in ("relay", "path", "value") if k not in params]
        if missing:
            raise ActionError(
                f"missing parameter(s) {', '.join(missing)}",
                '{"relay": "<router address on the PAN>", "path": "light", "value": {"on": false}}',
            )
        domain = params.get("domain")
        if domain is None:
            if len(self.trust_centers) != 1:
                raise ActionError("several domains: say which", '{"domain": "..."}')
            domain = next(iter(self.trust_centers))
        if str(domain) not in backend.commander.grants:
            # A member got the key since the last poll (right after `up`): ask now.
            await asyncio.gather(*(backend.poll(d) for d in backend.directories))
        result = await backend.commander.send(
            str(domain), str(params["relay"]), str(params["path"]), params["value"]
        )
        return {**result, "changed": True}

    async def _probe_unprotected(self, params: dict[str, Any]) -> dict[str, Any]:
        backend = self._running()
        peer, resource = await backend.peer(params)
        return await backend.probe_unprotected(peer, resource)

    async def _probe_replay(self, params: dict[str, Any]) -> dict[str, Any]:
        backend = self._running()
        peer, resource = await backend.peer(params)
        return await backend.probe_replay(peer, resource)
