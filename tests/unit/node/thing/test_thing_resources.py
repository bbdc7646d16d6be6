"""An operational thing's resources: only through the granted OSCORE context, never replayed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiocoap
import cbor2
from prometheus_client import CollectorRegistry

from testbed.node.backend.probes import resend
from testbed.node.lifecycle import LifecycleState as S
from testbed.node.thing import catalog
from testbed.node.thing.role import ThingRole
from tests.unit.node.thing.world import Client, MintedThing, World, eventually, listing, sample

T = TypeVar("T")


@asynccontextmanager
async def operational(
    world: World, thing: MintedThing, registry: CollectorRegistry | None = None
) -> AsyncIterator[tuple[ThingRole, Client]]:
    """The trust center, the thing operational, and a client with the backend's context."""
    async with world.trust_center():
        role = world.thing_role(thing, registry)
        await role.start()
        try:
            await eventually(lambda: role.lifecycle.state is S.OPERATIONAL)
            entry = (await listing(world))[thing.name]
            assert role.server is not None
            async with Client(entry, world.tmp / "client", role.server.port) as client:
                yield role, client
        finally:
            await role.stop()


def run(world: World, thing: MintedThing, body: Callable[..., Awaitable[T]], **kw: Any) -> T:
    async def scenario() -> T:
        async with operational(world, thing, kw.get("registry")) as (role, client):
            return await body(role, client)

    return asyncio.run(scenario())


def handled(role: ThingRole) -> int:
    assert role.requests is not None
    return role.requests.handled_total()


def test_thermostat_answers_protected_get_and_put(world: World) -> None:
    thing = world.make_thing("thermostat-01", "thermostat")
    registry = CollectorRegistry()

    async def body(role: ThingRole, client: Client) -> list[tuple[str, Any]]:
        out = []
        for resource, code, payload, options in [
            ("temperature", aiocoap.GET, b"", {}),
            ("setpoint", aiocoap.GET, b"", {}),
            ("setpoint", aiocoap.PUT, catalog.encode(22.5), {"content_format": 60}),
            ("setpoint", aiocoap.GET, b"", {}),
            ("setpoint", aiocoap.PUT, catalog.encode(35.5), {}),  # out of range
            ("setpoint", aiocoap.PUT, b"\xff\x00", {}),  # not CBOR
            ("setpoint", aiocoap.PUT, catalog.encode(True), {}),  # not a number
            ("setpoint", aiocoap.PUT, catalog.encode(20), {"content_format": 0}),  # text/plain
            ("temperature", aiocoap.PUT, catalog.encode(30), {}),  # read-only
        ]:
            reply = await client.request(code, resource, payload, **options)
            assert reply.protected
            out.append((reply.code, cbor2.loads(reply.payload) if reply.ok else None))
        return out

    replies = run(world, thing, body, registry=registry)
    temperature = replies[0][1]
    assert replies[0][0] == "2.05" and isinstance(temperature, float) and 15 < temperature < 30
    assert replies[1:] == [
        ("2.05", 21.0),
        ("2.04", 22.5),
        ("2.05", 22.5),
        ("4.22", None),
        ("4.00", None),
        ("4.00", None),
        ("4.15", None),
        ("4.05", None),
    ]
    count = "testbed_thing_requests_total"
    assert sample(registry, count, resource="/setpoint", method="PUT", code="2.04") == 1
    assert sample(registry, count, resource="/setpoint", method="PUT", code="4.00") == 2
    assert sample(registry, count, resource="/temperature", method="PUT", code="4.05") == 1


def test_luminaire_light_on_off_and_level(world: World) -> None:
    thing = world.make_thing("lamp-01", "luminaire")

    async def body(role: ThingRole, client: Client) -> list[tuple[str, Any]]:
        out = []
        for value in [{"on": True, "level": 40}, {"level": 101}, {"on": "yes"}, {"dim": 3}]:
            reply = await client.request(aiocoap.PUT, "light", catalog.encode(value))
            out.append((reply.code, cbor2.loads(reply.payload) if reply.ok else None))
        reply = await client.request(aiocoap.GET, "light")
        out.append((reply.code, cbor2.loads(reply.payload)))
        return out

    assert run(world, thing, body) == [
        ("2.04", {"on": True, "level": 40}),
        ("4.22", None),
        ("4.00", None),
        ("4.00", None),
        ("2.05", {"on": True, "level": 40}),
    ]


def test_unprotected_requests_get_401_and_reach_no_handler(world: World) -> None:
    thing = world.make_thing("thermostat-01", "thermostat")
    registry = CollectorRegistry()

    async def body(role: ThingRole, client: Client) -> tuple[list[str], int, int, dict[str, Any]]:
        await client.request(aiocoap.GET, "temperature")
        before = handled(role)
        codes = []
        for code, resource in [
            (aiocoap.GET, "temperature"),
            (aiocoap.PUT, "setpoint"),
            (aiocoap.GET, "no-such-path"),  # 4.01 too: no hint which paths exist
        ]:
            codes.append((await client.plain(code, resource)).code.dotted)
        assert role.requests is not None
        return codes, before, handled(role), role.requests.snapshot()

    codes, before, after, snapshot = run(world, thing, body, registry=registry)
    assert codes == ["4.01", "4.01", "4.01"]
    assert before == after == 1
    assert snapshot["refused"] == {"unprotected": 3}
    assert sample(registry, "testbed_thing_refused_total", reason="unprotected") == 3


