"""The thing's ``moved`` action against the real trust center: re-registering after a move is
one bootstrap that the trust center records with the thing's address and that renews the
contexts, counted per profile; without re-registration nothing but the placement changes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from testbed.node.errors import ActionError
from tests.unit.node.thing.test_thing_lifecycle_actions import building
from tests.unit.node.thing.world import World, sample


def test_reregistering_after_a_move_is_one_counted_bootstrap(world: World) -> None:
    registry = CollectorRegistry()

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], int]:
        async with building(world, registry) as b:
            before = await b.thing.actions()["status"]({})
            result = await b.thing.actions()["moved"]({"pan": "floor2", "address": "fd00:11::1"})
            assert b.tc.service is not None
            row = b.tc.service.registry.thing(b.minted.serial)
            assert row is not None
            return before, result, b.thing.state(), row.enrollments

    before, result, state, enrollments = asyncio.run(scenario())
    assert result["lifecycle"] == "operational" and result["handshakes"] == 1
    assert result["generation"] == before["generation"] + 1 and enrollments == 2
    assert state["pan"] == "floor2"
    assert state["placement"]["address"] == "fd00:11::1"
    identity = {
        "vendor": state["vendor"] or "", "model": state["model"] or "",
        "domain": state["domain"] or "", "profile": "edhoc-oscore",
    }  # fmt: skip
    assert sample(registry, "testbed_thing_moves_total", **identity) == 1
    assert sample(registry, "testbed_thing_move_handshakes_total", **identity) == 1


def test_without_reregistering_the_contexts_stay(world: World) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with building(world) as b:
            before = await b.thing.actions()["status"]({})
            moved = b.thing.actions()["moved"]
            with pytest.raises(ActionError, match="pan and address"):
                await moved({"pan": "floor2"})
            with pytest.raises(ActionError, match="reregister"):
                await moved({"pan": "floor2", "address": "fd00:11::1", "reregister": "no"})
            after = await moved({"pan": "floor2", "address": "fd00:11::1", "reregister": False})
            return before, after

    before, after = asyncio.run(scenario())
    assert after["handshakes"] == 0
    assert (after["generation"], after["ldevid_serial"]) == (
        before["generation"], before["ldevid_serial"],
    )  # fmt: skip
