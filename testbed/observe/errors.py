"""Errors of the observability side (defined in testbed.errors with every host error)."""

from __future__ import annotations

from testbed.errors import ObserveError

__all__ = ["ObserveError"]