def test_a_context_with_a_wrong_secret_is_refused(world: World) -> None:
    thing = world.make_thing("thermostat-01", "thermostat")

    async def body(role: ThingRole, client: Client) -> tuple[str, int, dict[str, int]]:
        # Same IDs (so the thing finds its context), another master secret: a forger.
        from dataclasses import replace

        from testbed.node.thing.contexts import PersistentContext, write_context

        forged = replace(client.entry.grant, master_secret=bytes(16))
        forger = PersistentContext(write_context(world.tmp / "forger", forged))
        try:
            client.context, honest = forger, client.context
            reply = await client.request(aiocoap.GET, "temperature")
            client.context = honest
        finally:
            forger.close()
        assert role.requests is not None
        return reply.code, handled(role), role.requests.refused_counts

    code, count, refused = run(world, thing, body)
    assert (code, count, refused) == ("4.00", 0, {"invalid": 1})


def test_a_replayed_datagram_is_refused_without_reaching_a_handler(world: World) -> None:
    thing = world.make_thing("thermostat-01", "thermostat")
    registry = CollectorRegistry()

    async def body(role: ThingRole, client: Client) -> tuple[dict[str, Any], int, int]:
        await client.request(aiocoap.PUT, "setpoint", catalog.encode(25))
        (datagram,) = client.sent_requests()
        before = handled(role)
        assert role.server is not None
        replay = await resend(datagram, ("::1", role.server.port), 5.0)
        return replay, before, handled(role)

    replay, before, after = run(world, thing, body, registry=registry)
    assert (replay["code"], replay["diagnostic"], replay["protected"]) == (
        "4.01",
        "Replay detected",
        False,
    )
    assert before == after == 1
    assert sample(registry, "testbed_thing_refused_total", reason="replay") == 1


def test_replay_window_and_sequence_numbers_survive_a_restart(world: World) -> None:
    thing = world.make_thing("thermostat-01", "thermostat")

    async def scenario() -> tuple[dict[str, Any], str, int]:
        async with world.trust_center():
            role = world.thing_role(thing)
            await role.start()
            await eventually(lambda: role.lifecycle.state is S.OPERATIONAL)
            entry = (await listing(world))[thing.name]
            assert role.server is not None
            async with Client(entry, world.tmp / "client", role.server.port) as client:
                for _ in range(3):
                    assert (await client.request(aiocoap.GET, "setpoint")).code == "2.05"
                old = client.sent_requests()[0]
                await role.stop()  # a clean stop: the exact replay window goes to disk

                again = world.thing_role(thing)
                await again.start()
                try:
                    assert again.server is not None
                    replay = await resend(old, ("::1", again.server.port), 5.0)
                    client.uri = f"coap://[::1]:{again.server.port}"
                    fresh = await client.request(aiocoap.GET, "setpoint")
                    return replay, fresh.code, handled(again)
                finally:
                    await again.stop()

    replay, fresh, count = asyncio.run(scenario())
    assert (replay["code"], replay["diagnostic"]) == ("4.01", "Replay detected")
    assert (fresh, count) == ("2.05", 1)


def test_smoke_detector_alarm_is_observable(world: World) -> None:
    thing = world.make_thing("smoke-01", "smoke-detector")

    async def body(role: ThingRole, client: Client) -> tuple[list[Any], int]:
        from aiocoap.transports.oscore import OSCOREAddress

        assert client.coap is not None
        message = aiocoap.Message(code=aiocoap.GET, uri=f"{client.uri}/alarm", observe=0)
        message.remote = OSCOREAddress(client.context, message.remote)
        request = client.coap.request(message)
        first = await asyncio.wait_for(request.response, 5)
        values = [cbor2.loads(first.payload)]
        await role.actions()["stimulate"]({"resource": "alarm", "value": True})
        notification = await asyncio.wait_for(request.observation.__aiter__().__anext__(), 5)
        values.append(cbor2.loads(notification.payload))
        request.observation.cancel()
        return values, handled(role)

    values, count = run(world, thing, body)
    assert values == [False, True]
    assert count == 1  # one request, however many notifications


def test_after_a_crash_a_replay_meets_the_echo_challenge_not_a_handler(world: World) -> None:
    thing = world.make_thing("thermostat-01", "thermostat")

    async def scenario() -> tuple[dict[str, Any], str, int, dict[str, int]]:
        async with world.trust_center():
            role = world.thing_role(thing)
            await role.start()
            await eventually(lambda: role.lifecycle.state is S.OPERATIONAL)
            entry = (await listing(world))[thing.name]
            assert role.server is not None
            (context,) = role.server.contexts.values()
            async with Client(entry, world.tmp / "client", role.server.port) as client:
                for _ in range(3):
                    assert (await client.request(aiocoap.GET, "setpoint")).code == "2.05"
                old = client.sent_requests()[-1]
                # What a killed process leaves on the volume: aiocoap marks the window
                # "unknown" on the first request and writes it exactly only at a clean close.
                crashed = (context.directory / "sequence.json").read_bytes()
                await role.stop()
                (context.directory / "sequence.json").write_bytes(crashed)
                assert b'"unknown"' in crashed

                again = world.thing_role(thing)
                await again.start()
                try:
                    assert again.server is not None and again.requests is not None
                    replay = await resend(old, ("::1", again.server.port), 5.0)
                    client.uri = f"coap://[::1]:{again.server.port}"
                    # The genuine client answers the Echo challenge (RFC 8613 B.1.2) by itself.
                    fresh = await client.request(aiocoap.GET, "setpoint")
                    return replay, fresh.code, handled(again), again.requests.refused_counts
                finally:
                    await again.stop()

    replay, fresh, count, refused = asyncio.run(scenario())
    # The replay gets a protected 4.01 + Echo (its outer code is 2.04, as OSCORE's always is);
    # only the attacker's key-less view of it is shown here. No handler ran for it.
    assert replay["protected"] is True
    assert (fresh, count) == ("2.05", 1)
    assert refused == {"echo-recovery": 2}  # the replay, and the genuine client's first try
