"""Scenario files: validation errors name file, line and key; ${...} placeholders; sweeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.errors import ScenarioError
from testbed.scenario.loader import parse_scenario, steps_for_point

ROOT = Path(__file__).resolve().parents[3]

GOOD = """\
name: demo
topology: ../topologies/minimal.yaml
seed: 4
sweep:
  parameter: loss
  values: [0.0, 0.2]
steps:
  - link_set: {link: pan-pan0, loss: "${loss}"}
  - bootstrap: {name: boot}
  - expect: {measure: boot.success_rate, min: 0.5, message: most bootstrap}
"""


def test_a_valid_scenario_has_its_points_and_default_setup() -> None:
    s = parse_scenario(GOOD, "demo.yaml")
    assert s.points() == [{"loss": 0.0}, {"loss": 0.2}]
    assert [st.kind for st in s.setup] == ["up"]
    assert [st.kind for st in s.steps] == ["link_set", "bootstrap", "expect"]


def test_placeholders_keep_the_value_type_per_point() -> None:
    steps = steps_for_point(GOOD, "demo.yaml", {"loss": 0.2, "repeat": 0, "seed": 4})
    assert steps[0].link_set is not None and steps[0].link_set.loss == 0.2


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (GOOD.replace("bootstrap: {name: boot}", "bootstrap: {name: boot, tiemout: 3}"),
         "demo.yaml:9: steps[1].bootstrap.tiemout: unknown key"),
        (GOOD.replace("  - bootstrap: {name: boot}\n", "  - {bootstrap: {}, wait: {seconds: 1}}\n"),
         "demo.yaml:9: steps[1]: a step is a mapping with exactly one of"),
        (GOOD.replace('"${loss}"', '"${los}"'),
         "demo.yaml:8: steps[0].link_set.loss: unknown parameter ${los}"),
        (GOOD.replace("min: 0.5, ", ""), "demo.yaml:10: steps[2].expect: give a bound"),
        (GOOD.replace("name: demo", "name: Demo"), "demo.yaml:1: name: String should match"),
        (GOOD.replace("seed: 4\n", "seed: 4\nseed: 5\n"), "demo.yaml:4: seed: key given twice"),
        (GOOD.replace("[0.0, 0.2]", "[0.0, 0.0]"),
         "demo.yaml:6: sweep.values: a value is given twice"),
    ],
)  # fmt: skip
def test_errors_name_file_line_and_key(text: str, where: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "demo.yaml")
    assert where in caught.value.message


def test_short_replaces_keys() -> None:
    text = GOOD + "short:\n  sweep: {parameter: loss, values: [0.1]}\n"
    assert parse_scenario(text, "demo.yaml", short=True).points() == [{"loss": 0.1}]
    assert len(parse_scenario(text, "demo.yaml").points()) == 2


SHIPPED = sorted(p for p in (ROOT / "scenarios").glob("*.yaml") if p.name != "nightly.yaml")


def test_the_nightly_suite_names_every_shipped_scenario() -> None:
    import yaml

    suite = yaml.safe_load((ROOT / "scenarios" / "nightly.yaml").read_text())
    assert sorted(suite["scenarios"]) == sorted(p.stem for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_scenario_is_valid_long_and_short(path: Path) -> None:
    text = path.read_text()
    for short in (False, True):
        s = parse_scenario(text, str(path), short=short)
        assert s.name == path.stem
        assert (path.parent / s.topology).is_file()
        for values in s.points():
            steps_for_point(text, str(path), {**values, "repeat": 0, "seed": s.seed}, short=short)
        assert any(st.kind == "expect" for st in s.steps), "a scenario states expectations"


def test_an_expectation_can_be_limited_to_sweep_points() -> None:
    text = GOOD.replace("message: most bootstrap}", "message: most bootstrap, when: {loss: 0.2}}")
    (expect,) = [s for s in parse_scenario(text, "demo.yaml").steps if s.kind == "expect"]
    assert expect.expect is not None and expect.expect.when == {"loss": 0.2}
