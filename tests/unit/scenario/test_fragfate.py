"""The bootstrap step's fragment-fate measures (testbed.scenario.fragfate): per-thing tallies
from two readings of the medium's counters, the Chernoff bound, and the per-point summary."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from testbed.scenario.fragfate import (
    Bootstrap,
    Tally,
    chernoff_interval,
    fates_of,
    summarise,
    tally,
)


def link(datagrams: dict[str, int], lost: dict[str, int], one: dict[str, int], **kw: float) -> dict:
    fragments = sum(int(n) * c for n, c in datagrams.items())
    return {
        "datagrams": datagrams,
        "lost": lost,
        "lost_one": one,
        "fragments": fragments,
        "fragments_lost": kw.get("fragments_lost", 0),
        "expected_lost": kw.get("expected", 0.0),
        "expected_variance": 0.0,
        "unmodelled": kw.get("unmodelled", 0),
        "incomplete": 0,
    }


def show(fates: dict[str, dict]) -> dict:
    """A border router's link-show answer, as far as fragfate reads it."""
    return {"floor1": {"medium": {"fates": fates, "nodes": {}}, "short": "0x0000"}}


def test_fates_of_reads_every_pan_of_a_link_show_answer() -> None:
    got = fates_of(show({"lamp->br": link({"3": 1}, {}, {})}))
    assert list(got) == ["floor1:lamp->br"]
    assert fates_of(None) == {} and fates_of({"last_bootstrap": {}}) == {}


def test_tally_is_the_difference_on_the_things_links_only() -> None:
    before = {
        "br/floor1:lamp->br": link({"3": 2}, {}, {}, expected=0.1),
        "br/floor1:br->lamp": link({"4": 1}, {"4": 1}, {"4": 1}, fragments_lost=1, expected=0.2),
    }
    after = {
        "br/floor1:lamp->br": link({"3": 5}, {"3": 1}, {"3": 1}, fragments_lost=1, expected=0.4),
        "br/floor1:br->lamp": link({"4": 2}, {"4": 2}, {"4": 1}, fragments_lost=3, expected=0.5),
        "br/floor1:sensor->br": link({"3": 9}, {"3": 9}, {"3": 9}, fragments_lost=9),
    }
    t = tally(before, after, "lamp")
    assert (t.datagrams, t.lost, t.lost_one, t.fragments_lost) == (4, 2, 1, 3)
    assert t.fragments == 3 * 3 + 4 and t.sizes == {3: 3, 4: 1}
    assert t.expected_lost == pytest.approx(0.6)
    assert tally(before, after, "nobody") == Tally()


def _binomial_tail_outside(n: int, p: float, low: int, high: int) -> float:
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    return sum(pmf[:low]) + sum(pmf[high + 1 :])


@pytest.mark.parametrize(("n", "p"), [(10, 0.05), (40, 0.02), (200, 0.1), (60, 0.5), (500, 0.01)])
def test_chernoff_interval_leaves_out_at_most_alpha(n: int, p: float) -> None:
    alpha = 1e-3
    low, high = chernoff_interval(n * p, alpha)
    assert low <= n * p <= high
    assert _binomial_tail_outside(n, p, low, high) <= alpha
    # and it is a bound, not a blanket: it rejects what is far away
    assert high < n and (low > 0 or n * p < 8)


def test_chernoff_interval_edges() -> None:
    assert chernoff_interval(0.0) == (0, 0)  # no loss possible: any loss is a finding
    low, high = chernoff_interval(1.0)
    assert low == 0 and 4 <= high <= 8
    wide, narrow = chernoff_interval(20.0, 1e-6), chernoff_interval(20.0, 1e-2)
    assert wide[0] <= narrow[0] and wide[1] >= narrow[1]


def test_summary_of_a_point() -> None:
    hit_failed = Tally(
        datagrams=4, fragments=12, lost=1, lost_one=1, fragments_lost=1, expected_lost=0.5
    )
    hit_recovered = Tally(
        datagrams=5, fragments=15, lost=1, lost_one=1, fragments_lost=1, expected_lost=0.5
    )
    clean = Tally(datagrams=3, fragments=9, expected_lost=0.2)
    several = Tally(datagrams=3, fragments=9, lost=1, fragments_lost=2, expected_lost=0.3)
    m = summarise(
        [
            Bootstrap(hit_failed, False, 2),
            Bootstrap(hit_recovered, True, 1),
            Bootstrap(clean, True, 0),
            Bootstrap(several, True, 1),
        ]
    )
    assert m["datagrams"] == 15 and m["lost"] == 3 and m["lost_one"] == 2
    assert m["fragments_per_datagram"] == pytest.approx(45 / 15)
    assert m["frame_loss"] == pytest.approx(4 / 45)
    assert m["expected_lost"] == pytest.approx(1.5)
    assert m["bootstraps_hit"] == pytest.approx(2 / 4)
    assert m["recovered"] == pytest.approx(1 / 2)
    assert m["lost_to_single_fragment"] == pytest.approx(1 / 4)
    assert m["retransmissions"] == pytest.approx(1.0)
    low, high = chernoff_interval(1.5)
    assert (m["bound_low"], m["bound_high"], m["model_ok"]) == (low, high, 1.0)


