"""The thing's lifecycle control actions, as the phases (Ansible) drive them.

Every action answers the ``status`` fields (lifecycle, reason, firmware, domain,
trust_center_uri, ldevid_serial, generation, bootstrap run) plus its own, and "changed".
Repeating a request that is already satisfied changes nothing and says so (changed false);
a request the lifecycle does not allow is a LifecycleError (HTTP 409) naming what would be.

    status          {}
    commission      {timeout=120}     installed|failed|bootstrapping -> ... -> operational|failed;
                                      waits; "timed_out" if still bootstrapping at the timeout
    rebootstrap     {timeout=120, older_than}
                                      operational|failed: wipe the operational identity, bootstrap
    rekey           {timeout=60, older_than}
                                      operational -> maintenance -> operational: new key, LDevID
                                      by renewal (/sren), new context generation
    firmware-update {version, image=version, timeout=120}
                                      operational -> maintenance -> operational
    decommission    {}                any but manufactured -> decommissioned, operational identity
                                      wiped (the factory identity is not on the volume)
    transfer        {trust_center_uri, trust_center_ccs (base64), domain}
                                      decommissioned -> installed under the new owner
    moved           {pan, address, reregister=true, timeout=120}
                                      after the host moved it to another PAN: re-register with
                                      the trust center by a new bootstrap (testbed.node.thing.moved)

``older_than`` (Unix seconds) makes rekey and rebootstrap idempotent for a playbook: they act
only if the current credentials were enrolled before that time (a phase passes its start).

Refusals and failures inside an operation are results, not errors: firmware-update answers
outcome "refused" with ``refusal`` (bad-signature, bad-manifest, digest-mismatch, downgrade,
wrong-model, version-mismatch, unavailable), rekey answers outcome "failed" with ``failure``;
both leave the old firmware or credentials in force, the thing operational, and the reason in
the lifecycle record ("firmware-update:<refusal>", "rekey:<failure>").
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from testbed.contracts.node_config import Attr
from testbed.node.errors import ActionError, LifecycleError, StateError
from testbed.node.firmware.updater import FirmwareUpdater
from testbed.node.lifecycle import (
    COMMISSIONABLE,
    MAINTAINABLE,
    REBOOTSTRAPPABLE,
    TRANSFERABLE,
    LifecycleState,
    check_transition,
)
from testbed.node.material import THING_VENDOR_CA, path
from testbed.node.roles.base import Action
from testbed.node.thing.bootstrapper import Bootstrapper
from testbed.node.thing.moved import moved
from testbed.node.thing.owner import transfer_params
from testbed.node.thing.profiles import profile_for
from testbed.node.thing.rekey import renew
from testbed.pki.firmware import check_image_name, parse_version

if TYPE_CHECKING:
    from testbed.node.thing.role import ThingRole

S = LifecycleState


def _seconds(params: dict[str, Any], name: str, default: float | None) -> float | None:
    value = params.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ActionError(f"parameter {name!r} must be a number of seconds")
    if value <= 0 and name != "older_than":
        raise ActionError(f"parameter {name!r} must be positive")
    return float(value)


def _illegal(what: str, state: LifecycleState, hint: str) -> LifecycleError:
    return LifecycleError(f"cannot {what} a {state.value} thing", hint)


class _Visit:
    """What a maintenance visit leaves in the lifecycle record when it ends (None: all well)."""

    reason: str | None = None


class ThingActions:
    def __init__(self, role: ThingRole) -> None:
        self.role = role

    def table(self) -> dict[str, Action]:
        return {
            "status": self.status,
            "commission": self.commission,
            "rebootstrap": self.rebootstrap,
            "rekey": self.rekey,
            "firmware-update": self.firmware_update,
            "decommission": self.decommission,
            "transfer": self.transfer,
            "moved": self.moved,
        }

    async def moved(self, params: dict[str, Any]) -> dict[str, Any]:
        return await moved(self, params)

    # -- helpers -------------------------------------------------------------------------------

    def _bootstrapper(self) -> Bootstrapper:
        bootstrapper = self.role.ensure_bootstrapper()
        if bootstrapper is None:
            raise ActionError(
                f"thing {self.role.config.node} has no trust center to bootstrap with",
                "the planner must set attribute 'trust-center-uri', or transfer the thing",
            )
        return bootstrapper

    async def _await(self, task: asyncio.Task[None], timeout: float) -> dict[str, Any]:
        await asyncio.wait({task}, timeout=timeout)
        return {**self.role.status(), "changed": True, "timed_out": not task.done()}

    def _unchanged(self, **extra: Any) -> dict[str, Any]:
        return {**self.role.status(), **extra, "changed": False}

    @contextlib.asynccontextmanager
    async def _maintenance(self, what: str) -> AsyncIterator[_Visit]:
        """operational -> maintenance (not serving) -> operational, serving what is current."""
        role = self.role
        role.move(S.MAINTENANCE, what)
        await role.stop_serving()
        visit = _Visit()
        try:
            yield visit
        finally:
            role.move(S.OPERATIONAL, visit.reason)
            await role.serve_current()

    def _enrolled_since(self, older_than: float | None) -> bool:
        """True if ``older_than`` is given and the current enrollment is not older."""
        if older_than is None:
            return False
        operational = self.role.store.load_operational()
        return operational is not None and operational.enrolled_at >= older_than

    # -- actions -------------------------------------------------------------------------------

    async def status(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.role.status()

    async def commission(self, params: dict[str, Any]) -> dict[str, Any]:
        timeout = _seconds(params, "timeout", 120.0)
        assert timeout is not None
        role = self.role
        async with role.lock:
            self._bootstrapper()
            state = role.lifecycle.state
            if state is S.OPERATIONAL:
                return self._unchanged()
            if state not in COMMISSIONABLE:
                hint = (
                    "transfer it to an owner first (action transfer)"
                    if state is S.DECOMMISSIONED
                    else "commission works from installed, bootstrapping or failed"
                )
                raise _illegal("commission", state, hint)
            task = await role.start_bootstrap()
        return await self._await(task, timeout)

    async def rebootstrap(self, params: dict[str, Any]) -> dict[str, Any]:
        timeout = _seconds(params, "timeout", 120.0)
        older_than = _seconds(params, "older_than", None)
        assert timeout is not None
        role = self.role
        async with role.lock:
            self._bootstrapper()
            state = role.lifecycle.state
            if state not in REBOOTSTRAPPABLE:
                raise _illegal("re-bootstrap", state, "from operational or failed")
            if state is S.OPERATIONAL and self._enrolled_since(older_than):
                return self._unchanged()
            await role.cancel_bootstrap()
            await role.stop_serving()
            # Moved first, then wiped: a crash in between restarts a bootstrap (the state says
            # bootstrapping) that replaces whatever is left.
            role.move(S.BOOTSTRAPPING, "rebootstrap")
            role.store.wipe()
            task = await role.start_bootstrap()
        return await self._await(task, timeout)

    async def rekey(self, params: dict[str, Any]) -> dict[str, Any]:
        timeout = _seconds(params, "timeout", 60.0)
        older_than = _seconds(params, "older_than", None)
        assert timeout is not None
        role = self.role
        async with role.lock:
            bootstrapper = self._bootstrapper()
            state = role.lifecycle.state
            if state not in MAINTAINABLE:
                raise _illegal("rekey", state, "rekey works on an operational thing")
            before = role.status()
            if before["ldevid_serial"] is None:
                raise ActionError("no operational credentials to renew", "use rebootstrap")
            if self._enrolled_since(older_than):
                return self._unchanged(outcome="unchanged")
            profile = profile_for(role.profile_name, role.report, renewal=True)
            async with self._maintenance("rekey") as visit:
                renewed = await renew(bootstrapper, profile, role.store, timeout)
                if renewed.operational is None:
                    visit.reason = f"rekey:{renewed.reason}"
            assert role.metrics is not None
            outcome = "failed" if renewed.operational is None else "renewed"
            role.metrics.rekeys.labels(outcome, renewed.reason).inc()
            role.log.info("thing.rekey", outcome=outcome, reason=renewed.reason)
        return {
            **role.status(),
            "changed": renewed.operational is not None,
            "outcome": outcome,
            "failure": None if renewed.operational is not None else renewed.reason,
            "detail": renewed.result.detail,
            "previous_ldevid_serial": before["ldevid_serial"],
            "previous_generation": before["generation"],
            "duration_s": round(renewed.result.duration_s, 3),
        }

    def _updater(self) -> FirmwareUpdater:
        role = self.role
        cloud = role.attribute(Attr.VENDOR_CLOUD_URI)
        if cloud is None:
            raise ActionError(
                f"thing {role.config.node} does not know a vendor cloud",
                "the planner sets attribute 'vendor-cloud-uri' when the topology has a "
                "vendor-cloud host",
            )
        updater = FirmwareUpdater(
            vendor=role.attribute(Attr.VENDOR) or "",
            model=role.attribute(Attr.MODEL) or "",
            vendor_ca_cert=path(THING_VENDOR_CA, role.material_root),
            cloud_uri=cloud,
            store=role.firmware,
            block_size=role.block_size,
        )
        try:
            updater.vendor_key()
        except StateError as exc:
            raise ActionError(exc.message, exc.hint) from exc
        return updater

    async def firmware_update(self, params: dict[str, Any]) -> dict[str, Any]:
        version, image = params.get("version"), params.get("image", params.get("version"))
        example = '{"version": "2.0.0"} or {"version": "2.0.0", "image": "2.0.0-tampered"}'
        if not isinstance(version, str) or not isinstance(image, str):
            raise ActionError("parameter 'version' (and 'image', if given) must be text", example)
        try:
            parse_version(version)
            check_image_name(image)
        except ValueError as exc:
            raise ActionError(str(exc), example) from exc
        timeout = _seconds(params, "timeout", 120.0)
        assert timeout is not None
        role = self.role
        updater = self._updater()
        assert role.metrics is not None
        async with role.lock:
            state = role.lifecycle.state
            if state not in MAINTAINABLE:
                raise _illegal("update the firmware of", state, "updates need an operational thing")
            if updater.precheck(version) == "unchanged":
                role.metrics.firmware_updates.labels("unchanged", "none").inc()
                return self._unchanged(outcome="unchanged", refusal=None, requested=version)
            async with self._maintenance("firmware-update") as visit:
                result = await updater.update(version, image, timeout)
                if result.outcome == "refused":
                    visit.reason = f"firmware-update:{result.reason}"
            role.metrics.firmware_updates.labels(result.outcome, result.reason or "none").inc()
            role.metrics.installed(role.firmware.installed().version)
            role.log.info(
                "thing.firmware_update",
                outcome=result.outcome,
                refusal=result.reason,
                detail=result.detail,
                firmware=result.firmware,
                requested=version,
                image=image,
            )
        return {**role.status(), **result.to_dict()}

    async def decommission(self, params: dict[str, Any]) -> dict[str, Any]:
        role = self.role
        async with role.lock:
            state = role.lifecycle.state
            if state is S.DECOMMISSIONED:
                # Idempotent, and it finishes a wipe a crash may have interrupted.
                wiped = role.store.wipe()
                return {**role.status(), "changed": wiped}
            check_transition(state, S.DECOMMISSIONED)
            await role.cancel_bootstrap()
            await role.stop_serving()
            role.move(S.DECOMMISSIONED, None)
            role.store.wipe()
            role.log.info("thing.decommissioned", previous=state.value)
        return {**role.status(), "changed": True}

    async def transfer(self, params: dict[str, Any]) -> dict[str, Any]:
        domain, uri, ccs = transfer_params(params)
        role = self.role
        async with role.lock:
            state = role.lifecycle.state
            owner = role.owner
            if (
                state is not S.DECOMMISSIONED
                and owner.transferred_at is not None
                and owner.same_transfer(domain, uri, ccs)
            ):
                return self._unchanged()
            if state not in TRANSFERABLE:
                raise _illegal(
                    "transfer",
                    state,
                    "decommission it first (its current owner also revokes it at its trust center)",
                )
            role.new_owner(role.owners.transfer(domain, uri, ccs))
            role.move(S.INSTALLED, "transferred")
            role.log.info("thing.transferred", domain=domain, trust_center_uri=uri)
        return {**role.status(), "changed": True}
