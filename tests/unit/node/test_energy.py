"""The energy estimate: arithmetic against the datasheet figures, per-phase energy from the
meter's samples, and the plan that hands the model to things on radio PANs only."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.contracts.energy import DATASHEETS, EnergyModel, model_for
from testbed.node.energy import EnergyMeter
from testbed.plan import make_plan
from testbed.scenario.topology import merge
from testbed.topology.loader import parse_topology

ROOT = Path(__file__).resolve().parents[3]


def test_one_second_of_each_activity_at_the_nrf52840_figures() -> None:
    model = EnergyModel(DATASHEETS["nrf52840"], duty_cycle=0.01)
    parts = model.joules(tx_s=1.0, rx_s=1.0, cpu_s=1.0, wall_s=102.0)
    assert parts["tx"] == pytest.approx(3.0 * 6.40e-3)
    assert parts["rx"] == pytest.approx(3.0 * 6.53e-3)
    assert parts["cpu"] == pytest.approx(3.0 * 3.3e-3)
    assert parts["listen"] == pytest.approx(3.0 * 6.53e-3 * 0.01 * 100)  # 100 s idle
    assert parts["sleep"] == pytest.approx(3.0 * 1.5e-6 * 0.99 * 100)


def test_overrides_replace_figures_and_say_so() -> None:
    model = model_for("cc2538", 0.05, 1.0, {"tx_ma": 34.0, "voltage": None})
    assert model.radio.tx_ma == 34.0 and model.radio.rx_ma == 20.0
    assert "overridden: tx_ma" in model.radio.source
    assert EnergyModel.from_attribute(model.to_attribute()) == model


def test_per_phase_energy_is_the_difference_between_samples() -> None:
    now = [1000.0]
    airtime = [0.0]
    meter = EnergyMeter(
        EnergyModel(DATASHEETS["nrf52840"], duty_cycle=0.0),
        lambda: (airtime[0], 10, 0),
        clock=lambda: now[0],
        cpu=lambda: 0.0,
    )
    for second in range(10):
        now[0] = 1000.0 + second
        airtime[0] = 0.01 * second  # 10 ms of transmission per second
        meter.sample()
    meter.on_phase("commission", start=1002.0, end=1006.0)
    expected = 3.0 * 6.40e-3 * 0.04 + 3.0 * 1.5e-6 * (4.0 - 0.04)  # 40 ms of TX, the rest asleep
    assert meter.phases["commission"] == pytest.approx(expected)
    assert meter.state()["phases_joules"]["commission"] == pytest.approx(expected)


def test_the_plan_gives_an_energy_model_to_radio_things_only() -> None:
    import yaml

    def plan(name: str, overrides: dict[str, object]) -> list[tuple[str, str, bool]]:
        data = merge(yaml.safe_load((ROOT / "topologies" / name).read_text()), overrides)
        nodes = make_plan(parse_topology(yaml.safe_dump(data)), "energy-test").nodes
        return [(n.name, n.role, "energy" in n.config.attributes) for n in nodes]

    with_energy = {"energy": {"radio": "cc2538", "duty_cycle": "2%"}}
    radio = plan("radio.yaml", with_energy)
    assert {name for name, role, has in radio if has} == {
        name for name, role, _ in radio if role == "thing"
    }
    assert len([1 for _, _, has in radio if has]) == 3
    assert not any(has for _, _, has in plan("radio.yaml", {}))  # asked for only
    assert not any(has for _, _, has in plan("minimal.yaml", with_energy))  # bridge PAN
