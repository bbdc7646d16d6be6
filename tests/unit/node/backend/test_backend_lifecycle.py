"""The backend across a thing's lifecycle: a re-keyed thing is read through the new generation
at once (the action re-polls the trust center instead of waiting), a decommissioned one fails
cleanly and then disappears."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from testbed.node.errors import ActionError
from testbed.node.lifecycle import LifecycleState as S
from tests.unit.node.thing.world import World, eventually, sample

THING = {"thing": "thermostat-01", "resource": "temperature"}


def names(backend: Any) -> set[str]:
    return {peer.entry.name for peer in backend.peers.values()}


def test_reads_and_writes_follow_a_rekey_without_waiting_for_the_poll(world: World) -> None:
    thing = world.make_thing("thermostat-01")
    registry = CollectorRegistry()

    async def scenario() -> dict[str, Any]:
        async with world.trust_center():
            role = world.thing_role(thing)
            await role.start()
            # Polls only at start: every later update must come from the action's re-poll.
            host = world.backend_role(registry, **{"poll-interval": "600", "read-interval": "600"})
            try:
                await eventually(lambda: role.lifecycle.state is S.OPERATIONAL)
                await host.start()
                assert host.backend is not None
                backend = host.backend
                await eventually(lambda: "thermostat-01" in names(backend))
                read, write = host.actions()["read"], host.actions()["write"]
                out = {"before": await read(THING)}
                await role.actions()["rekey"]({})
                out["after_rekey"] = await read(THING)
                out["again"] = await read(THING)
                await role.actions()["rebootstrap"]({})
                out["write"] = await write(
                    {"thing": "thermostat-01", "resource": "setpoint", "payload": 21.5}
                )
                await role.actions()["decommission"]({})
                out["decommissioned"] = await read(THING)
                return out
            finally:
                await host.stop()
                await role.stop()

    out = asyncio.run(scenario())
    assert (out["before"]["outcome"], out["before"]["generation"]) == ("ok", 1)
    after = out["after_rekey"]
    assert (after["outcome"], after["generation"], after["retried"]) == ("ok", 2, True)
    assert after["stale_context"] is True and after["changed"] is False
    assert "retried" not in out["again"] and out["again"]["generation"] == 2
    write = out["write"]
    assert (write["outcome"], write["generation"], write["changed"]) == ("ok", 3, True)
    # A decommissioned thing serves nothing: the request fails, cleanly, with a reason.
    gone = out["decommissioned"]
    assert gone["outcome"] in ("unreachable", "timeout") and gone["changed"] is False
    assert sample(registry, "testbed_backend_polls_total", domain="hvac", outcome="ok") == 3


def test_a_revoked_thing_leaves_the_backend(world: World) -> None:
    thing = world.make_thing("thermostat-01")

    async def scenario() -> None:
        async with world.trust_center() as tc:
            role = world.thing_role(thing)
            await role.start()
            host = world.backend_role()
            try:
                await eventually(lambda: role.lifecycle.state is S.OPERATIONAL)
                await host.start()
                assert host.backend is not None
                backend = host.backend
                await eventually(lambda: "thermostat-01" in names(backend))
                await role.actions()["decommission"]({})
                await tc.actions()["revoke"]({"serial": thing.serial})
                await eventually(lambda: "thermostat-01" not in names(backend))
                with pytest.raises(ActionError, match="no operational thing"):
                    await host.actions()["read"](THING)
                status = await host.actions()["status"]({})
                assert status["backend"]["things"] == {} and status["changed"] is False
            finally:
                await host.stop()
                await role.stop()

    asyncio.run(scenario())
