"""report.html: one self-contained page per suite (plots inlined as PNG, no external assets):
a summary table, every expectation met or failed, the plots of every sweep and time series,
every measured value, and links to the captures, metrics snapshots and logs."""

from __future__ import annotations

import datetime
import html
from pathlib import Path

from testbed.scenario import plots
from testbed.scenario.results import NOT_DETERMINISTIC, ScenarioResult, SuiteResult

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;font-size:.9em}th{background:#f3f3f3}.passed{color:#176d1e;font-weight:600}
.failed{color:#b00020;font-weight:600}.error{color:#8a4b00;font-weight:600}
figure{display:inline-block;margin:.5em}figcaption{font-size:.8em;color:#555}
code{background:#f6f6f6;padding:0 .2em}section{border-top:2px solid #ddd;margin-top:2em}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else _e(value)


def render(suite: SuiteResult) -> str:
    status_total = {
        s: sum(1 for x in suite.scenarios if x.status == s) for s in ("passed", "failed", "error")
    }
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>testbed report: {_e(suite.suite)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Scenario report: {_e(suite.suite)}</h1>",
        f"<p>{_when(suite.start)}, {suite.end - suite.start:.0f} s, commit <code>"
        f"{_e(suite.commit)}</code>. Scenarios: "
        + ", ".join(f"<span class='{k}'>{v} {k}</span>" for k, v in status_total.items())
        + ". Files: <a href='results.json'>results.json</a>, <a href='junit.xml'>junit.xml</a>."
        "</p>",
        "<h2>Summary</h2><table><tr><th>scenario</th><th>status</th><th>points</th>"
        "<th>expectations met</th><th>seed</th><th>time</th><th>run</th></tr>",
    ]
    for s in suite.scenarios:
        met = sum(e.passed for p in s.points for e in p.expectations)
        total = sum(len(p.expectations) for p in s.points)
        parts.append(
            f"<tr><td><a href='#{_e(s.name)}'>{_e(s.name)}</a></td>"
            f"<td class='{s.status}'>{s.status}</td><td>{len(s.points)}</td>"
            f"<td>{met} / {total}</td><td>{s.seed}</td><td>{s.end - s.start:.0f} s</td>"
            f"<td><code>{_e(s.run)}</code></td></tr>"
        )
    parts.append("</table>")
    failures = suite.failures
    if failures:
        parts.append("<h2>Failures and errors</h2><ul>")
        parts += [f"<li class='failed'>{_e(line)}</li>" for line in failures]
        parts.append("</ul>")
    parts.append(
        "<h2>Determinism</h2><p>The same scenario with the same seed gives the same "
        "sweep points and the same per-link loss streams of the radio medium (every "
        "PAN's seed is the scenario's). Not deterministic:</p><ul>"
    )
    parts += [f"<li>{_e(item)}</li>" for item in NOT_DETERMINISTIC]
    parts.append("</ul>")
    for s in suite.scenarios:
        parts.append(_scenario(s))
    parts.append("</body></html>")
    return "\n".join(parts)


def _scenario(s: ScenarioResult) -> str:
    parts = [
        f"<section id='{_e(s.name)}'><h2>{_e(s.name)} "
        f"<span class='{s.status}'>{s.status}</span></h2>",
        f"<p>{_e(s.description)}</p><p>file <code>{_e(s.file)}</code>, seed {s.seed}",
    ]
    if s.sweep:
        parts.append(
            f", sweep over <code>{_e(s.sweep['parameter'])}</code>: "
            f"{_e(', '.join(map(str, s.sweep['values'])))}"
        )
    parts.append(f", {s.repeat} repeat(s).</p>")
    if s.setup_error:
        parts.append(f"<p class='error'>error: {_e(s.setup_error)}</p>")
    if s.teardown_error:
        parts.append(f"<p class='error'>teardown: {_e(s.teardown_error)}</p>")
    expectations = [(p, e) for p in s.points for e in p.expectations]
    if expectations:
        parts.append(
            "<h3>Expectations</h3><table><tr><th>point</th><th>expectation</th>"
            "<th>measure</th><th>value</th><th>bound</th><th>result</th></tr>"
        )
        for p, e in expectations:
            cls = "passed" if e.passed else "failed"
            parts.append(
                f"<tr><td>{_e(p.label)}</td><td>{_e(e.message)}</td>"
                f"<td><code>{_e(e.measure)}</code></td><td>{_value(e.value)}</td>"
                f"<td>{_e(e.bound)}</td><td class='{cls}'>{'met' if e.passed else 'FAILED'}"
                "</td></tr>"
            )
        parts.append("</table>")
    errors = [p for p in s.points if p.error]
    for p in errors:
        parts.append(f"<p class='error'>{_e(p.label)}: error: {_e(p.error)}</p>")
    figures = plots.fate_plots(s) + plots.sweep_plots(s) + plots.series_plots(s)
    if figures:
        parts.append("<h3>Plots</h3>")
        parts += [
            f"<figure><img alt='{_e(t)}' src='{uri}'><figcaption>{_e(t)}</figcaption></figure>"
            for t, uri in figures
        ]
    parts.append(_measurements(s))
    if s.files:
        parts.append("<h3>Files</h3><ul>")
        parts += [
            f"<li><a href='{_e(path)}'>{_e(label)}</a></li>"
            for label, path in sorted(s.files.items())
        ]
        if s.topology:
            parts.append(f"<li><a href='{_e(s.name)}/{_e(s.topology)}'>topology as run</a></li>")
        parts.append("</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def _measurements(s: ScenarioResult) -> str:
    """One row per measure, one column per point: sweeps read left to right."""
    names = sorted({m.name for p in s.points for m in p.measurements})
    if not names:
        return ""
    units = {m.name: m.unit for p in s.points for m in p.measurements}
    rows = [
        "<h3>Measured values</h3><table><tr><th>measure</th>"
        + "".join(f"<th>{_e(p.label)}</th>" for p in s.points)
        + "</tr>"
    ]
    for name in names:
        unit = f" ({_e(units[name])})" if units.get(name) else ""
        rows.append(
            f"<tr><td><code>{_e(name)}</code>{unit}</td>"
            + "".join(f"<td>{_value(p.value(name))}</td>" for p in s.points)
            + "</tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def write(suite: SuiteResult, path: Path) -> None:
    path.write_text(render(suite), encoding="utf-8")
