"""The trust center of one operator domain (registrar / configuration entity).

The role is the node-facing shell of ``testbed.node.trust_center.service.TrustCenter``: it
reads the role facts (``domain``, ``trusted-vendors``), registers the metrics, starts the EDHOC
responder on [::]:5683 with the registry on the node's volume, and exposes the control actions
(each answers a JSON object with "changed"; see trust_center.service):

    import-device {voucher, idevid, ccs, serial?}   -> serial, state, changed, reinstated, ...
    revoke {serial, reason?}                        -> state "revoked", revoked_certificates,
                                                       crl_number, changed
    devices {}                                      -> {"devices": [{serial, name, state,
                                                       ldevid_serial, generation, ...}]}
    status {}                                       -> the node state (counts, CRL, refusals)

Material (keys, CAs, device records) is read from ``material_root``, /etc/testbed unless the
caller says otherwise (tests use a temporary directory).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from testbed.contracts.node_config import Attr
from testbed.node.errors import ActionError
from testbed.node.material import COAP_PORT
from testbed.node.roles.base import Action, Role, RoleContext
from testbed.node.trust_center.defences import parse_defences
from testbed.node.trust_center.dtls_server import COAPS_PORT
from testbed.node.trust_center.metrics import TrustCenterMetrics
from testbed.node.trust_center.profiles import servers_for
from testbed.node.trust_center.scope import parse_scope
from testbed.node.trust_center.service import TrustCenter
from testbed.node.trust_center.trust import parse_vendor_list


class TrustCenterRole(Role):
    name = "trust_center"
    required_attributes = ("domain",)

    def __init__(
        self,
        ctx: RoleContext,
        *,
        material_root: Path | None = None,
        bind: tuple[str, int] = ("::", COAP_PORT),
        coaps_port: int | None = None,
    ) -> None:
        super().__init__(ctx)
        self.material_root = ctx.material_root if material_root is None else Path(material_root)
        self.bind = bind
        # The DTLS profiles' CoAPS server, on the same address: 5684 beside CoAP on 5683,
        # otherwise (tests, several trust centers on one host) any free port unless given.
        if coaps_port is None:
            coaps_port = COAPS_PORT if bind[1] == COAP_PORT else 0
        self.coaps_port = coaps_port
        self.metrics: TrustCenterMetrics | None = None
        self.service: TrustCenter | None = None
        # Backends the cross-domain policy restricts see only their things in /things.
        self.backend_scope = parse_scope(self.attribute(Attr.POLICY_BACKENDS))
        self.defences = parse_defences(self.config.attributes)

    @property
    def domain(self) -> str:
        return str(self.attribute(Attr.DOMAIN))

    def trusted_vendors(self) -> list[str] | None:
        return parse_vendor_list(self.config.attributes.get(Attr.TRUSTED_VENDORS))

    def facts(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "trusted_vendors": self.trusted_vendors() or [],
            "defences": self.defences.to_dict(),
        }

    def state(self) -> dict[str, Any]:
        state = self.facts()
        if self.service is not None:
            state.update(self.service.state())
        return state

    def register_metrics(self, registry: CollectorRegistry) -> None:
        self.metrics = TrustCenterMetrics(registry, self.domain)

    def actions(self) -> Mapping[str, Action]:
        return {
            "import-device": self._import_device,
            "revoke": self._revoke,
            "devices": self._devices,
            "status": self._status,
        }

    async def start(self) -> None:
        service = TrustCenter(
            material_root=self.material_root,
            state_dir=self.ctx.state_dir,
            domain=self.domain,
            trusted_vendors=self.trusted_vendors(),
            log=self.log,
            metrics=self.metrics,
            bind=self.bind,
            on_fatal=self.ctx.fatal,
            backend_scope=self.backend_scope,
            coaps_bind=(self.bind[0], self.coaps_port)
            if "coaps" in servers_for(self.config.attributes.get(Attr.PROFILES))
            else None,
            defences=self.defences,
        )
        await service.start()
        self.service = service

    async def stop(self) -> None:
        await super().stop()
        if self.service is not None:
            await self.service.stop()

    async def _import_device(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._running().import_device(params)

    async def _revoke(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._running().revoke(params)

    async def _devices(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"devices": self._running().devices_list(), "changed": False}

    async def _status(self, params: dict[str, Any]) -> dict[str, Any]:
        self._running()
        return {**self.state(), "changed": False}

    def _running(self) -> TrustCenter:
        if self.service is None:
            raise ActionError("the trust center is not running", "wait until the node is ready")
        return self.service
