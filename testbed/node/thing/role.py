"""The thing: a constrained device of some vendor, owned by some operator domain.

It keeps its lifecycle state on its volume. A thing that knows its trust center (attribute
``trust-center-uri``, or the owner an ownership transfer recorded on its volume) bootstraps
itself in the background when it starts installed (or bootstrapping: it crashed mid-way),
unless ``auto-commission`` is "false", with the profile its ``profile`` attribute names. Once
operational it serves its device class's resources on UDP [``coap-bind``]:``coap-port``
(default [::]:5683), only through the backend OSCORE context the trust center handed out
(testbed.node.thing), and to commanders' signed group requests to ff05::fd on its PAN through
the domain's group context (testbed.node.thing.group_member).

Actions (the lifecycle ones are testbed.node.thing.actions; they return the ``status`` fields
plus their own, always with "changed"):
    status {}                     the status record (testbed.node.thing.status: lifecycle,
                                  reason, firmware, domain, ...), bootstrap run
    commission {timeout}          bootstrap now and wait for operational or failed
    bootstrap {}                  start a bootstrap now (or cut a retry wait short); from
                                  operational this is a re-bootstrap (serving stops meanwhile)
    firmware-update {version, image, timeout}, rekey {timeout, older_than},
    rebootstrap {timeout, older_than}, decommission {}, transfer {trust_center_uri,
    trust_center_ccs, domain}
    transition {"to": STATE}      move the lifecycle by hand (experiments, phases)
    stimulate {resource, value}   change the simulated world (smoke, a warm room)

Optional attributes (numbers, for experiments and tests): bootstrap-timeout (s, per attempt),
bootstrap-retry-initial and bootstrap-retry-max (s), coap-port, coap-bind, serial,
vendor-cloud-uri (where firmware comes from), firmware-block-size (bytes, default 64),
operation-dtls-identity (behind a hop-by-hop proxy: serve the resources over DTLS too, to
that PSK identity; testbed.node.thing.dtls_server) and coaps-port (default 5684).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from testbed.contracts.node_config import Attr
from testbed.contracts.profiles import DEFAULT_PROFILE
from testbed.contracts.proxy import COAPS_PORT, THING_IDENTITY_ATTRIBUTE
from testbed.errors import TestbedError
from testbed.node import declared_metrics as declared
from testbed.node import enrollment_api as api
from testbed.node import material
from testbed.node.bootstrap.profile import BootstrapProfile, TrustCenterRef
from testbed.node.coap.group import ALL_COAP_NODES_SITE
from testbed.node.enrollment_api import is_backend_purpose
from testbed.node.errors import ActionError, ConfigError, StateError
from testbed.node.firmware import api as fwapi
from testbed.node.firmware.updater import FirmwareStore
from testbed.node.lifecycle import BOOTSTRAPPABLE, LifecycleState, LifecycleStore
from testbed.node.roles.base import Action, Role, RoleContext
from testbed.node.thing import catalog, group_member, physics
from testbed.node.thing.actions import ThingActions
from testbed.node.thing.bootstrapper import Bootstrapper, RetryPolicy
from testbed.node.thing.metrics import ThingMetrics
from testbed.node.thing.oscore_server import ThingServer
from testbed.node.thing.owner import Owner, OwnerStore
from testbed.node.thing.profiles import profile_for
from testbed.node.thing.resources import RequestLog
from testbed.node.thing.status import ThingStatus
from testbed.node.thing.store import Operational, ThingStore

if TYPE_CHECKING:
    from testbed.node.thing.dtls_server import ThingDtlsServer

STATE_FILE = "state.json"
S = LifecycleState


class ThingRole(Role):
    name = "thing"
    # domain is not required: a manufactured or decommissioned thing has no owner.
    required_attributes = ("vendor", "model")

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        self.material_root = ctx.material_root  # beside node.json: /etc/testbed
        self.lifecycle = LifecycleStore(ctx.state_dir / STATE_FILE)
        self.store = ThingStore(ctx.state_dir)
        self.owners = OwnerStore(ctx.state_dir, self.material_root, self.config.attributes)
        self.owner = self.owners.current()
        self.firmware = FirmwareStore(ctx.state_dir, self.attribute(Attr.FIRMWARE))
        self._state_gauge: Gauge | None = None
        self._transitions: Counter | None = None
        self.metrics: ThingMetrics | None = None
        # Where the thing is after `testbed move` (pan, address, moved_at); None: as planned.
        self.placement: dict[str, Any] | None = None
        self.device_class = self.attribute(Attr.DEVICE_CLASS) or "sensor"
        self.bind = (
            self.attribute(Attr.COAP_BIND) or "::",
            int(self.number_attribute("coap-port", material.COAP_PORT)),
        )
        # What the trust center's /things will list for the backend to reach us by.
        self.report = {api.Q_NAME: self.config.node, api.Q_DEVICE_CLASS: self.device_class}
        if self.bind[1] not in (0, material.COAP_PORT):  # 0: not known before serving
            self.report[api.Q_PORT] = str(self.bind[1])
        self.profile_name = self.attribute(Attr.PROFILE) or DEFAULT_PROFILE
        self.profile: BootstrapProfile | None = None
        # A thing that is to bootstrap refuses a config it cannot work with right here (exit 2).
        if self.commissioning:
            self.profile = self._check_profile()
        self.block_size = int(
            self.number_attribute("firmware-block-size", fwapi.DEFAULT_BLOCK_SIZE)
        )
        try:
            fwapi.size_exponent(self.block_size)
        except ValueError as exc:
            raise ConfigError(f"attribute firmware-block-size: {exc}") from None
        self.policy = RetryPolicy(
            self.number_attribute("bootstrap-retry-initial", RetryPolicy.initial_s),
            self.number_attribute("bootstrap-retry-max", RetryPolicy.max_s),
        )
        timeout = self.attribute(Attr.BOOTSTRAP_TIMEOUT)
        self.timeout_s = None if timeout is None else self.number_attribute("bootstrap-timeout", 0)
        self.device = physics.device_for(
            self.device_class if self.device_class in physics.MODELS else "sensor",
            seed=self.config.node,
        )
        self.requests: RequestLog | None = None
        self.bootstrapper: Bootstrapper | None = None
        self.server: ThingServer | None = None
        # Behind a hop-by-hop proxy: the same resources over DTLS (PSK) to the proxy.
        self.dtls_server: ThingDtlsServer | None = None
        self._bootstrap_task: asyncio.Task[None] | None = None
        # One lifecycle operation at a time, also for in-process callers (the control endpoint
        # serializes actions already).
        self.lock = asyncio.Lock()
        self._serving = asyncio.Lock()
        self.operations = ThingActions(self)

    @property
    def commissioning(self) -> bool:
        return self.owner.trust_center_uri is not None

    def _check_profile(self) -> BootstrapProfile:
        if self.device_class not in catalog.DEVICE_CLASSES:
            raise ConfigError(
                f"thing {self.config.node} has unknown device-class {self.device_class!r}",
                "one of: " + ", ".join(catalog.DEVICE_CLASSES),
            )
        return profile_for(self.profile_name, self.report)

    def facts(self) -> dict[str, Any]:
        return {
            "vendor": self.attribute(Attr.VENDOR),
            "model": self.attribute(Attr.MODEL),
            "device_class": self.attribute(Attr.DEVICE_CLASS),  # sensor, actuator, luminaire...
            "domain": self.attribute(Attr.DOMAIN),
            "pan": self.placement["pan"] if self.placement else self.attribute(Attr.PAN),
            "profile": self.attribute(Attr.PROFILE),  # bootstrap profile, e.g. edhoc-oscore
            "firmware": self.attribute(Attr.FIRMWARE),
        }

    def state(self) -> dict[str, Any]:
        """The ``state`` section of GET /state: the planned facts, the status record (what
        holds now: installed firmware, current owner, lifecycle and its reason), and the
        sections that mean something only in some states."""
        record = self.lifecycle.record
        state: dict[str, Any] = {
            **self.facts(),
            **self.status_record().to_dict(),
            "lifecycle_since": record.since,
            "lifecycle_transitions": record.transitions,
        }
        if self.owner.transferred_at is not None:
            state["transferred_at"] = self.owner.transferred_at
        if self.placement is not None:
            state["placement"] = {**self.placement, "planned_pan": self.attribute(Attr.PAN)}
        if self.bootstrapper is not None:
            status = self.bootstrapper.status()
            state["bootstrap"] = status.pop("last")
            state["bootstrap_run"] = status
        if self.server is not None and self.server.serving and self.requests is not None:
            state["coap"] = {
                "port": self.server.port,
                "contexts": {p: c.generation for p, c in self.server.contexts.items()},
            }
            state["requests"] = self.requests.snapshot()
        return state

    def register_metrics(self, registry: CollectorRegistry) -> None:
        # One series per state, 1 for the current one (the StateSet pattern): a dashboard can
        # count things per state across the building with sum by (state).
        self._state_gauge = declared.gauge("testbed_thing_lifecycle_state", registry)
        self._transitions = declared.counter("testbed_thing_lifecycle_transitions", registry)
        self.metrics = ThingMetrics(registry, self._identity())

    def _identity(self) -> dict[str, str]:
        return {
            "vendor": self.attribute(Attr.VENDOR) or "",
            "model": self.attribute(Attr.MODEL) or "",
            "domain": self.owner.domain or "",
            "profile": self.profile_name,
        }

    async def start(self) -> None:
        record, created = self.lifecycle.load()
        self.log.info(
            "lifecycle.created" if created else "lifecycle.loaded",
            state=record.state.value,
            path=str(self.lifecycle.path),
        )
        self._publish_state()
        if self.metrics is None:  # started without a node (tests): metrics go nowhere
            self.metrics = ThingMetrics(CollectorRegistry(), self._identity())
        self.requests = RequestLog(self.metrics)
        self.metrics.installed(self.firmware.installed().version)
        self.ensure_bootstrapper()
        state = record.state
        if state is S.MAINTENANCE:
            # A maintenance operation died with the process. Each one leaves the previous
            # complete set (firmware, keys, contexts) in force until its switch, so the thing
            # goes back into operation with whatever is current.
            self._move(S.OPERATIONAL, "maintenance-interrupted")
            state = S.OPERATIONAL
        if state is S.DECOMMISSIONED and self.store.wipe():
            self.log.warning("thing.wiped_after_restart", detail="decommission was interrupted")
        if state is S.OPERATIONAL:
            await self.serve_current()
        elif state in (S.INSTALLED, S.BOOTSTRAPPING):
            if not self.commissioning:
                self.log.info("bootstrap.unconfigured", detail="no trust-center-uri attribute")
            elif self.attribute(Attr.AUTO_COMMISSION) == "false":
                self.log.info("bootstrap.waiting", detail="auto-commission is false")
            else:
                await self._bootstrap()

    async def stop(self) -> None:
        await super().stop()
        await self.stop_serving()

    def actions(self) -> Mapping[str, Action]:
        return {
            "transition": self._transition,
            "bootstrap": self._bootstrap_action,
            "stimulate": self._stimulate,
            **self.operations.table(),
        }

    # -- bootstrap ----------------------------------------------------------------------------

    def ensure_bootstrapper(self) -> Bootstrapper | None:
        """The bootstrapper for the current owner (None: no trust center to bootstrap with)."""
        if self.bootstrapper is None and self.commissioning:
            self.profile = self.profile or self._check_profile()
            assert self.metrics is not None
            self.bootstrapper = Bootstrapper(
                node=self.config.node,
                profile=self.profile,
                material_root=self.material_root,
                attributes=self.config.attributes,
                store=self.store,
                metrics=self.metrics,
                log=self.log,
                move=self._move,
                on_operational=self._serve,
                policy=self.policy,
                timeout_s=self.timeout_s,
                trust_center=self._trust_center,
            )
        return self.bootstrapper

    def _trust_center(self) -> TrustCenterRef:
        uri = self.owner.trust_center_uri
        assert uri is not None  # no bootstrapper without one
        # dtls-cert's anchor is the factory owner's domain CA (a transfer hands over a CCS only).
        anchor = material.path(material.TRUST_CENTER_CA, self.material_root)
        return TrustCenterRef(uri=uri, ccs=self.owner.trust_center_ccs, ca_certificate=anchor)

    def new_owner(self, owner: Owner) -> None:
        """After a transfer: bootstrap with the new trust center, label metrics with its domain."""
        self.owner = owner
        self.bootstrapper = None
        if self.metrics is not None:
            self.metrics.identity["domain"] = owner.domain or ""
        self.ensure_bootstrapper()

    @property
    def bootstrap_task(self) -> asyncio.Task[None] | None:
        task = self._bootstrap_task
        return None if task is None or task.done() else task

    async def start_bootstrap(self, reason: str | None = None) -> asyncio.Task[None]:
        """Start a bootstrap run (or cut the retry wait of the running one short)."""
        running = self.bootstrap_task
        if running is not None:
            assert self.bootstrapper is not None
            self.bootstrapper.kick()
            return running
        if self.lifecycle.state is not S.BOOTSTRAPPING:
            await self.stop_serving()
            self._move(S.BOOTSTRAPPING, reason)
        assert self.bootstrapper is not None
        task = self._bootstrap_task = self.bootstrapper.launch(self.spawn)
        return task

    async def cancel_bootstrap(self) -> None:
        task = self.bootstrap_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert self.bootstrapper is not None
            self.bootstrapper.stopped()

    async def _bootstrap(self) -> None:
        await self.start_bootstrap()

    async def _bootstrap_action(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.bootstrapper is None:
            raise ActionError(
                f"thing {self.config.node} has no trust center to bootstrap with",
                "the planner must set attribute 'trust-center-uri'",
            )
        if self.lifecycle.state not in BOOTSTRAPPABLE:
            raise ActionError(
                f"cannot bootstrap a {self.lifecycle.state.value} thing",
                "from: " + ", ".join(sorted(s.value for s in BOOTSTRAPPABLE)),
            )
        await self._bootstrap()
        return {**self.status(), "changed": True}

    def status_record(self) -> ThingStatus:
        """What the thing is now; the one place its status is built (testbed.node.thing.status)."""
        try:
            operational = self.store.load_operational()
        except StateError:
            operational = None  # /state and status must work on a damaged volume too
        record = self.lifecycle.record
        return ThingStatus(
            lifecycle=record.state,
            reason=record.reason,
            firmware=self.firmware.installed().version,
            domain=self.owner.domain,
            trust_center_uri=self.owner.trust_center_uri,
            ldevid_serial=None if operational is None else operational.ldevid.serial_number,
            generation=self.store.backend_generation(operational),
            group_generation=self.store.generation(operational, api.PURPOSE_GROUP),
        )

    def status(self) -> dict[str, Any]:
        """The ``status`` action's answer, and the common part of every lifecycle action's:
        the status record, "changed", and the bootstrap run where there is one."""
        status: dict[str, Any] = {**self.status_record().to_dict(), "changed": False}
        if self.bootstrapper is not None:
            status.update(self.bootstrapper.status())
        return status

    async def serve_current(self) -> None:
        """Serve with the operational material on the volume, if there is any."""
        operational = self.store.load_operational()
        if operational is not None:
            await self._serve(operational)
        else:
            self.log.warning("thing.no_operational_material", state=self.lifecycle.state.value)

    async def _serve(self, operational: Operational) -> None:
        # Serialized with stop_serving: the bootstrap task serves right after it moved to
        # operational, and an action may take the thing out of operation in that very moment.
        async with self._serving:
            await self._close_server()
            if self.lifecycle.state is not S.OPERATIONAL:
                return  # overtaken (maintenance, decommission): whoever did it serves later
            assert self.requests is not None
            # Only the pairwise backend contexts: the group key is shared by every member, so a
            # request under it could come from any of them (see trust_center.contexts).
            served = {p: d for p, d in operational.contexts.items() if is_backend_purpose(p)}
            # The group context only as Group OSCORE group mode: signed by a commander.
            group, multicast = self._group_membership(operational)
            server = ThingServer(
                self.device_class,
                self.device,
                self.requests,
                served,
                self.bind,
                group=group,
                multicast=multicast,
            )
            await server.start()
            self.server = server
            await self._serve_dtls(server)
            self.log.info(
                "thing.serving",
                port=server.port,
                device_class=self.device_class,
                contexts=sorted(served),
                stored=sorted(operational.contexts),
            )

    def _group_membership(self, operational: Operational) -> tuple[Any, list[tuple[str, str]]]:
        directory = operational.contexts.get(api.PURPOSE_GROUP)
        if directory is None:
            return None, []
        try:
            ctx = group_member.member_context(directory, self.material_root)
        except (TestbedError, OSError, ValueError) as exc:
            self.log.warning("thing.group_unusable", error=str(exc))
            return None, []
        if ctx is None:
            self.log.info("thing.group_without_commanders", directory=directory.name)
            return None, []
        interface = group_member.pan_interface(self.config)
        if interface is None:  # accepts group requests sent to its own address only
            self.log.warning("thing.group_not_joined", reason="no PAN interface found")
            return ctx, []
        return ctx, [(ALL_COAP_NODES_SITE, interface)]

    async def stop_serving(self) -> None:
        async with self._serving:
            await self._close_server()

    async def _serve_dtls(self, server: ThingServer) -> None:
        identity = self.attribute(THING_IDENTITY_ATTRIBUTE)
        if identity is None or server.site is None:
            return
        # Imported here: mbedtls is start-up CPU that a thing without a DTLS proxy never uses.
        from testbed.node.thing.dtls_server import ThingDtlsServer

        dtls = ThingDtlsServer(
            server.site,
            identity=identity,
            material_root=self.material_root,
            log=self.log,
            bind=(self.bind[0], int(self.number_attribute("coaps-port", COAPS_PORT))),
        )
        await dtls.start()
        self.dtls_server = dtls
        self.log.info("thing.serving_dtls", port=dtls.port, proxy=identity)

    async def _close_server(self) -> None:
        if self.dtls_server is not None:
            dtls, self.dtls_server = self.dtls_server, None
            await dtls.close()
        if self.server is not None:
            server, self.server = self.server, None
            await server.close()

    # -- other actions -----------------------------------------------------------------------

    async def _transition(self, params: dict[str, Any]) -> dict[str, Any]:
        """{"to": STATE}: move the lifecycle by hand (experiments, phases). Checked by the table."""
        if "to" not in params:
            raise ActionError("missing parameter 'to'", 'send {"to": "<lifecycle state>"}')
        try:
            target = LifecycleState(str(params["to"]))
        except ValueError:
            known = ", ".join(s.value for s in LifecycleState)
            raise ActionError(
                f"unknown lifecycle state {params['to']!r}", f"one of: {known}"
            ) from None
        before = self.lifecycle.state
        self._move(target, None)
        # Serving follows the state: a thing taken out of operation stops answering.
        if target is not S.OPERATIONAL:
            await self.stop_serving()
        elif self.server is None and (operational := self.store.load_operational()) is not None:
            await self._serve(operational)
        return {"from": before.value, "to": target.value}

    async def _stimulate(self, params: dict[str, Any]) -> dict[str, Any]:
        name, value = params.get("resource"), params.get("value")
        if not isinstance(name, str):
            raise ActionError("missing parameter 'resource'", '{"resource": "alarm", "value": 1}')
        try:
            now = self.device.stimulate(name, value)
        except KeyError:
            raise ActionError(f"a {self.device_class} has no resource {name!r}") from None
        except ValueError as exc:
            raise ActionError(f"value for {name}: {exc}") from None
        return {"resource": name, "value": now}

    # -- lifecycle bookkeeping ---------------------------------------------------------------

    def move(self, target: LifecycleState, reason: str | None = None) -> None:
        self._move(target, reason)

    def _move(self, target: LifecycleState, reason: str | None) -> None:
        before = self.lifecycle.state
        self.lifecycle.move(target, reason)
        if self._transitions is not None:
            self._transitions.labels(before.value, target.value).inc()
        self._publish_state()
        self.log.info(
            "lifecycle.transition", from_state=before.value, to_state=target.value, reason=reason
        )

    def _publish_state(self) -> None:
        if self._state_gauge is None:
            return
        for s in LifecycleState:
            self._state_gauge.labels(s.value).set(1 if s is self.lifecycle.state else 0)
