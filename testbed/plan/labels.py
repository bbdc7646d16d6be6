"""Docker labels: the running system's memory. status, down and phases read state back from them.

Every object a run creates carries ``testbed.run``; nodes carry what ``status`` and the Ansible
inventory need to group them (role, vendor, model, domain, PAN), so nothing depends on local state.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "testbed."
RUN = PREFIX + "run"
NODE = PREFIX + "node"
ROLE = PREFIX + "role"
KIND = PREFIX + "kind"
BUILDING = PREFIX + "building"
NETWORK = PREFIX + "network"
RUN_DIR = PREFIX + "run-dir"
TOPOLOGY = PREFIX + "topology"
PLAN = PREFIX + "plan"
# A multi-host engine's placement constraint of the node (topology key ``placement``)
PLACEMENT = PREFIX + "placement"
CORE = frozenset({RUN, NODE, ROLE, KIND, BUILDING, NETWORK, RUN_DIR, TOPOLOGY, PLAN, PLACEMENT})


@dataclass(frozen=True)
class NodeLabels:
    run: str
    node: str
    role: str
    building: str
    kind: str = ""
    run_dir: str = ""
    topology: str = ""
    plan: str = ""
    attributes: tuple[tuple[str, str], ...] = ()

    def to_labels(self) -> dict[str, str]:
        labels = {
            RUN: self.run,
            NODE: self.node,
            ROLE: self.role,
            BUILDING: self.building,
            KIND: self.kind,
            RUN_DIR: self.run_dir,
            TOPOLOGY: self.topology,
            PLAN: self.plan,
        }
        for key, value in self.attributes:
            labels[PREFIX + key] = value
        return labels

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> NodeLabels:
        # Every other testbed.* label is a role attribute (vendor, model, domain, pan, ...).
        attributes = tuple(
            sorted(
                (key.removeprefix(PREFIX), value)
                for key, value in labels.items()
                if key.startswith(PREFIX) and key not in CORE
            )
        )
        return cls(
            run=labels[RUN],
            node=labels[NODE],
            role=labels[ROLE],
            building=labels.get(BUILDING, ""),
            kind=labels.get(KIND, ""),
            run_dir=labels.get(RUN_DIR, ""),
            topology=labels.get(TOPOLOGY, ""),
            plan=labels.get(PLAN, ""),
            attributes=attributes,
        )

    @property
    def attribute_map(self) -> dict[str, str]:
        return dict(self.attributes)


def run_filter(run: str | None) -> dict[str, list[str]]:
    """A Docker API filter selecting every object of a run (or of every run)."""
    return {"label": [f"{RUN}={run}" if run else RUN]}
