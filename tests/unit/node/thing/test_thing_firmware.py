"""firmware-update: a vendor-signed image from the vendor cloud, verified before it is applied;
every refusal leaves the old firmware and an operational thing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry

from testbed.node.errors import ActionError, LifecycleError
from testbed.node.firmware import updater
from testbed.node.lifecycle import LifecycleState as S
from testbed.node.thing.role import ThingRole
from testbed.pki import firmware
from tests.unit.node.thing.world import MODEL, World, eventually, sample

T = TypeVar("T")


@asynccontextmanager
async def operational(
    world: World, registry: CollectorRegistry, **attributes: str
) -> AsyncIterator[ThingRole]:
    thing = world.make_thing("thermostat-01")
    async with world.trust_center(), world.vendor_cloud():
        role = world.thing_role(thing, registry, **attributes)
        await role.start()
        try:
            await eventually(lambda: role.lifecycle.state is S.OPERATIONAL)
            yield role
        finally:
            await role.stop()


def run(
    world: World,
    body: Callable[[ThingRole], Awaitable[T]],
    registry: CollectorRegistry | None = None,
    **attributes: str,
) -> T:
    async def scenario() -> T:
        async with operational(world, registry or CollectorRegistry(), **attributes) as role:
            return await body(role)

    return asyncio.run(scenario())


def transitions(registry: CollectorRegistry, a: S, b: S) -> float:
    return sample(
        registry, "testbed_thing_lifecycle_transitions_total", from_state=a.value, to_state=b.value
    )


def test_update_passes_through_maintenance_and_installs_the_new_version(world: World) -> None:
    registry = CollectorRegistry()

    async def body(role: ThingRole) -> tuple[dict[str, Any], dict[str, Any], bool]:
        result = await role.actions()["firmware-update"]({"version": "2.0.0"})
        status = await role.actions()["status"]({})
        return result, status, role.server is not None and role.server.serving

    result, status, serving = run(world, body, registry)
    assert (result["outcome"], result["changed"], result["refusal"]) == ("updated", True, None)
    assert (result["firmware"], result["previous_firmware"]) == ("2.0.0", "1.0.0")
    assert (result["lifecycle"], result["reason"]) == ("operational", None)
    # 64-byte blocks by default: the cost of the download is in the answer.
    release = firmware.genuine_release(world.vendor, MODEL, "2.0.0")
    image = release.image
    assert result["requests"] == -(-len(release.manifest) // 64) + -(-len(image) // 64)
    assert result["bytes"] == len(release.manifest) + len(image)
    assert status["firmware"] == "2.0.0" and serving
    assert transitions(registry, S.OPERATIONAL, S.MAINTENANCE) == 1
    assert transitions(registry, S.MAINTENANCE, S.OPERATIONAL) == 1
    updated = {"outcome": "updated", "reason": "none"}
    assert sample(registry, "testbed_thing_firmware_updates_total", **updated) == 1
    assert sample(registry, "testbed_thing_firmware_info", version="2.0.0") == 1
    assert sample(registry, "testbed_thing_firmware_info", version="1.0.0") == 0

    volume = world.things["thermostat-01"].state
    record = json.loads((volume / updater.INDEX).read_text())
    assert record["version"] == "2.0.0" and record["previous"] == "1.0.0"
    assert record["digest"] == hashlib.sha256(image).hexdigest()
    assert (volume / "firmware" / "2.0.0.bin").read_bytes() == image
    assert world.failures == []


def test_the_same_version_again_changes_nothing(world: World) -> None:
    registry = CollectorRegistry()

    async def body(role: ThingRole) -> list[dict[str, Any]]:
        update = role.actions()["firmware-update"]
        return [await update({"version": v}) for v in ("1.0.0", "1.1.0", "1.1.0", "1.1")]

    factory, first, again, spelled = run(world, body, registry)
    assert (factory["changed"], factory["outcome"], factory["firmware"]) == (
        False,
        "unchanged",
        "1.0.0",
    )
    assert (first["changed"], first["firmware"]) == (True, "1.1.0")
    assert (again["changed"], again["outcome"]) == (False, "unchanged")
    assert spelled["changed"] is False  # 1.1 is 1.1.0
    # Only the real update went through maintenance.
    assert transitions(registry, S.OPERATIONAL, S.MAINTENANCE) == 1


@pytest.mark.parametrize(
    ("image", "refusal"),
    [
        ("2.0.0-tampered", "digest-mismatch"),
        ("2.0.0-forged", "bad-signature"),
        ("2.0.0-other-model", "wrong-model"),
        ("1.0.0", "downgrade"),  # a genuine old release served as 2.0.0: the signed version
        ("1.1.0", "version-mismatch"),  # newer than installed, but not what was asked for
        ("3.0.0", "unavailable"),  # not served (4.04)
    ],
)
def test_a_refused_image_leaves_the_old_firmware_and_an_operational_thing(
    world: World, image: str, refusal: str
) -> None:
    registry = CollectorRegistry()

    async def body(role: ThingRole) -> tuple[dict[str, Any], dict[str, Any], bool]:
        result = await role.actions()["firmware-update"]({"version": "2.0.0", "image": image})
        status = await role.actions()["status"]({})
        return result, status, role.server is not None and role.server.serving

    result, status, serving = run(world, body, registry)
    assert (result["outcome"], result["changed"], result["refusal"]) == (
        "refused",
        False,
        refusal,
    )
    assert result["firmware"] == "1.0.0" and result["detail"]
    assert (status["lifecycle"], status["reason"], status["firmware"]) == (
        "operational",
        f"firmware-update:{refusal}",
        "1.0.0",
    )
    assert serving
    assert transitions(registry, S.MAINTENANCE, S.OPERATIONAL) == 1
    labels = {"outcome": "refused", "reason": refusal}
    assert sample(registry, "testbed_thing_firmware_updates_total", **labels) == 1
    assert sample(registry, "testbed_thing_firmware_info", version="1.0.0") == 1
    thing_volume = world.things["thermostat-01"].state
    assert not (thing_volume / updater.INDEX).exists()
    assert not (thing_volume / "firmware").exists()


def test_downgrade_is_refused_before_anything_is_fetched(world: World) -> None:
    async def body(role: ThingRole) -> tuple[dict[str, Any], dict[str, Any]]:
        update = role.actions()["firmware-update"]
        return await update({"version": "2.0.0"}), await update({"version": "1.1.0"})

    updated, refused = run(world, body)
    assert updated["firmware"] == "2.0.0"
    assert (refused["outcome"], refused["refusal"], refused["requests"]) == (
        "refused",
        "downgrade",
        0,
    )
    assert refused["firmware"] == "2.0.0" and refused["reason"] == "firmware-update:downgrade"


def test_the_installed_version_survives_a_restart(world: World) -> None:
    thing = world.make_thing("thermostat-01")
    registry = CollectorRegistry()

    async def scenario() -> dict[str, Any]:
        async with world.trust_center(), world.vendor_cloud():
            role = world.thing_role(thing)
            await role.start()
            await eventually(lambda: role.lifecycle.state is S.OPERATIONAL)
            await role.actions()["firmware-update"]({"version": "1.1.0"})
            await role.stop()
            again = world.thing_role(thing, registry)
            await again.start()
            try:
                return {**again.state(), **await again.actions()["status"]({})}
            finally:
                await again.stop()

    state = asyncio.run(scenario())
    assert state["firmware"] == "1.1.0" and state["lifecycle"] == "operational"
    assert sample(registry, "testbed_thing_firmware_info", version="1.1.0") == 1


def test_bad_requests_and_wrong_states_are_refused_before_maintenance(world: World) -> None:
    thing = world.make_thing("thermostat-01")

    async def scenario() -> None:
        role = world.thing_role(thing, **{"auto-commission": "false"})
        await role.start()
        try:
            update = role.actions()["firmware-update"]
            for params in ({}, {"version": "two"}, {"version": "2.0.0", "image": "../x"}):
                with pytest.raises(ActionError):
                    await update(params)
            with pytest.raises(LifecycleError, match="installed") as err:
                await update({"version": "2.0.0"})
            assert err.value.http_status == 409
            assert role.lifecycle.state is S.INSTALLED
        finally:
            await role.stop()
        cloudless = world.thing_role(thing, **{"vendor-cloud-uri": ""})
        await cloudless.start()
        try:
            with pytest.raises(ActionError, match="vendor cloud"):
                await cloudless.actions()["firmware-update"]({"version": "2.0.0"})
        finally:
            await cloudless.stop()

    asyncio.run(scenario())
