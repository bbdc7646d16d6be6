"""The node's Prometheus objects, each built from its declaration in the metric catalogue
(testbed.contracts.metric_catalogue): name, help, labels and buckets come from there, so a metric
the catalogue does not declare, or declares as another type, fails where it is created."""

from __future__ import annotations

from typing import TYPE_CHECKING

from testbed.contracts.metric_catalogue import MetricSpec, MetricType, spec

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )


def _check(name: str, kind: MetricType) -> MetricSpec:
    declared = spec(name)
    if declared.type != kind:
        raise TypeError(f"metric {name} is declared as a {declared.type}, not a {kind}")
    return declared


def counter(name: str, registry: CollectorRegistry) -> Counter:
    from prometheus_client import Counter

    s = _check(name, "counter")
    return Counter(s.name, s.help, list(s.labels), registry=registry)


def gauge(name: str, registry: CollectorRegistry) -> Gauge:
    from prometheus_client import Gauge

    s = _check(name, "gauge")
    return Gauge(s.name, s.help, list(s.labels), registry=registry)


def histogram(name: str, registry: CollectorRegistry) -> Histogram:
    from prometheus_client import Histogram

    s = _check(name, "histogram")
    return Histogram(s.name, s.help, list(s.labels), buckets=s.buckets, registry=registry)


def info(name: str, registry: CollectorRegistry) -> Info:
    """An Info; its label names are given with the value (``.info({...})``)."""
    from prometheus_client import Info

    s = _check(name, "info")
    return Info(s.name, s.help, registry=registry)


def counter_family(name: str) -> CounterMetricFamily:
    """An empty counter family for a custom collector (``add_metric`` fills it)."""
    from prometheus_client.core import CounterMetricFamily

    s = _check(name, "counter")
    return CounterMetricFamily(s.name, s.help, labels=list(s.labels))


def gauge_family(name: str) -> GaugeMetricFamily:
    from prometheus_client.core import GaugeMetricFamily

    s = _check(name, "gauge")
    return GaugeMetricFamily(s.name, s.help, labels=list(s.labels))


def histogram_family(name: str) -> HistogramMetricFamily:
    from prometheus_client.core import HistogramMetricFamily

    s = _check(name, "histogram")
    return HistogramMetricFamily(s.name, s.help, labels=list(s.labels))
