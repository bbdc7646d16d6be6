"""Scrape targets (Prometheus file_sd) on the nodes' mgmt addresses.

Every node serves ``/metrics`` on ``[<mgmt address>]:<metrics port>``. One target group per node
carries the labels dashboards group by: run, node, role and, where the node has them, vendor,
model, domain and pan. The groups come from the plan at bring-up (``targets_from_plan``) or from
what runs (``targets_from_status``: Docker labels, so any shell can resynchronise after nodes came
or went); ``write_targets`` replaces the target file atomically and Prometheus picks it up within
the file_sd refresh interval (inotify usually makes it immediate).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.contracts.node_config import METRICS_PORT
from testbed.engines.base import NodeStatus
from testbed.observe.files import atomic_write
from testbed.plan.labels import NodeLabels
from testbed.plan.model import Plan

TARGETS_DIR = "targets"
NODES_FILE = "nodes.json"
# Node attributes that become target labels, as (attribute, label).
ATTRIBUTE_LABELS = (("vendor", "vendor"), ("model", "model"), ("domain", "domain"), ("pan", "pan"))
OBSERVER_ROLE = "observer"


@dataclass(frozen=True)
class Target:
    node: str
    address: str  # IPv6, without brackets
    port: int
    labels: Mapping[str, str]

    @property
    def endpoint(self) -> str:
        return f"[{self.address}]:{self.port}"

    def group(self) -> dict[str, Any]:
        return {"targets": [self.endpoint], "labels": dict(sorted(self.labels.items()))}


def target_labels(run: str, node: str, role: str, attributes: Mapping[str, str]) -> dict[str, str]:
    labels = {"run": run, "node": node, "role": role}
    for attribute, label in ATTRIBUTE_LABELS:
        value = attributes.get(attribute)
        if value:  # an empty label is no label in Prometheus: leave it out
            labels[label] = value
    return labels


def targets_from_plan(plan: Plan) -> list[Target]:
    out = []
    for node in plan.nodes:
        ident = NodeLabels.from_labels(node.labels)
        out.append(
            Target(
                node=node.name,
                address=node.config.address("mgmt"),
                port=node.config.metrics_port,
                labels=target_labels(plan.run, node.name, node.role, ident.attribute_map),
            )
        )
    return out


def targets_from_status(nodes: Iterable[NodeStatus], port: int = METRICS_PORT) -> list[Target]:
    """Targets of the nodes that run now (the observer itself and stopped nodes left out)."""
    out = []
    for node in nodes:
        address = node.addresses.get("mgmt")
        if node.role == OBSERVER_ROLE or node.state != "running" or not address:
            continue
        out.append(
            Target(
                node=node.node,
                address=address,
                port=port,
                labels=target_labels(node.run, node.node, node.role, node.attributes),
            )
        )
    return out


def render_targets(targets: Iterable[Target]) -> str:
    groups = [t.group() for t in sorted(targets, key=lambda t: t.node)]
    return json.dumps(groups, indent=2) + "\n"


def targets_path(observe_dir: Path) -> Path:
    return observe_dir / TARGETS_DIR / NODES_FILE


def write_targets(observe_dir: Path, targets: Iterable[Target]) -> Path:
    """Replace the node target file atomically; returns its path."""
    path = targets_path(observe_dir)
    atomic_write(path, render_targets(targets))
    return path


def read_targets(observe_dir: Path) -> list[dict[str, Any]]:
    data = json.loads(targets_path(observe_dir).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{targets_path(observe_dir)} is not a file_sd list")
    return data