def test_summary_flags_loss_the_model_does_not_explain_and_bursty_links() -> None:
    lossy = Tally(datagrams=50, fragments=150, lost=20, lost_one=20, expected_lost=0.5)
    assert summarise([Bootstrap(lossy, True)])["model_ok"] == 0.0
    none_lost = Tally(datagrams=3, fragments=9)
    m = summarise([Bootstrap(none_lost, True)])
    assert m["model_ok"] == 1.0 and m["recovered"] is None and m["lost_to_single_fragment"] == 0.0
    bursty = Tally(datagrams=3, fragments=9, unmodelled=3)
    m = summarise([Bootstrap(bursty, True)])
    assert m["model_ok"] is None and m["expected_lost"] is None
    assert summarise([])["bootstraps_hit"] is None


def test_the_report_plots_measured_loss_against_the_model() -> None:
    from testbed.scenario import plots
    from testbed.scenario.results import Measurement, PointResult, ScenarioResult

    result = ScenarioResult(
        "fragmentation-fate",
        "",
        "f.yaml",
        "run",
        7,
        {"parameter": "loss", "values": [0.0, 0.3]},
        1,
        0.0,
        1.0,
    )
    for loss, lost, mu in ((0.0, 0.0, 0.0), (0.3, 2.0, 1.2)):
        point = PointResult("fragmentation-fate", {"loss": loss}, 0, 7)
        low, high = chernoff_interval(mu)
        for name, value in (
            ("lost", lost),
            ("expected_lost", mu),
            ("bound_low", low),
            ("bound_high", high),
        ):
            point.measurements.append(Measurement(f"boot.frag.{name}", float(value)))
        result.points.append(point)
    figures = plots.fate_plots(result)
    assert [t for t, _ in figures] == ["boot: datagrams lost to fragment loss, measured and model"]
    assert figures[0][1].startswith("data:image/png;base64,")


class _Building:
    """NOT a testbed: one router whose medium counts what the bootstrap of t1 sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.shows = 0

    def things(self) -> list[str]:
        return ["t1"]

    def nodes(self, role: str | None = None) -> list[str]:
        return ["br1"] if role == "border_router" else ["br1", "t1"]

    def action(self, node: str, action: str, params: dict, timeout: float = 30) -> dict:  # type: ignore[type-arg]
        self.calls.append((node, action))
        if action != "link-show":
            return {}
        self.shows += 1
        done = {"3": 2} if self.shows > 1 else {}
        lost = {"3": 1} if self.shows > 1 else {}
        return show({"t1->br1": link(done, lost, lost, fragments_lost=1, expected=0.25)})

    def state(self, node: str) -> dict:  # type: ignore[type-arg]
        return {"lifecycle": "operational", "bootstrap": {"messages": [{"retransmissions": 1}]}}


def test_the_bootstrap_step_reads_fates_only_when_asked(tmp_path: Path) -> None:
    from testbed.scenario import schema, steps
    from testbed.scenario.results import PointResult

    for asked in (False, True):
        building = _Building()
        point = PointResult("s", {"loss": 0.3}, 0, 1)
        ctx = steps.Context(building, tmp_path, tmp_path / "t.yaml", point)  # type: ignore[arg-type]
        steps.bootstrap(ctx, schema.Bootstrap(name="boot", fates=asked))
        values = {m.name: m.value for m in point.measurements}
        assert (("br1", "link-show") in building.calls) == asked
        assert ("boot.frag.lost" in values) == asked
        if asked:
            assert values["boot.frag.datagrams"] == 2 and values["boot.frag.lost_one"] == 1
            assert (
                values["boot.frag.bootstraps_hit"] == 1.0 and values["boot.frag.recovered"] == 1.0
            )
            assert values["boot.frag.retransmissions"] == 1.0
