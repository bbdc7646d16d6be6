"""Scenario overrides merge into the topology by key and by name; the seed goes to every PAN."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.errors import ScenarioError
from testbed.scenario.topology import merge, write_merged

ROOT = Path(__file__).resolve().parents[3]


def test_named_lists_merge_by_name_and_append_new_items() -> None:
    base = {"pans": [{"name": "a", "loss": 0.0}], "hosts": [{"name": "b", "role": "backend"}]}
    out = merge(base, {"pans": {"a": {"loss": 0.1}}, "hosts": [{"name": "m", "role": "attacker"}]})
    assert out["pans"] == [{"name": "a", "loss": 0.1}]
    assert [h["name"] for h in out["hosts"]] == ["b", "m"]
    assert base["pans"][0]["loss"] == 0.0  # the input is not changed


def test_an_override_of_an_unknown_name_is_an_error() -> None:
    with pytest.raises(ScenarioError, match="no item named 'nope'"):
        merge({"pans": [{"name": "a"}]}, {"pans": {"nope": {"loss": 0.1}}})


def test_the_merged_topology_is_valid_and_seeded(tmp_path: Path) -> None:
    topo = write_merged(
        ROOT / "topologies/minimal.yaml",
        {"pans": {"pan0": {"medium": "radio"}}},
        42,
        tmp_path / "t.yaml",
    )
    assert topo.pans[0].medium == "radio" and topo.pans[0].seed == 42
    again = write_merged(
        ROOT / "topologies/minimal.yaml",
        {"pans": {"pan0": {"medium": "radio"}}},
        42,
        tmp_path / "u.yaml",
    )
    assert again == topo
