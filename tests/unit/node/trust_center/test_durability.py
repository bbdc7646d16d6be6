"""SIGKILL in the middle of many enrollments, restart on the same volume, finish: one row per
thing, no certificate serial ever handed out twice, every certificate a thing got on record."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509

from testbed.node.bootstrap.profile import Outcome
from testbed.node.trust_center.registry import ENROLLED, SUPERSEDED, Registry

from .world import Thing, World, free_udp_port

ROOT = Path(__file__).resolve().parents[4]
THINGS = 40
KILL_AFTER = 5  # successful enrollments seen by the clients before the SIGKILL


class ServerProcess:
    def __init__(self, world: World, port: int, crash_after_commit: int | None = None) -> None:
        self.world = world
        self.port = port
        self.crash = [] if crash_after_commit is None else [str(crash_after_commit)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.unit.node.trust_center.serve_tc",
                str(self.world.material),
                str(self.world.state),
                str(self.port),
                *self.crash,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=open(self.world.tmp / f"server-{time.monotonic_ns()}.log", "wb"),  # noqa: SIM115
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until ready (or the process died)
        assert line.strip() == b"ready", f"server did not start: {line!r}"
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _serial_of(result: Any) -> int:
    return x509.load_der_x509_certificate(result.enrollment.ldevid_der).serial_number


async def _round(
    world: World, things: list[Thing], port: int, kill: ServerProcess | None
) -> dict[str, Any]:
    tasks = {asyncio.ensure_future(world.bootstrap(t, port, timeout_s=5)): t for t in things}
    results: dict[str, Any] = {}
    successes = 0
    for future in asyncio.as_completed(tasks):
        result = await future
        thing = next(t for f, t in tasks.items() if f.done() and f.result() is result)
        results[thing.serial] = result
        successes += result.outcome is Outcome.SUCCESS
        if kill is not None and successes == KILL_AFTER:
            kill.kill()  # mid-run: the other enrollments are in flight
    return results


def test_sigkill_mid_run_loses_nothing_and_repeats_no_serial(world: World) -> None:
    things = [world.make_thing(f"SN-{i:04d}") for i in range(THINGS)]
    world.write_material()
    port = free_udp_port()
    received: dict[str, list[int]] = {t.serial: [] for t in things}

    server = ServerProcess(world, port).start()
    try:
        first = asyncio.run(_round(world, things, port, kill=server))
    finally:
        server.kill()
    for serial, result in first.items():
        if result.outcome is Outcome.SUCCESS:
            received[serial].append(_serial_of(result))
    done_before_kill = sum(bool(v) for v in received.values())
    assert KILL_AFTER <= done_before_kill < THINGS, "the kill did not land mid-run"

    # The registry a SIGKILL left behind is intact, and holds every answered certificate.
    db = sqlite3.connect(world.state / "registry.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    committed = {r[0] for r in db.execute("SELECT serial FROM certificates")}
    db.close()
    assert {s for v in received.values() for s in v} <= committed

    server = ServerProcess(world, port).start()
    try:
        for _ in range(3):  # whoever did not get an answer tries again, as a thing would
            missing = [t for t in things if not received[t.serial]]
            if not missing:
                break
            for serial, result in asyncio.run(_round(world, missing, port, kill=None)).items():
                if result.outcome is Outcome.SUCCESS:
                    received[serial].append(_serial_of(result))
    finally:
        server.kill()

    assert all(received.values()), {s for s, v in received.items() if not v}
    handed_out = [s for v in received.values() for s in v]
    assert len(handed_out) == len(set(handed_out)) == THINGS

    registry = Registry.open(world.state)
    try:
        rows = registry.things()
        assert len(rows) == THINGS and {r.state for r in rows} == {ENROLLED}
        assert {r.serial: r.ldevid_serial for r in rows} == {s: v[-1] for s, v in received.items()}
        serials = registry.certificate_serials()
        assert len(serials) == len(set(serials)) >= THINGS
        assert set(handed_out) <= set(serials)
        # Certificates committed but never answered (the kill came first) are superseded now.
        revoked = registry.revoked_certificates()
        assert {r.reason for r in revoked} <= {SUPERSEDED}
        assert len(revoked) == len(serials) - THINGS
    finally:
        registry.close()


def test_crash_between_commit_and_answer(world: World) -> None:
    """The server dies right after committing the 3rd issuance: that thing never sees its
    certificate, asks again after the restart and gets a new serial; the lost one is revoked
    as superseded, so no certificate nobody holds stays valid."""
    things = [world.make_thing(f"SN-{i:04d}") for i in range(5)]
    world.write_material()
    port = free_udp_port()
    got: dict[str, int] = {}

    server = ServerProcess(world, port, crash_after_commit=3).start()
    try:
        for thing in things:  # one after the other: the 3rd is the one that gets no answer
            result = asyncio.run(world.bootstrap(thing, port, timeout_s=5))
            if result.outcome is Outcome.SUCCESS:
                got[thing.serial] = _serial_of(result)
    finally:
        assert server.proc is not None
        server.proc.wait(10)
        assert server.proc.returncode == -signal.SIGKILL
    assert sorted(got) == ["SN-0000", "SN-0001"]

    registry = Registry.open(world.state)
    lost = registry.thing("SN-0002")
    assert lost is not None and lost.state == ENROLLED and lost.ldevid_serial is not None
    registry.close()

    server = ServerProcess(world, port).start()
    try:
        for thing in things[2:]:
            result = asyncio.run(world.bootstrap(thing, port, timeout_s=5))
            assert result.outcome is Outcome.SUCCESS, result.detail
            got[thing.serial] = _serial_of(result)
    finally:
        server.kill()

    registry = Registry.open(world.state)
    try:
        assert len(registry.things()) == 5
        assert got["SN-0002"] > lost.ldevid_serial
        assert len(set(got.values())) == 5 and lost.ldevid_serial not in got.values()
        revoked = registry.revoked_certificates()
        assert [(r.serial, r.reason) for r in revoked] == [(lost.ldevid_serial, SUPERSEDED)]
        assert len(registry.certificate_serials()) == 6
    finally:
        registry.close()
