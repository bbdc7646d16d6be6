"""The Engine interface: everything the orchestration needs from a container engine.

An engine is chosen once, by name (``testbed.engines.get("docker")``; the CLI's ``--engine``),
and then carries every engine-specific step:

- nodes: create and start them from a plan and wait until each is ready (``deploy``), stop and
  start them again (``stop_nodes``/``start_nodes``), run commands in them, read their logs and
  their control endpoint's state;
- networks (one per logical network of the plan) and volumes (each node's state), made by
  ``deploy`` and removed with the nodes by ``undeploy``; the run's objects are found by labels
  (``testbed.plan.labels``), never by local state;
- the node image (``ensure_node_image``): built or found where the engine runs containers;
- the run's services beside its nodes (``services()``: Prometheus, Grafana), or None when the
  engine has none;
- the Ansible connection to a node (``ansible_connection``: host variables of the inventory).

Implementations: Docker (``testbed.engines.docker``) and Docker Swarm
(``testbed.engines.swarm``: networks as attachable overlays, nodes as containers on the host
their placement constraint chooses). A Kubernetes one maps nodes
to pods (a StatefulSet per role, the state volume a PersistentVolumeClaim), networks to
NetworkAttachmentDefinitions (Multus), labels to labels, ``exec`` to the pods' exec API and the
Ansible connection to ``kubernetes.core.kubectl`` (docs/engines.md). Engines hold no topology
logic: they receive a Plan and report what runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from testbed.plan.model import Plan

if TYPE_CHECKING:  # the implementations import engine SDKs; the interface does not
    from testbed.engines.images import ImageResult, ProgressFn
    from testbed.observe.grafana_service import GrafanaService
    from testbed.observe.image import PrometheusImage
    from testbed.observe.service import Observer


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


class RunServices(Protocol):
    """The run's services beside its nodes, made by the engine on the run's mgmt
    network, published on 127.0.0.1 and labelled with the run (so ``undeploy`` removes them)."""

    def prometheus_image(self) -> PrometheusImage:
        """Make the Prometheus image available where the engine runs containers."""

    def start_prometheus(self, plan: Plan, run_dir: Path) -> Observer:
        """Make the Prometheus image available, write its files into the run directory, start
        it and wait until it is ready. Raises TestbedError (the caller announces it)."""

    def prometheus_url(self, run: str) -> str | None:
        """Where the run's running Prometheus answers (None: there is none)."""

    def provide_image(self, ref: str, on_pull: Callable[[], None]) -> tuple[str | None, str]:
        """(image ID, "") when the image ``ref`` is here or could be pulled, else (None, why)."""

    def start_grafana(
        self, plan: Plan, run_dir: Path, image: str, dashboards: Path
    ) -> GrafanaService:
        """Start the run's Grafana provisioned from ``dashboards``; wait until it is healthy."""

    def grafana(self, run: str) -> GrafanaService | None:
        """The run's running Grafana (None: there is none)."""


class Engine(Protocol):
    name: str

    # -- nodes, networks, volumes -----------------------------------------------------------

    def deploy(self, plan: Plan, image: str, run_dir: Path, on_event: EventFn) -> None:
        """Create networks, volumes and nodes of the plan and wait until every node is ready."""

    def undeploy(self, run: str) -> RemovalReport:
        """Remove every object labelled with the run."""

    def stop_nodes(self, run: str, nodes: Sequence[str]) -> list[str]:
        """Stop the named nodes (and services) of a run, keeping them, their networks and their
        volumes; returns the names of those that were running."""

    def start_nodes(
        self, run: str, nodes: Sequence[str], on_event: EventFn, *, probe: bool = True
    ) -> None:
        """Start the named, existing nodes of a run together (the caller orders them in tiers)
        and, with ``probe``, wait until each reports ready as ``deploy`` does."""

    def status(self, run: str | None = None) -> list[NodeStatus]:
        """Nodes of one run (or of all runs), found by labels."""

    def runs(self) -> dict[str, int]:
        """Run name -> number of objects (containers, networks, volumes) carrying its label."""

    def empty_networks(self, run: str) -> list[str]:
        """The run's networks that no container is attached to (leftovers of a removal)."""

    def exec(self, run: str, node: str, command: list[str]) -> ExecResult: ...

    def attach_network(self, run: str, node: str, network: str, ipv6: str) -> None:
        """Connect a running node to the run's ``network`` (logical name) at ``ipv6``."""

    def detach_network(self, run: str, node: str, network: str) -> None:
        """Disconnect a node from the run's ``network`` (logical name)."""

    def node_state(self, run: str, node: str) -> dict[str, Any] | None:
        """What the node's control endpoint reports under GET /state (None: no answer)."""

    def logs(self, run: str, node: str, tail: int, follow: bool) -> Iterator[bytes]: ...

    # -- images, services, Ansible ----------------------------------------------------------

    def ensure_node_image(
        self,
        *,
        base_image: str | None = None,
        force: bool = False,
        progress: ProgressFn | None = None,
    ) -> ImageResult:
        """The node image for the project code as it is now, built when missing or stale."""

    def services(self) -> RunServices | None:
        """The engine's run services (Prometheus, Grafana); None when it has none."""

    def ansible_connection(self, node: NodeStatus) -> dict[str, Any]:
        """Inventory host variables that make Ansible reach ``node`` (connection plugin and
        its target), e.g. ``community.docker.docker`` and the container name."""
