"""The metric catalogue: complete, consistent with node code, documented in docs/metrics.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from testbed.contracts import metric_catalogue as catalogue
from testbed.contracts.metric_catalogue import LIBRARY_METRICS, METRICS
from testbed.node import declared_metrics as declared
from testbed.observe.catalogue import render_markdown

ROOT = Path(__file__).resolve().parents[3]
NODE_DIR = ROOT / "testbed" / "node"
METRIC_NAME = re.compile(r"^testbed_[a-z0-9_]+$")
CLIENT_CLASSES = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Info": "info",
    "CounterMetricFamily": "counter",
    "GaugeMetricFamily": "gauge",
    "HistogramMetricFamily": "histogram",
}


def node_sources() -> list[Path]:
    # The catalogue itself lives in testbed/contracts, outside the node package.
    return sorted(NODE_DIR.rglob("*.py"))


def metric_literals() -> dict[str, list[str]]:
    """Every string literal in node code that looks like a metric name -> where it is."""
    found: dict[str, list[str]] = {}
    for path in node_sources():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and METRIC_NAME.match(node.value):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.setdefault(node.value, []).append(where)
    return found


def shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def direct_declarations(
    sources: list[Path] | None = None,
) -> list[tuple[str, str, str, str, list[str] | None]]:
    """(where, class type, name, help, labels) of metrics node code declares itself."""
    out = []
    for path in node_sources() if sources is None else sources:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if called not in CLIENT_CLASSES or len(node.args) < 2:
                continue
            name, doc = node.args[0], node.args[1]
            if not (isinstance(name, ast.Constant) and isinstance(doc, ast.Constant)):
                continue
            labels = None
            label_node = node.args[2] if len(node.args) > 2 else None
            for kw in node.keywords:
                if kw.arg in ("labels", "labelnames"):
                    label_node = kw.value
            if label_node is not None:
                try:
                    labels = list(ast.literal_eval(label_node))
                except ValueError:
                    labels = None  # built from a constant elsewhere: names are checked anyway
            out.append(
                (
                    f"{shown(path)}:{node.lineno}",
                    CLIENT_CLASSES[called],
                    str(name.value),
                    str(doc.value),
                    labels,
                )
            )
    return out


def test_docs_metrics_md_is_in_sync() -> None:
    committed = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert committed == render_markdown(), (
        "docs/metrics.md is out of date: run .venv/bin/python -m testbed.observe.catalogue"
    )


def test_every_metric_name_in_node_code_is_declared_and_used() -> None:
    literals = metric_literals()
    undeclared = {name: where for name, where in literals.items() if name not in METRICS}
    assert not undeclared, f"declare these in testbed/contracts/metric_catalogue.py: {undeclared}"
    unused = sorted(set(METRICS) - set(literals))
    assert not unused, f"declared but no node code exports them: {unused}"


def test_metrics_declared_outside_the_catalogue_agree_with_it() -> None:
    # Node code builds its metrics from the catalogue (node/declared_metrics.py); one declared
    # directly with a literal name must still agree with the catalogue's entry.
    disagreements = []
    for where, kind, name, doc, labels in direct_declarations():
        spec = catalogue.spec(name)
        if spec.type != kind:
            disagreements.append(f"{where}: {name} is a {kind}, the catalogue says {spec.type}")
        if spec.help != doc:
            disagreements.append(f"{where}: help of {name} differs from the catalogue")
        if labels is not None and spec.type != "info" and labels != list(spec.labels):
            disagreements.append(f"{where}: labels of {name} differ")
    assert not disagreements, "\n".join(disagreements)


def test_the_scan_finds_a_direct_declaration(tmp_path: Path) -> None:
    source = tmp_path / "direct.py"
    source.write_text(
        "from prometheus_client import Counter\n"
        "X = Counter('testbed_x_total', 'Things.', ['pan', 'node'])\n"
    )
    ((_, kind, name, doc, labels),) = direct_declarations([source])
    assert (kind, name, doc, labels) == ("counter", "testbed_x_total", "Things.", ["pan", "node"])


def test_helpers_build_what_is_declared() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    built = declared.histogram("testbed_tc_bootstrap_bytes", registry)
    built.labels("facility", "edhoc-oscore", "sent").observe(300)
    text = generate_latest(registry).decode()
    assert "# TYPE testbed_tc_bootstrap_bytes histogram" in text
    assert 'le="400.0"' in text
    with pytest.raises(TypeError, match="declared as a histogram"):
        declared.counter("testbed_tc_bootstrap_bytes", registry)
    with pytest.raises(KeyError, match="not declared"):
        declared.gauge("testbed_nonexistent", registry)


def test_specs_are_well_formed() -> None:
    for spec in [*METRICS.values(), *LIBRARY_METRICS]:
        assert spec.help and not spec.help[0].islower(), spec.name
        assert not spec.name.endswith("_total"), spec.name  # the client library appends it
        assert spec.type != "info" or not spec.name.endswith("_info"), spec.name
        assert (spec.type == "histogram") == bool(spec.buckets), spec.name
        if spec.unit in ("seconds", "bytes"):
            assert spec.unit in spec.name, spec.name
        assert len(set(spec.labels)) == len(spec.labels), spec.name
