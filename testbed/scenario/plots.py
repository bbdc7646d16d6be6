"""Figures for report.html (matplotlib, Agg: no display), returned as inline PNG data URIs."""

from __future__ import annotations

import base64
import io
import statistics
from collections import defaultdict
from typing import Any

from testbed.scenario.results import ScenarioResult

MAX_SWEEP_PLOTS = 12


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.2), dpi=100)
    return fig, ax


def _data_uri(fig: Any) -> str:
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


Row = tuple[float | str, float, float, float]


def sweep_data(scenario: ScenarioResult) -> dict[str, list[Row]]:
    """measure -> [(x, mean, min, max)] over the repeats, for every numeric measure; x is the
    sweep value (numbers sorted, other values in the order of the sweep)."""
    if not scenario.sweep:
        return {}
    parameter = scenario.sweep["parameter"]
    order = {str(v): i for i, v in enumerate(scenario.sweep["values"])}
    by: dict[str, dict[float | str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for point in scenario.points:
        x = point.point.get(parameter)
        if not isinstance(x, int | float | str):
            continue
        for m in point.measurements:
            if isinstance(m.value, int | float):
                by[m.name][float(x) if isinstance(x, int | float) else x].append(float(m.value))
    out = {}
    for name, xs in by.items():
        keys = sorted(
            xs, key=lambda k: (0, k, "") if isinstance(k, float) else (1, order.get(k, 0), k)
        )
        rows: list[Row] = [(x, statistics.fmean(xs[x]), min(xs[x]), max(xs[x])) for x in keys]
        if len(rows) >= 2:
            out[name] = rows
    return out


def sweep_plots(scenario: ScenarioResult) -> list[tuple[str, str]]:
    """(title, data URI) per numeric measure against the sweep parameter."""
    if not scenario.sweep:
        return []
    parameter, unit = scenario.sweep["parameter"], scenario.sweep.get("unit", "")
    out = []
    expected = {e.measure for p in scenario.points for e in p.expectations}
    data = sweep_data(scenario)
    # Measures named in expectations first: those are what the scenario is about.
    # A measure that is the same at every point says nothing a table does not.
    varying = [n for n in data if n in expected or len({r[1] for r in data[n]}) > 1]
    names = sorted(varying, key=lambda n: (n not in expected, n))[:MAX_SWEEP_PLOTS]
    for name in names:
        rows = data[name]
        fig, ax = _figure()
        means = [r[1] for r in rows]
        low = [r[1] - r[2] for r in rows]
        high = [r[3] - r[1] for r in rows]
        if all(isinstance(r[0], float) for r in rows):
            ax.errorbar([r[0] for r in rows], means, yerr=[low, high], marker="o", capsize=3)
        else:  # named sweep values (e.g. sources: own, spoofed): bars
            ax.bar(range(len(rows)), means, yerr=[low, high], capsize=3)
            ax.set_xticks(range(len(rows)), [str(r[0]) for r in rows])
        ax.set_xlabel(f"{parameter} {f'({unit})' if unit else ''}".strip())
        ax.set_ylabel(name)
        ax.set_title(f"{scenario.name}: {name}", fontsize=9)
        ax.grid(alpha=0.3)
        out.append((f"{name} against {parameter}", _data_uri(fig)))
    return out


def fate_plots(scenario: ScenarioResult) -> list[tuple[str, str]]:
    """Per bootstrap step with fragment fates (fragfate.py): datagrams lost against the sweep,
    measured (mean, min-max over the repeats) beside the model's expectation and its Chernoff
    bound (the widest over the repeats)."""
    if not scenario.sweep:
        return []
    parameter, unit = scenario.sweep["parameter"], scenario.sweep.get("unit", "")
    data = sweep_data(scenario)
    out = []
    for name in sorted(n[: -len(".frag.lost")] for n in data if n.endswith(".frag.lost")):
        lost, expected = data[f"{name}.frag.lost"], data.get(f"{name}.frag.expected_lost")
        low, high = data.get(f"{name}.frag.bound_low"), data.get(f"{name}.frag.bound_high")
        if not expected or not all(isinstance(r[0], float) for r in lost):
            continue
        fig, ax = _figure()
        xs = [float(r[0]) for r in lost]
        means = [r[1] for r in lost]
        ax.errorbar(
            xs,
            means,
            yerr=[[r[1] - r[2] for r in lost], [r[3] - r[1] for r in lost]],
            marker="o",
            capsize=3,
            label="lost (measured)",
        )
        ax.plot([float(r[0]) for r in expected], [r[1] for r in expected], "k--", label="model")
        if low and high and len(low) == len(high):
            ax.fill_between(
                [float(r[0]) for r in high],
                [r[2] for r in low],
                [r[3] for r in high],
                alpha=0.15,
                label="Chernoff bound, alpha 0.001",
            )
        ax.set_xlabel(f"{parameter} {f'({unit})' if unit else ''}".strip())
        ax.set_ylabel("fragmented datagrams lost per point")
        ax.set_title(f"{scenario.name}: {name} fragment fates, 1-(1-q)^n", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        out.append((f"{name}: datagrams lost to fragment loss, measured and model", _data_uri(fig)))
    return out


def series_plots(scenario: ScenarioResult) -> list[tuple[str, str]]:
    """One figure per measured time series (all points of the scenario overlaid)."""
    grouped: dict[str, list[tuple[str, list[list[float]]]]] = defaultdict(list)
    for point in scenario.points:
        for m in point.measurements:
            if m.series:
                grouped[m.name].append((point.label, m.series))
    out = []
    for name, lines in sorted(grouped.items()):
        fig, ax = _figure()
        for label, series in lines:
            ax.plot([p[0] for p in series], [p[1] for p in series], label=label)
        ax.set_xlabel("seconds into the window")
        ax.set_ylabel(name)
        ax.set_title(f"{scenario.name}: {name}", fontsize=9)
        if len(lines) > 1:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        out.append((f"{name} over time", _data_uri(fig)))
    return out
