"""docs/metrics.md, generated from the metric catalogue (testbed.contracts.metric_catalogue).

    python -m testbed.observe.catalogue [docs/metrics.md]    rewrite the file
    python -m testbed.observe.catalogue --check              exit 1 when it is out of date

A unit test keeps the committed file in sync; another compares the catalogue with what real node
processes export.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from testbed.contracts.metric_catalogue import LIBRARY_METRICS, METRICS, MetricSpec

DOC_PATH = Path("docs") / "metrics.md"
SECTIONS = (
    "node",
    "thing",
    "trust center",
    "backend",
    "vendor cloud",
    "attacker",
    "border router",
    "radio",
    "process",
)
INTRO = """\
# Metrics

Generated from `testbed/contracts/metric_catalogue.py` by `python -m testbed.observe.catalogue`;
do not edit. Every node serves these on `http://[<mgmt address>]:9180/metrics`; the run's Prometheus
scrapes them every 5 s (a topology's `observe: {scrape_interval}` sets another) with the target
labels `run`, `node`, `role` and, where the node has them, `vendor`, `model`, `domain`, `pan`
(`honor_labels`: labels a node sets itself win). Recording rules and dashboards build on them
(`testbed/observe/rules.py`, `dashboards/`).

Names are as scraped: counters end in `_total`, infos in `_info`; a histogram is the series
`_bucket` (with `le`), `_sum` and `_count`. Units are in the names (seconds, bytes).
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _labels(spec: MetricSpec) -> str:
    names = ", ".join(f"`{name}`" for name in spec.labels)
    if spec.open_labels:
        names = f"{names}, ... (see note)" if names else "(see note)"
    return names or "-"


def _roles(spec: MetricSpec) -> str:
    return ", ".join(spec.roles)


def _rows(specs: Iterable[MetricSpec]) -> list[str]:
    rows = [
        "| metric | type | labels | unit | exported by | description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for spec in specs:
        text = spec.help + (f" ({spec.note})" if spec.note else "")
        rows.append(
            f"| `{spec.exposed}` | {spec.type} | {_labels(spec)} | {spec.unit or '-'} | "
            f"{_roles(spec)} | {_cell(text)} |"
        )
    return rows


def render_markdown() -> str:
    lines = [INTRO]
    every = [*METRICS.values(), *LIBRARY_METRICS]
    for section in SECTIONS:
        specs = [s for s in every if s.component == section]
        if not specs:
            continue
        title = "Process (prometheus_client, every node)" if section == "process" else section
        lines += [f"## {title[0].upper()}{title[1:]}", "", *_rows(specs), ""]
    unknown = sorted({s.component for s in every} - set(SECTIONS))
    if unknown:
        raise ValueError(f"catalogue sections without a place in docs/metrics.md: {unknown}")
    histograms = [s for s in every if s.type == "histogram"]
    lines += ["## Histogram buckets", "", "| metric | buckets (`le`) |", "| --- | --- |"]
    lines += [f"| `{s.name}` | {', '.join(f'{b:g}' for b in s.buckets)} |" for s in histograms]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [a for a in argv if not a.startswith("--")]
    path = Path(paths[0]) if paths else DOC_PATH
    text = render_markdown()
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            hint = "run python -m testbed.observe.catalogue"
            print(f"{path} is out of date: {hint}", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
