"""Topology validation: good files load; each bad fixture fails naming its key, file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testbed.errors import TopologyError
from testbed.topology import load_topology, parse_topology
from testbed.topology.schema import Topology

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "topologies"
BAD = sorted((FIXTURES / "bad").glob("*.yaml"))


def _expected_key(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path} needs an '# expect: KEY' first line"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize(
    "path", [*sorted((ROOT / "topologies").glob("*.yaml"))], ids=lambda p: p.name
)
def test_shipped_topologies_load(path: Path) -> None:
    topology = load_topology(path)
    assert topology.node_names()


def test_default_topology_is_the_documented_building() -> None:
    topo = load_topology(ROOT / "topologies" / "default.yaml")
    things = [n for t in topo.things for n in t.names()]
    assert len(topo.domains) == 1 and len(topo.border_routers) == 1 and len(topo.pans) == 1
    assert len(topo.vendors) == 2 and len(things) == 6
    roles = {topo.model(t.vendor, t.model).role for t in topo.things}
    assert {"thermostat", "luminaire"} <= roles  # HVAC and lighting
    assert [h.role for h in topo.hosts] == ["backend"]
    assert len(load_topology(ROOT / "topologies" / "minimal.yaml").things) == 1


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_topology_names_file_line_and_key(path: Path) -> None:
    key = _expected_key(path)
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    message = caught.value.message
    assert key in message, message
    assert re.search(rf"{re.escape(str(path))}:\d+", message), message
    assert caught.value.hint


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("fixture", "needle"),
    [
        ("unknown-vendor", "vendor: acne"),
        ("typo-key", "vendr:"),
        ("loss-over-one", "loss: 20"),
        ("duplicate-key", "vendor: acme"),
        ("router-unknown-pan", "pans: [p1, p7]"),
    ],
)
def test_error_points_at_the_right_line(fixture: str, needle: str) -> None:
    path = FIXTURES / "bad" / f"{fixture}.yaml"
    text = path.read_text()
    expected = _line_of(text, needle)
    if fixture == "duplicate-key":  # the second occurrence is the offending one
        expected += 1
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    assert f"{path}:{expected}:" in caught.value.message


def test_percentages_durations_and_rates_are_parsed() -> None:
    text = (FIXTURES / "good" / "base.yaml").read_text() + (
        "links:\n  internet:\n    delay: 30ms\n    jitter: 500us\n    loss: 2.5%\n"
        "    rate: 250kbit\n  backbone:\n    loss: 0.1\n"
    )
    topo = parse_topology(text)
    assert topo.links.internet.delay == pytest.approx(0.030)
    assert topo.links.internet.jitter == pytest.approx(0.0005)
    assert topo.links.internet.loss == pytest.approx(0.025)
    assert topo.links.internet.rate == 250_000
    assert topo.links.backbone.loss == pytest.approx(0.1)


def test_groups_expand_by_pattern() -> None:
    text = (
        (FIXTURES / "good" / "base.yaml")
        .read_text()
        .replace("  - name: t1\n", "  - name: 'lamp-{n:02d}'\n    count: 3\n    start: 9\n")
    )
    names = parse_topology(text).things[0].names()
    assert names == ["lamp-09", "lamp-10", "lamp-11"]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as caught:
        load_topology(tmp_path / "nope.yaml")
    assert "nope.yaml" in caught.value.message and "no such" in caught.value.message


def test_json_schema_lists_the_sections() -> None:
    schema = Topology.model_json_schema()
    assert {"building", "vendors", "domains", "pans", "things", "hosts", "links"} <= set(
        schema["properties"]
    )
    assert schema["additionalProperties"] is False


def test_topologies_name_exactly_the_profiles_the_node_implements() -> None:
    """One list of bootstrap profiles: the node's registry. The schema (and the JSON Schema
    editors complete from) offers exactly its names, and every one of them validates."""
    from testbed.node.thing.profiles import PROFILES

    text = (FIXTURES / "bad" / "profile-not-available.yaml").read_text()
    for name in PROFILES:
        assert parse_topology(text.replace("no-such-profile", name), "t.yaml")
    with pytest.raises(TopologyError, match="available: " + ", ".join(PROFILES)):
        parse_topology(text, "t.yaml")
    schema = Topology.model_json_schema()
    assert schema["$defs"]["Model"]["properties"]["profile"]["enum"] == list(PROFILES)
