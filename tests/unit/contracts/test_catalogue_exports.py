"""Real node processes (python -m testbed.node on ::1) export what the catalogue declares.

Roles that need no credentials run here: a thing (no trust center configured: it stays
installed), a border router on two bridge PANs and an attacker host. Trust centers, backends,
radio PANs and link shaping need a minted run in containers: tests/integration/test_compose.py
scrapes every node of a real run and applies the same comparison.
"""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from testbed.contracts.metric_catalogue import LIBRARY_METRICS, METRICS
from tests.unit.contracts.exports import mismatches, missing
from tests.unit.node.conftest import node_factory  # noqa: F401  (fixture)
from tests.unit.node.node_harness import thing_config

ROLES: list[tuple[str, dict[str, str], list[dict[str, str]], str]] = [
    ("thing", thing_config()["attributes"], [], "thing"),
    (
        "border_router",
        {},
        [
            {"network": "pan-pan0", "ipv6": "fd00:0::1/64"},
            {"network": "pan-pan1", "ipv6": "fd00:1::1/64"},
        ],
        "border router",
    ),
    ("internet_host", {"kind": "attacker"}, [], ""),
]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://[::1]:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


@pytest.mark.parametrize(("role", "attributes", "interfaces", "component"), ROLES)
def test_node_process_exports_what_the_catalogue_declares(
    node_factory: Any,  # noqa: F811
    role: str,
    attributes: dict[str, str],
    interfaces: list[dict[str, str]],
    component: str,
) -> None:
    config = thing_config(node=f"{role.replace('_', '-')}-1", role=role, attributes=attributes)
    config["interfaces"] += interfaces
    node = node_factory(config).start()
    node.wait_ready()
    text = scrape(node.metrics_port)
    assert mismatches(text, role) == []
    expected = [*LIBRARY_METRICS]
    expected += [s for s in METRICS.values() if s.component in ("node", component) and s.always]
    assert missing(text, expected) == []
    assert node.stop()[0] == 0
