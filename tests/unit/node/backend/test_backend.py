"""The backend against the real trust center and real things: listing, reading, commanding,
and the two attacker probes the security tests use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import cbor2
import pytest
from prometheus_client import CollectorRegistry

from testbed.node import enrollment_api as api
from testbed.node.backend.directory import ListingError, parse_things
from testbed.node.errors import ActionError, ConfigError
from testbed.node.lifecycle import LifecycleState as S
from testbed.node.roles.internet_host import InternetHostRole
from testbed.node.thing import catalog
from testbed.node.thing.role import ThingRole
from tests.unit.node.thing.world import World, eventually, sample

T = TypeVar("T")


@asynccontextmanager
async def building(
    world: World, registry: CollectorRegistry, names: dict[str, str], **backend_attributes: str
) -> AsyncIterator[tuple[dict[str, ThingRole], InternetHostRole]]:
    """Trust center, operational things (name -> device class), and a started backend."""
    things = {name: world.make_thing(name, cls) for name, cls in names.items()}
    async with world.trust_center():
        roles = {name: world.thing_role(t) for name, t in things.items()}
        for role in roles.values():
            await role.start()
        backend = world.backend_role(registry, **backend_attributes)
        try:
            await eventually(
                lambda: all(r.lifecycle.state is S.OPERATIONAL for r in roles.values())
            )
            await backend.start()
            yield roles, backend
        finally:
            await backend.stop()
            for role in roles.values():
                await role.stop()


def run(
    world: World,
    body: Callable[[dict[str, ThingRole], InternetHostRole], Awaitable[T]],
    registry: CollectorRegistry | None = None,
    names: dict[str, str] | None = None,
    /,
    **backend_attributes: str,
) -> T:
    async def scenario() -> T:
        names_ = names or {"thermostat-01": "thermostat"}
        async with building(
            world, registry or CollectorRegistry(), names_, **backend_attributes
        ) as (roles, backend):
            return await body(roles, backend)

    return asyncio.run(scenario())


def last_reads(backend: InternetHostRole, thing: str) -> dict[str, Any]:
    things = backend.state()["backend"]["things"]
    return dict(things.get(thing, {}).get("last", {}))


def handled(role: ThingRole, path: str) -> int:
    assert role.requests is not None
    return role.requests.handled_total(path)


def test_backend_lists_and_reads_every_operational_thing(world: World) -> None:
    registry = CollectorRegistry()
    names = {"thermostat-01": "thermostat", "lamp-01": "luminaire", "smoke-01": "smoke-detector"}

    async def body(roles: dict[str, ThingRole], backend: InternetHostRole) -> dict[str, Any]:
        def all_read() -> bool:
            things = backend.state()["backend"]["things"]
            return len(things) == 3 and all(
                set(t["last"]) == set(catalog.readable(t["device_class"])) for t in things.values()
            )

        await eventually(all_read)
        await asyncio.sleep(0.7)  # a few more read rounds
        return backend.state()

    state = run(world, body, registry, names)["backend"]
    assert state["trust_centers"]["hvac"]["ok"] and state["trust_centers"]["hvac"]["things"] == 3
    things = state["things"]
    assert set(things) == set(names)
    assert things["lamp-01"]["device_class"] == "luminaire"
    assert things["lamp-01"]["last"]["light"]["value"] == {"on": False, "level": 100}
    assert things["smoke-01"]["last"]["alarm"]["value"] is False
    temperature = things["thermostat-01"]["last"]["temperature"]
    assert (temperature["outcome"], temperature["code"], temperature["protected"]) == (
        "ok",
        "2.05",
        True,
    )
    assert things["thermostat-01"]["last"]["setpoint"]["value"] == 21.0
    reads = "testbed_backend_reads_total"
    assert sample(registry, reads, thing="thermostat-01", resource="temperature", outcome="ok") >= 2
    assert sample(registry, reads, thing="lamp-01", resource="light", outcome="ok") >= 2
    count = sample(
        registry, "testbed_backend_read_latency_seconds_count", device_class="thermostat"
    )
    assert count >= 4
    assert sample(registry, "testbed_backend_polls_total", domain="hvac", outcome="ok") >= 2
    assert sample(registry, "testbed_backend_things", domain="hvac") == 3


def test_read_and_write_actions(world: World) -> None:
    async def body(roles: dict[str, ThingRole], backend: InternetHostRole) -> list[dict[str, Any]]:
        await eventually(lambda: last_reads(backend, "thermostat-01"))
        actions = backend.actions()
        target = {"thing": "thermostat-01", "resource": "setpoint"}
        return [
            await actions["write"]({**target, "payload": 23.5}),
            await actions["read"](target),
            await actions["write"]({**target, "payload": 99}),
        ]

    written, read, refused = run(world, body)
    assert (written["code"], written["value"], written["method"]) == ("2.04", 23.5, "PUT")
    assert (read["code"], read["value"], read["outcome"]) == ("2.05", 23.5, "ok")
    assert read["latency_s"] > 0
    assert (refused["code"], refused["outcome"]) == ("4.22", "error")
    assert "5..35" in refused["diagnostic"]


def test_probe_unprotected_gets_401_and_reaches_no_handler(world: World) -> None:
    async def body(
        roles: dict[str, ThingRole], backend: InternetHostRole
    ) -> tuple[dict[str, Any], int, dict[str, int]]:
        await eventually(lambda: last_reads(backend, "thermostat-01"))
        role = roles["thermostat-01"]
        assert role.requests is not None
        before = handled(role, "/setpoint")
        probe = await backend.actions()["probe-unprotected"](
            {"thing": "thermostat-01", "resource": "setpoint"}
        )
        return probe, handled(role, "/setpoint") - before, dict(role.requests.refused_counts)

    probe, delta, refused = run(world, body, None, None, **{"read-interval": "60"})
    assert (probe["code"], probe["diagnostic"]) == (
        "4.01",
        "OSCORE with the thing's granted context required",
    )
    assert (delta, refused) == (0, {"unprotected": 1})


def test_probe_replay_is_refused_and_only_the_original_is_handled(world: World) -> None:
    async def body(
        roles: dict[str, ThingRole], backend: InternetHostRole
    ) -> tuple[dict[str, Any], dict[str, int]]:
        await eventually(lambda: last_reads(backend, "thermostat-01"))
        role = roles["thermostat-01"]
        assert role.requests is not None
        # A resource the background reads never touch: the count is the probe's alone.
        probe = await backend.actions()["probe-replay"](
            {"thing": "thermostat-01", "resource": "nothing-here"}
        )
        return probe, dict(role.requests.refused_counts)

    probe, refused = run(world, body)
    assert probe["original"] == {"code": "4.04", "protected": True}
    assert (probe["replay"]["code"], probe["replay"]["diagnostic"]) == ("4.01", "Replay detected")
    assert probe["datagram_bytes"] == len(bytes.fromhex(probe["datagram_hex"]))
    assert refused == {"replay": 1}


def test_probe_replay_on_a_real_resource_changes_its_count_by_the_original_only(
    world: World,
) -> None:
    async def body(
        roles: dict[str, ThingRole], backend: InternetHostRole
    ) -> tuple[dict[str, Any], int]:
        await eventually(lambda: last_reads(backend, "lamp-01"))  # the one background read
        before = handled(roles["lamp-01"], "/light")
        probe = await backend.actions()["probe-replay"]({"thing": "lamp-01", "resource": "light"})
        return probe, handled(roles["lamp-01"], "/light") - before

    # Reads every 60 s: no background read interferes with the count.
    probe, delta = run(world, body, None, {"lamp-01": "luminaire"}, **{"read-interval": "60"})
    assert probe["original"]["code"] == "2.05"
    assert (probe["replay"]["code"], probe["replay"]["diagnostic"]) == ("4.01", "Replay detected")
    assert delta == 1


def test_backend_restart_keeps_its_sequence_numbers(world: World) -> None:
    """A backend that forgot its sequence numbers would be refused as a replayer."""
    registry = CollectorRegistry()

    async def scenario() -> dict[str, Any]:
        async with building(world, CollectorRegistry(), {"thermostat-01": "thermostat"}) as (
            _roles,
            backend,
        ):
            await eventually(lambda: last_reads(backend, "thermostat-01"))
            await asyncio.sleep(0.5)  # several protected reads under the first process
            await backend.stop()
            again = world.backend_role(registry)
            await again.start()
            try:
                await eventually(lambda: last_reads(again, "thermostat-01"))
                return await again.actions()["read"](
                    {"thing": "thermostat-01", "resource": "setpoint"}
                )
            finally:
                await again.stop()

    result = asyncio.run(scenario())
    assert (result["code"], result["outcome"]) == ("2.05", "ok")
    assert (
        sample(
            registry,
            "testbed_backend_reads_total",
            thing="thermostat-01",
            resource="setpoint",
            outcome="refused",
        )
        == 0
    )


def test_action_parameters_are_checked(world: World) -> None:
    async def body(roles: dict[str, ThingRole], backend: InternetHostRole) -> None:
        await eventually(lambda: last_reads(backend, "thermostat-01"))
        actions = backend.actions()
        with pytest.raises(ActionError, match="no operational thing"):
            await actions["read"]({"thing": "thermostat-99", "resource": "setpoint"})
        with pytest.raises(ActionError, match="required"):
            await actions["read"]({"thing": "thermostat-01"})
        with pytest.raises(ActionError, match="payload"):
            await actions["write"]({"thing": "thermostat-01", "resource": "setpoint"})

    run(world, body)


def test_a_thing_commissioned_since_the_last_poll_is_read_at_once(world: World) -> None:
    """`testbed up` says "commissioned" before the backend's next poll: a read right then asks
    the trust center instead of refusing a thing the operator has just seen commissioned."""
    registry = CollectorRegistry()
    lamp = world.make_thing("lamp-07", "luminaire")  # minted and imported, started late

    async def body(roles: dict[str, ThingRole], backend: InternetHostRole) -> dict[str, Any]:
        await eventually(lambda: last_reads(backend, "thermostat-01"))
        polls = sample(registry, "testbed_backend_polls_total", domain="hvac", outcome="ok")
        late = world.thing_role(lamp)
        await late.start()
        try:
            await eventually(lambda: late.lifecycle.state is S.OPERATIONAL)
            answer = await backend.actions()["read"]({"thing": "lamp-07", "resource": "light"})
            # Exactly one more poll: the one the read asked for (the loop sleeps 60 s).
            after = sample(registry, "testbed_backend_polls_total", domain="hvac", outcome="ok")
            assert after == polls + 1
            with pytest.raises(ActionError, match="no operational thing 'lamp-99'"):
                await backend.actions()["read"]({"thing": "lamp-99", "resource": "light"})
            return dict(answer)
        finally:
            await late.stop()

    answer = run(world, body, registry, None, **{"poll-interval": "60"})
    assert (answer["outcome"], answer["code"], answer["protected"]) == ("ok", "2.05", True)


def test_backend_without_trust_centers_is_inert(world: World) -> None:
    role = world.backend_role(**{"trust-centers": ""})

    async def scenario() -> dict[str, Any]:
        await role.start()
        try:
            return role.state()
        finally:
            await role.stop()

    assert asyncio.run(scenario()) == {"kind": "backend"}
    assert role.actions() == {}


def test_backend_without_its_key_is_a_config_error(world: World, tmp_path: Path) -> None:
    role = world.backend_role()
    role.material_root = tmp_path / "empty"  # a host without its EDHOC key

    async def scenario() -> None:
        try:
            await role.start()
        finally:
            await role.stop()

    with pytest.raises(ConfigError, match="EDHOC material"):
        asyncio.run(scenario())


def test_a_listing_that_is_not_one_is_refused() -> None:
    with pytest.raises(ListingError):
        parse_things("hvac", b"\xa0")  # an empty map: no K_THINGS
    with pytest.raises(ListingError):
        parse_things("hvac", cbor2.dumps({api.K_THINGS: [{api.K_NAME: "x", api.K_CONTEXT: {}}]}))
    assert parse_things("hvac", cbor2.dumps({api.K_THINGS: []})) == []
    no_context = {api.K_NAME: "x", api.K_SERIAL: "S", api.K_ADDRESS: "::1", api.K_CONTEXT: None}
    assert parse_things("hvac", cbor2.dumps({api.K_THINGS: [no_context]})) == []
