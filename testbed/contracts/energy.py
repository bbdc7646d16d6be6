"""Energy per thing, estimated from what the node already knows, with a named radio's figures.

    E = V * (I_tx * t_tx + I_rx * t_rx + I_rx * d * t_idle + I_cpu * t_cpu + I_sleep * t_sleep)

- t_tx: airtime of the frames the thing's station sent (the radio's own count, at 250 kbit/s);
- t_rx: frames received x the mean airtime of a frame on this PAN (the station does not time
  reception; the mean of its own frames stands in for it);
- t_idle: the rest of the wall time; the radio listens a fraction ``d`` of it (the stated MAC
  duty-cycle assumption: 1 % by default, a ContikiMAC/RDC-like low-power listening; 100 %
  for an always-on receiver) and sleeps otherwise (t_sleep);
- t_cpu: the node process's CPU time, scaled by ``cpu_scale`` (a Python process on a PC is not
  a Cortex-M; 1.0 means "as many seconds as the emulation used", a stated upper bound).

Figures (typical, 3 V) come from the datasheets named in ``DATASHEETS``; topology parameters
can override each one. Exported as ``testbed_thing_energy_joules{component}`` (tx, rx, listen,
cpu, sleep) and, per lifecycle phase run (phase marks), ``testbed_thing_energy_phase_joules``.
Standard library only: the planner builds the model (``model_for``), writes it as the thing's
``energy`` attribute, and the node's meter (testbed.node.energy) reads it back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

ATTRIBUTE = "energy"
COMPONENTS = ("tx", "rx", "listen", "cpu", "sleep")
MAX_FRAME_AIRTIME_S = (6 + 127) * 8 / 250_000  # SHR+PHR and a full PSDU at 250 kbit/s


@dataclass(frozen=True)
class RadioFigures:
    name: str
    source: str
    voltage: float  # V
    tx_ma: float
    rx_ma: float
    cpu_ma: float
    sleep_ua: float


DATASHEETS: Mapping[str, RadioFigures] = {
    "nrf52840": RadioFigures(
        "Nordic nRF52840",
        "nRF52840 Product Specification, radio current consumption: IRADIO_TX5 (0 dBm, "
        "IEEE 802.15.4 250 kbit/s, DC/DC) 6.40 mA, IRADIO_RX2 (IEEE 802.15.4, DC/DC) 6.53 mA; "
        "CPU running CoreMark from flash at 64 MHz, DC/DC: 3.3 mA; System ON idle with RAM "
        "retention: about 1.5 uA",
        3.0,
        6.40,
        6.53,
        3.3,
        1.5,
    ),
    "cc2538": RadioFigures(
        "TI CC2538",
        "CC2538 datasheet (SWRS096), feature summary: active-mode RX (CPU idle) 20 mA, "
        "active-mode TX at 0 dBm (CPU idle) 24 mA, power mode 2 (sleep timer on) 1.3 uA; "
        "CPU active at 32 MHz taken as 13 mA",
        3.0,
        24.0,
        20.0,
        13.0,
        1.3,
    ),
}


@dataclass(frozen=True)
class EnergyModel:
    radio: RadioFigures
    duty_cycle: float = 0.01
    cpu_scale: float = 1.0

    def to_attribute(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_attribute(cls, text: str) -> EnergyModel:
        data = json.loads(text)
        return cls(
            RadioFigures(**data["radio"]), float(data["duty_cycle"]), float(data["cpu_scale"])
        )

    def joules(self, tx_s: float, rx_s: float, cpu_s: float, wall_s: float) -> dict[str, float]:
        r, v = self.radio, self.radio.voltage
        idle = max(0.0, wall_s - tx_s - rx_s)
        return {
            "tx": v * r.tx_ma * 1e-3 * tx_s,
            "rx": v * r.rx_ma * 1e-3 * rx_s,
            "listen": v * r.rx_ma * 1e-3 * self.duty_cycle * idle,
            "cpu": v * r.cpu_ma * 1e-3 * cpu_s * self.cpu_scale,
            "sleep": v * r.sleep_ua * 1e-6 * (1.0 - self.duty_cycle) * idle,
        }


def model_for(
    radio: str, duty_cycle: float, cpu_scale: float, overrides: Mapping[str, float | None]
) -> EnergyModel:
    """The planner's side: a datasheet by name, with the topology's overrides applied."""
    figures = DATASHEETS[radio]
    given = {k: float(v) for k, v in overrides.items() if v is not None}
    if given:
        note = f"{figures.source} (overridden: {', '.join(sorted(given))})"
        figures = RadioFigures(**{**asdict(figures), **given, "source": note})
    return EnergyModel(figures, duty_cycle, cpu_scale)
