"""policies: in a topology: selectors validated, unknown names reported at their key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.errors import TopologyError
from testbed.topology import load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[3]
TWO = (ROOT / "topologies" / "two-operators.yaml").read_text()


def with_policies(block: str) -> str:
    """two-operators.yaml with its policies replaced by ``block`` (YAML list lines)."""
    head, _, rest = TWO.partition("policies:\n")
    tail = rest[rest.index("\nlinks:") :]
    return f"{head}policies:\n{block}{tail}"


def error_of(text: str) -> str:
    with pytest.raises(TopologyError) as caught:
        parse_topology(text, source="t.yaml")
    return str(caught.value)


def test_shipped_policy_loads() -> None:
    topo = load_topology(ROOT / "topologies" / "two-operators.yaml")
    assert topo.policies is not None
    first = topo.policies[0]
    assert (first.source, first.to, first.allow) == ("host:backend-hvac", "domain:lighting", False)


@pytest.mark.parametrize(
    ("rule", "key", "needle"),
    [
        ("  - {from: domain:plumbing, to: any}\n", "policies[0].from", "unknown domain"),
        ("  - {from: any, to: thing:lamp-09}\n", "policies[0].to", "unknown thing"),
        ("  - {from: host:nobody, to: any}\n", "policies[0].from", "unknown host"),
        ("  - {from: vendor:acme, to: any}\n", "policies[0].from", "should match pattern"),
        ("  - {from: any, to: any, allow: maybe}\n", "policies[0].allow", "boolean"),
        ("  - {from: any, to: any, ports: [0]}\n", "policies[0].ports[0]", "greater than"),
        ("  - {from: any, to: any, resources: [x]}\n", "policies[0].resources", "unknown key"),
        ("  - {to: any}\n", "policies[0].from", "required key is missing"),
        ("  - {from: any, to: any, name: default-x}\n", "policies[0].name", "reserved"),
    ],
)
def test_bad_rules_name_their_key(rule: str, key: str, needle: str) -> None:
    message = error_of(with_policies(rule))
    assert f": {key}: " in message, message
    assert needle in message, message


def test_second_bad_rule_is_located_too() -> None:
    rules = "  - {from: any, to: any}\n  - {from: host:backend, to: thing:ghost}\n"
    message = error_of(with_policies(rules))
    assert "policies[1].to" in message and "t.yaml:" in message


def test_trust_centers_are_hosts_for_selectors() -> None:
    topo = parse_topology(with_policies("  - {from: host:tc-hvac, to: domain:hvac}\n"))
    assert topo.policies is not None and topo.policies[0].source == "host:tc-hvac"
