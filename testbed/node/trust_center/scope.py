"""Which things a backend sees in GET /things, when the cross-domain policy restricts it.

The planner (testbed.plan.cross_domain) writes ``policy-backends`` on every trust center: for each
restricted backend (by node name, as its credential file is named), the factory serials of the
things it may talk to. A backend not named there sees every enrolled thing. Serials, not the
names things report, decide: a thing cannot talk itself into another backend's listing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from testbed.node.errors import ConfigError

ATTRIBUTE = "policy-backends"  # testbed.plan.cross_domain.BACKENDS_ATTRIBUTE

BackendScope = Mapping[str, frozenset[str]]


def parse_scope(raw: str | None) -> dict[str, frozenset[str]]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        return {
            str(backend): frozenset(str(s) for s in serials) for backend, serials in data.items()
        }
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{ATTRIBUTE} is not valid: {exc}", "the planner writes it from the topology's policies"
        ) from exc


def visible(scope: BackendScope, backend: str, serial: str) -> bool:
    allowed = scope.get(backend)
    return allowed is None or serial in allowed
