"""Each energy figure is the value of the datasheet row it cites (testbed.node.energy), and the
documentation shows the same value and citation. A figure changed without its citation, or the
other way round, fails here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from testbed.contracts.energy import CITATIONS, DATASHEETS

DOCS = Path(__file__).resolve().parents[3] / "docs" / "nightly.md"

# (radio, figure, value, row of the datasheet it must cite)
PINNED = [
    ("nrf52840", "tx_ma", 6.40, "IRADIO_TX5"),
    ("nrf52840", "rx_ma", 6.53, "IRADIO_RX2"),
    ("nrf52840", "cpu_ma", 3.3, "CPU running CoreMark @64 MHz from flash"),
    ("nrf52840", "sleep_ua", 1.5, "ION_RAMOFF_RTC"),
    ("nrf52840", "voltage", 3.0, "supply 3 V"),
    ("cc2538", "tx_ma", 24.0, "active-mode TX at 0 dBm (CPU idle)"),
    ("cc2538", "rx_ma", 20.0, "active-mode RX (CPU idle)"),
    ("cc2538", "cpu_ma", 13.0, "CPU at 32 MHz"),
    ("cc2538", "sleep_ua", 1.3, "power mode 2"),
    ("cc2538", "voltage", 3.0, "VDD = 3 V"),
]
UNVERIFIED = {
    ("nrf52840", "cpu_ma"),
    ("nrf52840", "voltage"),
    ("cc2538", "cpu_ma"),
    ("cc2538", "voltage"),
}


@pytest.mark.parametrize(("radio", "figure", "value", "row"), PINNED)
def test_each_figure_is_its_cited_value(radio: str, figure: str, value: float, row: str) -> None:
    cited = CITATIONS[radio][figure]
    assert getattr(DATASHEETS[radio], figure) == pytest.approx(value)
    assert cited.value == pytest.approx(value)
    assert row in cited.where
    assert ("nRF52840 Product Specification" if radio == "nrf52840" else "SWRS096") in (
        cited.document
    )
    assert cited.verified.startswith("not verified") == ((radio, figure) in UNVERIFIED)


def test_every_figure_has_a_citation_and_the_source_names_the_document() -> None:
    for radio, figures in DATASHEETS.items():
        numbers = {f.name for f in dataclasses.fields(figures) if f.name not in ("name", "source")}
        assert set(CITATIONS[radio]) == numbers
        assert CITATIONS[radio]["tx_ma"].document in figures.source
        assert {(radio, f) for f in numbers} == {(r, f) for r, f, _, _ in PINNED if r == radio}


def test_the_documentation_shows_each_cited_value_and_what_is_unverified() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## Energy per thing") : text.index("## Shipped scenarios")]
    for radio, figure, value, row in PINNED:
        unit = CITATIONS[radio][figure].unit
        assert f"{value:g} {unit}" in section, (radio, figure)
        assert row in section, (radio, figure)
    assert section.count("not verified") >= len(UNVERIFIED)
