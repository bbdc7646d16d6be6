"""Errors of the observability side: Prometheus could not be started, queried or checked."""

from __future__ import annotations

from testbed.errors import TestbedError


class ObserveError(TestbedError):
    """Exit code 1 (generic): Prometheus is an addition to a run, never its reason to fail."""
