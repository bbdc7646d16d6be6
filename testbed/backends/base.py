"""The Backend interface: what the orchestration needs from a container runtime.

One Docker implementation today; a Swarm or Kubernetes backend implements the same methods.
Backends hold no topology logic: they receive a Plan and report what runs, found by labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from testbed.plan.model import Plan


@dataclass(frozen=True)
class NodeStatus:
    run: str
    node: str
    role: str
    kind: str
    state: str  # the runtime's word: running, exited, created, ...
    resource: str
    image: str
    addresses: dict[str, str] = field(default_factory=dict)  # logical network -> IPv6
    mgmt_ipv4: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    run_dir: str = ""
    topology: str = ""
    lifecycle: str = ""  # things: the lifecycle state the node reports; "" if not asked/known
    reason: str = ""  # things: why it is in a failure state
    # things: the operator domain the node reports now; it differs from the ``domain`` label
    # (immutable, the planned owner) after a transfer. "" if not asked/known.
    domain: str = ""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: bytes


@dataclass
class RemovalReport:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    run_dirs: list[str] = field(default_factory=list)
    # Networks the daemon refused to remove although nothing is attached any more (Docker
    # 20.10's libnetwork keeps a stale endpoint count, moby/moby#42119). They are inert; the
    # next `up` of the run reuses them, a daemon restart removes them.
    stale_networks: list[str] = field(default_factory=list)


# (event, node or network name) -> None; events: network, created, started, ready
EventFn = Callable[[str, str], None]


class Backend(Protocol):
    name: str

    def deploy(self, plan: Plan, image: str, run_dir: Path, on_event: EventFn) -> None:
        """Create networks, volumes and nodes of the plan and wait until every node is ready."""

    def undeploy(self, run: str) -> RemovalReport:
        """Remove every object labelled with the run."""

    def status(self, run: str | None = None) -> list[NodeStatus]:
        """Nodes of one run (or of all runs), found by labels."""

    def runs(self) -> dict[str, int]:
        """Run name -> number of objects (containers, networks, volumes) carrying its label."""

    def empty_networks(self, run: str) -> list[str]:
        """The run's networks that no container is attached to (leftovers of a removal)."""

    def exec(self, run: str, node: str, command: list[str]) -> ExecResult: ...

    def node_state(self, run: str, node: str) -> dict[str, Any] | None:
        """What the node's control endpoint reports under GET /state (None: no answer)."""

    def logs(self, run: str, node: str, tail: int, follow: bool) -> Iterator[bytes]: ...
