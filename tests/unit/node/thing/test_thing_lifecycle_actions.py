"""commission, rebootstrap, rekey and decommission against the real trust center and backend:
what changes on the thing, at the trust center and for the backend, and that each action is
idempotent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiocoap
import pytest
from cryptography import x509
from prometheus_client import CollectorRegistry

from testbed.node.errors import ActionError, LifecycleError
from testbed.node.lifecycle import LifecycleState as S
from testbed.node.lifecycle import LifecycleStore
from testbed.node.roles.internet_host import InternetHostRole
from testbed.node.thing import store
from testbed.node.thing.role import ThingRole
from testbed.node.trust_center.role import TrustCenterRole
from tests.unit.node.thing.world import (
    Client,
    MintedThing,
    World,
    by_name,
    eventually,
    listing,
    sample,
)


@dataclass
class Building:
    tc: TrustCenterRole
    thing: ThingRole
    minted: MintedThing
    backend: InternetHostRole | None


@asynccontextmanager
async def building(
    world: World, registry: CollectorRegistry | None = None, *, backend: bool = False
) -> AsyncIterator[Building]:
    minted = world.make_thing("thermostat-01")
    async with world.trust_center() as tc:
        role = world.thing_role(minted, registry or CollectorRegistry())
        await role.start()
        host = world.backend_role() if backend else None
        try:
            await eventually(lambda: role.lifecycle.state is S.OPERATIONAL)
            if host is not None:
                await host.start()
            yield Building(tc, role, minted, host)
        finally:
            if host is not None:
                await host.stop()
            await role.stop()


def volume_files(thing: MintedThing) -> set[str]:
    return {str(p.relative_to(thing.state)) for p in thing.state.rglob("*") if p.is_file()}


async def read(host: InternetHostRole, resource: str = "temperature") -> dict[str, Any]:
    return await host.actions()["read"]({"thing": "thermostat-01", "resource": resource})


# -- commission --------------------------------------------------------------------------------


def test_commission_waits_for_operational_and_is_idempotent(world: World) -> None:
    thing = world.make_thing("thermostat-01")

    async def scenario() -> list[dict[str, Any]]:
        async with world.trust_center():
            role = world.thing_role(thing, **{"auto-commission": "false"})
            await role.start()
            try:
                commission = role.actions()["commission"]
                return [await commission({}), await commission({"timeout": 5})]
            finally:
                await role.stop()

    first, second = asyncio.run(scenario())
    assert (first["changed"], first["timed_out"], first["lifecycle"]) == (
        True,
        False,
        "operational",
    )
    assert first["domain"] == "hvac" and first["trust_center_uri"] == world.tc_uri
    assert first["ldevid_serial"] is not None and first["generation"] == 1
    assert first["firmware"] == "1.0.0"
    assert (second["changed"], second["lifecycle"]) == (False, "operational")
    assert second["ldevid_serial"] == first["ldevid_serial"]


def test_commission_reports_a_timeout_and_a_refusal(world: World) -> None:
    thing = world.make_thing("thermostat-01")
    foreign = world.make_thing("thermostat-02", foreign_owner=True)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        role = world.thing_role(thing, **{"auto-commission": "false"})
        await role.start()  # no trust center is running
        try:
            waited = await role.actions()["commission"]({"timeout": 0.5})
        finally:
            await role.stop()
        async with world.trust_center():
            refused_role = world.thing_role(foreign, **{"auto-commission": "false"})
            await refused_role.start()
            try:
                refused = await refused_role.actions()["commission"]({"timeout": 10})
            finally:
                await refused_role.stop()
        return waited, refused

    waited, refused = asyncio.run(scenario())
    assert (waited["timed_out"], waited["lifecycle"], waited["changed"]) == (
        True,
        "bootstrapping",
        True,
    )
    assert (refused["lifecycle"], refused["reason"], refused["timed_out"]) == (
        "failed",
        "voucher-foreign-owner",
        False,
    )


# -- rekey -------------------------------------------------------------------------------------


def test_rekey_renews_ldevid_and_key_and_the_old_context_stops_working(world: World) -> None:
    registry = CollectorRegistry()

    async def scenario() -> dict[str, Any]:
        async with building(world, registry, backend=True) as b:
            assert b.backend is not None
            old_entry = (await listing(world))["thermostat-01"]
            await eventually(
                lambda: (
                    b.backend is not None
                    and b.backend.backend is not None
                    and "thermostat-01" in by_name(b.backend.backend)
                )
            )
            before_read = await read(b.backend)
            old_key = (b.minted.state / store.OPERATIONAL_KEY).read_bytes()
            result = await b.thing.actions()["rekey"]({})
            after_read = await read(b.backend)
            assert b.thing.server is not None
            async with Client(old_entry, world.tmp / "old-client", b.thing.server.port) as old:
                stale = await old.request(aiocoap.GET, "temperature")
            assert b.tc.service is not None
            revoked = {r.serial: r.reason for r in b.tc.service.registry.revoked_certificates()}
            devices = await b.tc.actions()["devices"]({})
            return {
                "result": result,
                "before_read": before_read,
                "after_read": after_read,
                "stale": stale,
                "key_changed": old_key != (b.minted.state / store.OPERATIONAL_KEY).read_bytes(),
                "revoked": revoked,
                "devices": devices,
                "files": volume_files(b.minted),
                "ldevid": x509.load_der_x509_certificate(
                    (b.minted.state / store.LDEVID).read_bytes()
                ),
            }

    out = asyncio.run(scenario())
    result = out["result"]
    assert (result["changed"], result["outcome"], result["failure"]) == (True, "renewed", None)
    assert result["ldevid_serial"] != result["previous_ldevid_serial"]
    assert (result["previous_generation"], result["generation"]) == (1, 2)
    assert (result["lifecycle"], result["reason"]) == ("operational", None)
    assert out["ldevid"].serial_number == result["ldevid_serial"]
    assert out["key_changed"] and store.NEXT_KEY not in out["files"]
    # The old LDevID is superseded at the trust center; the old context is gone on the thing.
    assert out["revoked"] == {result["previous_ldevid_serial"]: "superseded"}
    (device,) = out["devices"]["devices"]
    assert (device["generation"], device["ldevid_serial"]) == (2, result["ldevid_serial"])
    assert (out["stale"].code, out["stale"].protected) == ("4.01", False)
    context_dirs = {f.split("/")[1].rsplit("-", 1)[0] for f in out["files"] if "/" in f}
    assert context_dirs == {"backend:backend-1-g2", "group-g1"}
    # The backend read before and after, the second through the new generation.
    assert (out["before_read"]["outcome"], out["before_read"]["generation"]) == ("ok", 1)
    assert (out["after_read"]["outcome"], out["after_read"]["generation"]) == ("ok", 2)
    assert sample(registry, "testbed_thing_rekeys_total", outcome="renewed", reason="none") == 1
    passes = sample(
        registry,
        "testbed_thing_lifecycle_transitions_total",
        from_state="operational",
        to_state="maintenance",
    )
    assert passes == 1
    assert world.failures == []


def test_rekey_is_idempotent_with_older_than_and_fails_cleanly(world: World) -> None:
    registry = CollectorRegistry()

    async def scenario() -> list[dict[str, Any]]:
        async with building(world, registry) as b:
            rekey = b.thing.actions()["rekey"]
            phase_start = time.time() + 0.001
            first = await rekey({"older_than": phase_start})
            again = await rekey({"older_than": phase_start})
            # The trust center goes away: the rekey fails, the old credentials stay.
            await b.tc.stop()
            failed = await rekey({"timeout": 1})
            return [first, again, failed]

    first, again, failed = asyncio.run(scenario())
    assert first["changed"] and first["generation"] == 2
    assert (again["changed"], again["outcome"], again["generation"]) == (False, "unchanged", 2)
    assert (failed["changed"], failed["outcome"]) == (False, "failed")
    assert failed["failure"] in ("timeout", "unreachable")
    assert failed["ldevid_serial"] == first["ldevid_serial"] and failed["generation"] == 2
    assert (failed["lifecycle"], failed["reason"]) == ("operational", f"rekey:{failed['failure']}")
    labels = {"outcome": "failed", "reason": failed["failure"]}
    assert sample(registry, "testbed_thing_rekeys_total", **labels) == 1


# -- rebootstrap -------------------------------------------------------------------------------


def test_rebootstrap_discards_the_operational_identity_and_bootstraps_again(world: World) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], bytes, bytes, int]:
        async with building(world) as b:
            before = await b.thing.actions()["status"]({})
            old_key = (b.minted.state / store.OPERATIONAL_KEY).read_bytes()
            result = await b.thing.actions()["rebootstrap"]({"older_than": time.time() + 1})
            new_key = (b.minted.state / store.OPERATIONAL_KEY).read_bytes()
            assert b.tc.service is not None
            row = b.tc.service.registry.thing(b.minted.serial)
            assert row is not None
            return before, result, old_key, new_key, row.enrollments

    before, result, old_key, new_key, enrollments = asyncio.run(scenario())
    assert (result["changed"], result["timed_out"], result["lifecycle"]) == (
        True,
        False,
        "operational",
    )
    assert result["ldevid_serial"] != before["ldevid_serial"]
    assert result["generation"] == before["generation"] + 1
    assert old_key != new_key and enrollments == 2


def test_rebootstrap_is_idempotent_and_refused_where_it_makes_no_sense(world: World) -> None:
    thing = world.make_thing("thermostat-01")

    async def scenario() -> dict[str, Any]:
        async with world.trust_center():
            role = world.thing_role(thing, **{"auto-commission": "false"})
            await role.start()
            try:
                with pytest.raises(LifecycleError, match="installed"):
                    await role.actions()["rebootstrap"]({})
                await role.actions()["commission"]({})
                enrolled = time.time()
                return await role.actions()["rebootstrap"]({"older_than": enrolled - 60})
            finally:
                await role.stop()

    assert asyncio.run(scenario())["changed"] is False


# -- decommission ------------------------------------------------------------------------------


def test_decommission_wipes_the_thing_revokes_it_and_locks_out_the_backend(
    world: World,
) -> None:
    async def scenario() -> dict[str, Any]:
        async with building(world, backend=True) as b:
            assert b.backend is not None and b.backend.backend is not None
            backend = b.backend.backend
            await eventually(lambda: "thermostat-01" in by_name(backend))
            assert (await read(b.backend))["outcome"] == "ok"
            serial = (await b.thing.actions()["status"]({}))["ldevid_serial"]
            out: dict[str, Any] = {"serial": serial}
            out["first"] = await b.thing.actions()["decommission"]({})
            out["files"] = volume_files(b.minted)
            out["again"] = await b.thing.actions()["decommission"]({})
            # Before the trust center knows: the backend's request finds no thing serving.
            out["stale"] = await read(b.backend)
            revoke = b.tc.actions()["revoke"]
            out["revoked"] = await revoke({"serial": b.minted.serial})
            out["revoked_again"] = await revoke({"serial": b.minted.serial})
            assert b.tc.service is not None and b.tc.service._crl is not None
            out["crl"] = x509.load_der_x509_crl(b.tc.service._crl.current().der)
            await eventually(lambda: "thermostat-01" not in by_name(backend))
            with pytest.raises(ActionError, match="no operational thing"):
                await read(b.backend)
            out["listing"] = await listing(world)
            # The decommissioned thing is pointed at its old domain again and tries.
            owner = world.operator().transfer_params()
            await b.thing.actions()["transfer"](owner)
            out["retry"] = await b.thing.actions()["commission"]({"timeout": 10})
            out["devices"] = await b.tc.actions()["devices"]({})
            return out

    out = asyncio.run(scenario())
    first, again = out["first"], out["again"]
    assert (first["changed"], first["lifecycle"], first["ldevid_serial"]) == (
        True,
        "decommissioned",
        None,
    )
    assert (again["changed"], again["lifecycle"]) == (False, "decommissioned")
    # Operational identity gone; lifecycle and history kept; the factory identity is in the
    # (read-only) material and untouched.
    assert out["files"] == {"state.json", "bootstrap.json"}
    assert (world.things["thermostat-01"].material / "identity" / "device.key.pem").exists()
    assert out["stale"]["outcome"] in ("unreachable", "timeout", "refused")
    assert out["revoked"]["changed"] and out["revoked"]["revoked_certificates"] == [out["serial"]]
    assert out["revoked_again"]["changed"] is False
    entry = out["crl"].get_revoked_certificate_by_serial_number(out["serial"])
    assert entry is not None
    assert out["listing"] == {}
    retry = out["retry"]
    assert (retry["lifecycle"], retry["reason"]) == ("failed", "revoked")
    (device,) = out["devices"]["devices"]
    assert device["state"] == "revoked"


def test_decommission_cancels_a_running_bootstrap(world: World) -> None:
    thing = world.make_thing("thermostat-01")

    async def scenario() -> dict[str, Any]:
        role = world.thing_role(thing)  # no trust center: it keeps retrying
        await role.start()
        try:
            await eventually(lambda: role.bootstrap_task is not None)
            result = await role.actions()["decommission"]({})
            assert role.bootstrap_task is None
            with pytest.raises(LifecycleError, match="transfer"):
                await role.actions()["commission"]({})
            return result
        finally:
            await role.stop()

    result = asyncio.run(scenario())
    assert (result["changed"], result["lifecycle"], result["running"]) == (
        True,
        "decommissioned",
        False,
    )


# -- crashes -----------------------------------------------------------------------------------


def test_a_restart_finishes_what_a_crash_interrupted(world: World) -> None:
    thing = world.make_thing("thermostat-01")

    async def scenario() -> tuple[dict[str, Any], bool, dict[str, Any], bool]:
        async with world.trust_center():
            role = world.thing_role(thing)
            await role.start()
            await eventually(lambda: role.server is not None)
            await role.stop()
            # The process died in the middle of a maintenance operation.
            crashed = LifecycleStore(thing.state / "state.json")
            crashed.load()
            crashed.move(S.MAINTENANCE, "firmware-update")
            again = world.thing_role(thing)
            await again.start()
            recovered = await again.actions()["status"]({})
            serving = again.server is not None
            await again.actions()["decommission"]({})
            await again.stop()
            # ... and in the middle of a decommission: the state moved, the wipe did not run.
            (thing.state / store.OPERATIONAL_KEY).write_bytes(b"left over")
            third = world.thing_role(thing)
            await third.start()
            try:
                return recovered, serving, await third.actions()["status"]({}), bool(third.server)
            finally:
                await third.stop()

    recovered, serving, decommissioned, serving_after = asyncio.run(scenario())
    assert (recovered["lifecycle"], recovered["reason"]) == (
        "operational",
        "maintenance-interrupted",
    )
    assert serving and recovered["generation"] == 1
    assert decommissioned["lifecycle"] == "decommissioned" and not serving_after
    assert not (thing.state / store.OPERATIONAL_KEY).exists()
