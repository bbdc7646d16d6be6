"""Refusals under flood: rows are written off the event loop, in batches, and a full queue
turns rows into one summary row per reason, so disk work stays bounded."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

from testbed.node.bootstrap.profile import FailureReason
from testbed.node.trust_center.refusal_log import RefusalLog
from testbed.node.trust_center.registry import Refusal, Registry

from .world import World, port_of, running


def test_a_flood_beyond_the_queue_becomes_counts_and_one_summary_row(world: World) -> None:
    registry = Registry.open(world.state)
    registry.close()

    async def body() -> tuple[int, int, RefusalLog]:
        log = RefusalLog(world.state / "registry.sqlite", capacity=100, batch=50)
        log.start()
        queued = sum(
            log.submit(Refusal(float(i), b"\x01", None, None, "unknown-device", f"#{i}"))
            for i in range(5000)  # in one go: the writer cannot run in between
        )
        dropped = sum(log.unrecorded.values())
        await log.close()
        return queued, dropped, log

    queued, dropped, log = asyncio.run(body())
    assert (queued, dropped) == (100, 4900)
    registry = Registry.open(world.state)
    try:
        rows = registry.refusals()
    finally:
        registry.close()
    assert len(rows) == 101 and log.rows_written == 101 and log.summarised == 4900
    (summary,) = [r for r in rows if r.kid is None]
    assert [r.detail for r in rows if r.kid is not None] == [f"#{i}" for i in range(100)]
    assert summary.reason == "unknown-device" and summary.detail.startswith("4900 more refusals")


def test_a_locked_registry_does_not_stall_the_event_loop(world: World) -> None:
    """Another writer holds the registry's lock: the refusal of an unknown initiator is still
    answered at once (the row waits in the queue), and written after the lock goes."""
    world.make_thing("SN-KNOWN")
    stranger = world.make_thing("SN-STRANGER", imported=False)
    world.write_material()
    answered_while_locked = threading.Event()
    locked = threading.Event()

    def hold_lock() -> None:
        db = sqlite3.connect(world.state / "registry.sqlite", isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        locked.set()
        answered_while_locked.wait(10)
        db.execute("ROLLBACK")
        db.close()

    async def body() -> Any:
        async with running(world) as role:
            holder = threading.Thread(target=hold_lock)
            holder.start()
            await asyncio.to_thread(locked.wait, 10)
            result = await world.bootstrap(stranger, port_of(role), timeout_s=10)
            answered_while_locked.set()  # only now does the other writer let go
            await asyncio.to_thread(holder.join, 10)
            return result

    result = asyncio.run(body())
    assert result.reason is FailureReason.HANDSHAKE_REFUSED, result.detail
    registry = Registry.open(world.state)
    try:
        assert [(r.reason, r.kid) for r in registry.refusals()] == [
            ("unknown-device", stranger.kid)
        ]
    finally:
        registry.close()
