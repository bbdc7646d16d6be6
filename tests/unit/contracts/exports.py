"""Compare what a node exports (Prometheus text format) with the metric catalogue."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

from testbed.contracts.metric_catalogue import LIBRARY_METRICS, METRICS, MetricSpec


def scraped_name(spec: MetricSpec) -> tuple[str, str]:
    """(family name, type) as the text format parser reports it: an info is a gauge X_info."""
    if spec.type == "info":
        return f"{spec.name}_info", "gauge"
    return spec.name, spec.type


DECLARED: dict[str, tuple[str, MetricSpec]] = {
    scraped_name(s)[0]: (scraped_name(s)[1], s) for s in (*LIBRARY_METRICS, *METRICS.values())
}
STRUCTURAL = frozenset({"le", "quantile"})


def exported(text: str) -> dict[str, tuple[str, set[frozenset[str]]]]:
    """family name -> (type, the label-name sets its samples carry)."""
    out: dict[str, tuple[str, set[frozenset[str]]]] = {}
    for family in text_string_to_metric_families(text):
        labelsets = {frozenset(s.labels) - STRUCTURAL for s in family.samples}
        out[family.name] = (family.type, labelsets)
    return out


def mismatches(text: str, source: str) -> list[str]:
    """Every exported family the catalogue does not declare as it is exported."""
    problems = []
    for name, (kind, labelsets) in sorted(exported(text).items()):
        if not name.startswith(("testbed_", "process_", "python_")):
            continue
        if name not in DECLARED:
            problems.append(f"{source}: {name} ({kind}) is exported but not in the catalogue")
            continue
        declared_kind, spec = DECLARED[name]
        if kind != declared_kind:
            problems.append(f"{source}: {name} is a {kind}, the catalogue says {declared_kind}")
        for labels in labelsets:
            declared = set(spec.labels)
            ok = declared <= labels if spec.open_labels else labels == declared
            if not ok:
                problems.append(
                    f"{source}: {name} carries labels {sorted(labels)}, "
                    f"the catalogue says {sorted(declared)}"
                )
    return problems


def missing(text: str, expected: Iterable[MetricSpec]) -> list[str]:
    have = exported(text)
    return sorted(scraped_name(s)[0] for s in expected if scraped_name(s)[0] not in have)
