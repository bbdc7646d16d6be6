"""The scenario step ``move`` with a FAKE testbed (the real move runs in
tests/integration/test_mobility.py): what it records from the use case's result, how a refused
move fails the scenario or is only recorded, and that the shipped scenario parses with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.errors import MoveError, StepFailed
from testbed.scenario import loader, schema
from testbed.scenario.results import PointResult
from testbed.scenario.steps import Context, run_step
from testbed.usecases import MoveResult

ROOT = Path(__file__).resolve().parents[3]


class FakeTestbed:
    """NOT a testbed: answers a move with a fixed result, or refuses PAN floor9."""

    def __init__(self) -> None:
        self.moves: list[tuple[str, str, bool, float]] = []

    def move(self, thing: str, pan: str, *, reregister: bool, wait_read: float) -> MoveResult:
        self.moves.append((thing, pan, reregister, wait_read))
        if pan == "floor9":
            raise MoveError("run 'r' has no PAN 'floor9'", "radio PANs: floor1, floor2")
        return MoveResult(
            run="r", thing=thing, profile="dtls-psk", old_pan="floor1", pan=pan,
            old_address="fd00:10::ff:fe00:11", address="fd00:11::ff:fe00:11", short=0x11,
            old_router="br1", router="br2", reregistered=reregister, handshakes=1,
            lifecycle="operational", bootstrap={"bytes": 2150, "datagrams": 11},
            timings={"radio": 1.5, "reregistered": 2.0, "read_again": 9.5},
        )  # fmt: skip

    def state(self, node: str) -> dict[str, Any]:
        return {"bootstrap": {"radio": {"frames_sent": 14}}}


def _context(tmp_path: Path) -> tuple[Context, FakeTestbed]:
    fake = FakeTestbed()
    point = PointResult("move-between-pans", {}, 0, 1)
    return Context(fake, tmp_path, tmp_path / "t.yaml", point), fake  # type: ignore[arg-type]


def _values(ctx: Context) -> dict[str, Any]:
    return {m.name: m.value for m in ctx.point.measurements}


def test_a_move_records_its_cost_and_times(tmp_path: Path) -> None:
    ctx, fake = _context(tmp_path)
    step = schema.Step.model_validate(
        {"move": {"thing": "lamp-201", "pan": "floor2", "name": "psk"}}
    )
    run_step(ctx, step)
    assert fake.moves == [("lamp-201", "floor2", True, 120.0)]
    assert _values(ctx) == {
        "psk.ok": 1.0, "psk.radio_s": 1.5, "psk.read_again_s": 9.5, "psk.handshakes": 1.0,
        "psk.bytes": 2150, "psk.datagrams": 11, "psk.frames": 14.0,
    }  # fmt: skip


def test_a_refused_move_fails_the_point_or_is_recorded(tmp_path: Path) -> None:
    ctx, _ = _context(tmp_path)
    step = schema.Step.model_validate({"move": {"thing": "lamp-201", "pan": "floor9"}})
    with pytest.raises(StepFailed, match="has no PAN 'floor9'"):
        run_step(ctx, step)
    assert _values(ctx) == {"move.ok": 0.0}
    ctx, _ = _context(tmp_path)
    lenient = {"move": {"thing": "lamp-201", "pan": "floor9", "must_succeed": False}}
    run_step(ctx, schema.Step.model_validate(lenient))
    assert _values(ctx) == {"move.ok": 0.0}


def test_a_move_step_needs_thing_and_pan() -> None:
    with pytest.raises(ValueError, match="pan"):
        schema.Step.model_validate({"move": {"thing": "lamp-201"}})


def test_the_shipped_scenario_parses_in_both_versions() -> None:
    path = ROOT / "scenarios" / "move-between-pans.yaml"
    for short in (False, True):
        scenario = loader.load_scenario(path, short=short)
        kinds = [s.kind for s in scenario.steps]
        assert "move" in kinds
