"""Thing names are bound to the record and unique: an enrolled thing that reports another's
name does not take its place in the backends' listing."""

from __future__ import annotations

import asyncio
from typing import Any

import aiocoap
import cbor2
import pytest

from testbed.node.bootstrap.profile import Outcome
from testbed.node.enrollment_api import EST_SIMPLE_ENROLL, K_NAME, K_SERIAL, K_THINGS, THINGS
from testbed.node.errors import ActionError
from testbed.node.trust_center.registry import Registry

from .test_lifecycle import _params
from .world import World, port_of, running


def _as(name: str) -> str:
    return f"{EST_SIMPLE_ENROLL}?name={name}"


async def _listing(world: World, port: int) -> dict[str, str]:
    answer = await world.request(world.backend, port, aiocoap.GET, THINGS)
    return {e[K_SERIAL]: e[K_NAME] for e in cbor2.loads(answer.payload)[K_THINGS]}


def test_a_thing_cannot_enroll_under_a_name_another_holds(world: World) -> None:
    lamp = world.make_thing("SN-LAMP")
    liar = world.make_thing("SN-LIAR")
    world.write_material()

    async def body() -> dict[str, Any]:
        async with running(world) as role:
            port = port_of(role)
            out = {"lamp": await world.bootstrap(lamp, port, path=_as("lamp-01"))}
            out["liar"] = await world.bootstrap(liar, port, path=_as("lamp-01"))
            out["liar_own"] = await world.bootstrap(liar, port, path=_as("sensor-07"))
            # Once named, a thing cannot rename itself either (into a free name or another's).
            out["rename"] = await world.bootstrap(liar, port, path=_as("lamp-09"))
            out["listing"] = await _listing(world, port)
        return out

    out = asyncio.run(body())
    assert out["lamp"].outcome is Outcome.SUCCESS
    assert out["liar"].outcome is Outcome.FAILURE and "name-taken" in out["liar"].detail
    assert out["liar_own"].outcome is Outcome.SUCCESS, out["liar_own"].detail
    assert out["rename"].outcome is Outcome.FAILURE and "name-taken" in out["rename"].detail
    assert out["listing"] == {"SN-LAMP": "lamp-01", "SN-LIAR": "sensor-07"}
    registry = Registry.open(world.state)
    try:
        reasons = [(r.serial, r.reason) for r in registry.refusals()]
    finally:
        registry.close()
    assert reasons == [("SN-LIAR", "name-taken")] * 2


def test_a_name_bound_by_the_record_wins_over_any_report(world: World) -> None:
    lamp = world.make_thing("SN-LAMP2")
    other = world.make_thing("SN-OTHER")
    world.write_material()

    async def body() -> dict[str, Any]:
        async with running(world) as role:
            port = port_of(role)
            imp = role.actions()["import-device"]
            out: dict[str, Any] = {"import": await imp({**_params(lamp), "name": "lamp-01"})}
            # The other thing enrolls first and reports the lamp's name: refused.
            out["first"] = await world.bootstrap(other, port, path=_as("lamp-01"))
            # The lamp reporting something else is refused too: the record says lamp-01.
            out["wrong"] = await world.bootstrap(lamp, port, path=_as("lamp-02"))
            out["lamp"] = await world.bootstrap(lamp, port, path=_as("lamp-01"))
            out["listing"] = await _listing(world, port)
            with pytest.raises(ActionError, match="bound to SN-LAMP2"):
                await imp({**_params(other), "name": "lamp-01"})
        # After a restart the binding comes from the record on the state volume.
        async with running(world) as role:
            out["restarted"] = await world.bootstrap(other, port_of(role), path=_as("lamp-01"))
        return out

    out = asyncio.run(body())
    assert out["import"]["changed"] is True
    assert "name-taken" in out["first"].detail and "name-taken" in out["wrong"].detail
    assert out["lamp"].outcome is Outcome.SUCCESS, out["lamp"].detail
    assert out["listing"]["SN-LAMP2"] == "lamp-01"
    assert "lamp-01" not in {v for k, v in out["listing"].items() if k != "SN-LAMP2"}
    assert out["restarted"].outcome is Outcome.FAILURE and "name-taken" in out["restarted"].detail
