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

Figures (typical, 3 V) come from the datasheets named in ``DATASHEETS``, each cited with its
table and value in ``CITATIONS`` (and in docs/nightly.md); topology parameters can override
each one. Exported as ``testbed_thing_energy_joules{component}`` (tx, rx, listen,
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


# Each figure with the document, table and value it comes from (docs/nightly.md, "Energy per
# thing", repeats this table; tests/unit/node/test_datasheets.py pins each figure to it).
# ``verified`` says how the value was checked: against the vendor's own page, against a
# verbatim copy of the vendor's table, or not at all (then the figure is a stated assumption).
NRF52840_PS = "Nordic nRF52840 Product Specification (v1.x), Electrical specification"
CC2538_DS = "TI CC2538 datasheet, SWRS096D (December 2012, revised April 2015)"


@dataclass(frozen=True)
class Citation:
    document: str
    where: str  # section / table and the parameter's symbol or row
    value: float
    unit: str
    verified: str


CITATIONS: Mapping[str, Mapping[str, Citation]] = {
    "nrf52840": {
        "tx_ma": Citation(
            NRF52840_PS,
            "Radio transmitting/receiving, IRADIO_TX5: 0 dBm, 250 kbit/s IEEE 802.15.4-2006 "
            "mode, Clock = HFXO, Regulator = DC/DC",
            6.40,
            "mA",
            "vendor page (docs.nordicsemi.com, ps_nrf52840, parameters.i_radio)",
        ),
        "rx_ma": Citation(
            NRF52840_PS,
            "Radio transmitting/receiving, IRADIO_RX2: 250 kbit/s IEEE 802.15.4-2006 mode, "
            "Clock = HFXO, Regulator = DC/DC",
            6.53,
            "mA",
            "vendor page (docs.nordicsemi.com, ps_nrf52840, parameters.i_radio)",
        ),
        "cpu_ma": Citation(
            NRF52840_PS,
            "CPU running, CPU running CoreMark @64 MHz from flash, cache enabled, DC/DC",
            3.3,
            "mA",
            "not verified: the CPU running table was not reachable (a third-party calculator "
            "quotes 3.2 mA for this row)",
        ),
        "sleep_ua": Citation(
            NRF52840_PS,
            "Sleep, ION_RAMOFF_RTC: System ON, no RAM retention, wake on RTC (LFRC)",
            1.5,
            "uA",
            "verbatim copy of the Sleep table (1.50 uA); the vendor page was not reachable",
        ),
        "voltage": Citation(
            NRF52840_PS,
            "Current consumption scenarios: supply 3 V on VDD",
            3.0,
            "V",
            "not verified: the common-conditions table of the nRF52840 was not reachable",
        ),
    },
    "cc2538": {
        "tx_ma": Citation(
            CC2538_DS,
            "1.1 Features, Low Power: active-mode TX at 0 dBm (CPU idle)",
            24.0,
            "mA",
            "verbatim copy of the feature list; TI's page showed only its table of contents",
        ),
        "rx_ma": Citation(
            CC2538_DS,
            "1.1 Features, Low Power: active-mode RX (CPU idle)",
            20.0,
            "mA",
            "verbatim copy of the feature list; TI's page showed only its table of contents",
        ),
        "cpu_ma": Citation(
            CC2538_DS,
            "5.4 Electrical Characteristics: active mode, CPU at 32 MHz (radio off)",
            13.0,
            "mA",
            "not verified: section 5.4 was not reachable; a stated assumption",
        ),
        "sleep_ua": Citation(
            CC2538_DS,
            "1.1 Features, Low Power: power mode 2 (sleep timer running, 16-kB RAM retention, "
            "configuration register retention)",
            1.3,
            "uA",
            "verbatim copy of the feature list; TI's page showed only its table of contents",
        ),
        "voltage": Citation(
            CC2538_DS,
            "5.4 Electrical Characteristics: VDD = 3 V",
            3.0,
            "V",
            "not verified: section 5.4 was not reachable",
        ),
    },
}

DATASHEETS: Mapping[str, RadioFigures] = {
    "nrf52840": RadioFigures(
        "Nordic nRF52840",
        f"{NRF52840_PS}: IRADIO_TX5 (0 dBm, IEEE 802.15.4 250 kbit/s, DC/DC) 6.40 mA, "
        "IRADIO_RX2 (IEEE 802.15.4, DC/DC) 6.53 mA, ION_RAMOFF_RTC (System ON, no RAM "
        "retention, wake on RTC) 1.50 uA; CPU running CoreMark from flash at 64 MHz, DC/DC, "
        "3.3 mA (not verified)",
        3.0,
        6.40,
        6.53,
        3.3,
        1.5,
    ),
    "cc2538": RadioFigures(
        "TI CC2538",
        f"{CC2538_DS}, 1.1 Features: active-mode TX at 0 dBm (CPU idle) 24 mA, active-mode RX "
        "(CPU idle) 20 mA, power mode 2 (sleep timer running) 1.3 uA; CPU active at 32 MHz "
        "13 mA (not verified, a stated assumption)",
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
