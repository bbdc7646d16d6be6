"""The lifecycle table and its persistence."""

from __future__ import annotations

import itertools
import json
import os
import stat
from pathlib import Path

import pytest

from testbed.node.errors import LifecycleError, StateError
from testbed.node.lifecycle import (
    TRANSITIONS,
    LifecycleState,
    LifecycleStore,
    check_transition,
)

S = LifecycleState
LEGAL = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}


def test_table_covers_every_state_and_has_no_self_loops() -> None:
    assert set(TRANSITIONS) == set(LifecycleState)
    assert all(a not in targets for a, targets in TRANSITIONS.items())


def test_the_rfc8576_path_is_legal() -> None:
    path = [
        S.MANUFACTURED,
        S.INSTALLED,
        S.BOOTSTRAPPING,
        S.OPERATIONAL,
        S.MAINTENANCE,
        S.OPERATIONAL,
        S.BOOTSTRAPPING,
        S.OPERATIONAL,
        S.DECOMMISSIONED,
        S.MANUFACTURED,
    ]
    for a, b in itertools.pairwise(path):
        check_transition(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    sorted(set(itertools.product(LifecycleState, repeat=2)) - LEGAL),
)
def test_every_other_transition_raises(a: LifecycleState, b: LifecycleState) -> None:
    with pytest.raises(LifecycleError, match=f"{a.value} -> {b.value}"):
        check_transition(a, b)


def test_decommissioned_cannot_be_operational_again() -> None:
    with pytest.raises(LifecycleError) as err:
        check_transition(S.DECOMMISSIONED, S.OPERATIONAL)
    assert "manufactured" in err.value.hint


def test_store_creates_persists_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = LifecycleStore(path)
    record, created = store.load()
    assert (record.state, record.transitions, created) == (S.INSTALLED, 0, True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    store.move(S.BOOTSTRAPPING)
    again, created = LifecycleStore(path).load()
    assert (again.state, again.transitions, created) == (S.BOOTSTRAPPING, 1, False)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp files left


def test_illegal_move_leaves_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = LifecycleStore(path)
    store.load()
    before = path.read_bytes()
    with pytest.raises(LifecycleError):
        store.move(S.OPERATIONAL)
    assert path.read_bytes() == before
    assert store.state is S.INSTALLED


@pytest.mark.parametrize(
    "content",
    [
        '{"lifecycle": "decommi',
        "[]",
        '{"lifecycle": "zombie", "since": 1, "transitions": 0}',
        '{"since": 1}',
    ],
)
def test_corrupt_or_invalid_state_raises(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StateError):
        LifecycleStore(path).load()
    assert path.read_text() == content


def test_unwritable_state_dir_raises_state_error(tmp_path: Path) -> None:
    store = LifecycleStore(tmp_path / "missing-dir" / "state.json")
    with pytest.raises(StateError, match="cannot write"):
        store.load()


def test_file_format(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    LifecycleStore(path).load()
    data = json.loads(path.read_text())
    assert data["schema"] == 1
    assert data["lifecycle"] == "installed"
