"""Docker Swarm engine: a run spread over the hosts of a swarm, found by labels.

What it maps to what:

- each logical network of the plan is a swarm-scoped **overlay** network, ``attachable`` (plain
  containers may join it), IPv6 with the plan's /64 and an IPv4 /24 beside it (Docker 20.10's
  overlay driver rejects every endpoint of an IPv6-only overlay), ``internal`` where the plan
  says so. Created on the manager; every host of the swarm sees it.
- each node is a **container attached to those overlays**, created through the Docker API of
  the swarm host its placement constraint chooses (``testbed.engines.swarm_placement``),
  **not a service**. Tried, and services cannot give what nodes need: a service task gets its
  addresses from the overlay's IPAM (no static address per network: ``--network`` takes no
  address, ``driver-opt=ipv6_address`` is ignored), while every node's routes, the trust center
  URIs and the radio PANs are planned on fixed addresses; services take no ``--device`` either
  (a bind mount of /dev/net/tun would do). Capabilities, sysctls and read-only mounts work for
  services and containers alike.
- the node's state volume is a local volume on its host; its run-directory folder is bind-mounted
  read-only on the host where `testbed` runs and copied into a run-labelled volume on another
  host (``testbed.engines.swarm_material``).
- the run's Prometheus and Grafana are containers on the manager, attached to the mgmt overlay
  and published on 127.0.0.1 there (``DockerRunServices``): the overlay carries their scrapes to
  nodes on every host.
- Ansible reaches a node with ``community.docker.docker`` through the Docker API of its host
  (``ansible_docker_host`` for a node on another host).

Hosts other than the one `testbed` runs on are reached through their Docker API URL, given as
the swarm node label ``testbed.engine`` (``tcp://HOST:2376`` with TLS, or ``ssh://USER@HOST``);
a host without it is used only if it is this one. The run is found again by its labels on every
engine, as on Docker.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool

from testbed.engines.base import EventFn, ExecResult, NodeStatus, RemovalReport, RunServices
from testbed.engines.docker import (
    _ROLE_ORDER,
    WORKERS,
    DockerEngine,
    ansible_connection,
    connect,
)
from testbed.engines.docker_errors import _translated, daemon_error
from testbed.engines.swarm_material import copy_to_volume
from testbed.engines.swarm_placement import SwarmNode, choose
from testbed.errors import EngineError, InputError, NotRunning
from testbed.plan import labels as L
from testbed.plan.model import NetworkPlan, NodePlan, Plan

if TYPE_CHECKING:
    from testbed.engines.images import ImageResult, ProgressFn

# IPv4 /24s of the overlays (unused by the nodes, required by the driver): in 10.208.0.0/12,
# chosen by a hash of the network's name and moved on when the swarm already uses one.
IPV4_SPACE = ipaddress.IPv4Network("10.208.0.0/12")
IPV4_ATTEMPTS = 16
OVERLAY_RELEASE_S = 30.0
# Each failed attachment costs the daemon's own 20 s deadline; its cause is a draw that usually
# goes right (see _start_container), so a few more attempts make a run's failure rare.
START_ATTEMPTS = 6
OVERLAY_VISIBLE_S = 20.0


class MemberEngine(DockerEngine):
    """The Docker engine of one swarm host; on a host other than this one, the nodes' material
    is a copy in a volume there instead of a bind mount of the run directory."""

    def __init__(self, client: docker.DockerClient, node: SwarmNode, local: bool) -> None:
        super().__init__(client)
        self.swarm_node = node
        self.local = local
        self.image = ""
        self._start_lock = threading.Lock()

    def _config_source(self, plan: Plan, node: NodePlan, run_dir: Path) -> str:
        if self.local:
            return super()._config_source(plan, node, run_dir)
        return copy_to_volume(self.client, plan, node, run_dir / "nodes" / node.name, self.image)

    def _start_container(self, container_id: str) -> None:
        # At start the engine asks the manager for an attachment to each overlay. Docker 20.10
        # sometimes answers after its own 20 s deadline ("attaching to network failed ... context
        # deadline exceeded"); each time, the daemon's log shows the attachment task rejected
        # with "Invalid address <an address of the overlay's IPv6 pool that the plan never
        # gives>: It does not belong to any of this network's subnets" (seen on ::2 and ::3,
        # while the plan's addresses start at ::10): the manager handed the attachment an
        # address the agent then refused. It happens to some attachments, not to an overlay for
        # good: a new attempt draws a new attachment, and one usually succeeds.
        for attempt in range(START_ATTEMPTS):
            try:
                # One start at a time per host: concurrent attachment requests are what was
                # seen to run into that deadline; a start takes about a second.
                with self._start_lock:
                    super()._start_container(container_id)
                return
            except docker.errors.APIError as exc:
                text = str(exc)
                # "network NAME not found": a just-made overlay the engine does not see yet
                late = "network" in text and "not found" in text
                if not (late or "attaching to network failed" in text):
                    raise
                if attempt == START_ATTEMPTS - 1:
                    raise
                time.sleep(1.0)

    def _remove_network(self, net: Any, attempts: int = 10) -> str:
        # A container's attachment to an overlay is a swarm task of its own, which the manager
        # removes shortly after the container: until then the overlay is "in use by task".
        deadline = time.monotonic() + OVERLAY_RELEASE_S
        while True:
            try:
                return super()._remove_network(net, attempts)
            except docker.errors.APIError as exc:
                if "in use by task" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    # An attachment task that outlived its container (Docker 20.10): the
                    # overlay is inert; report it rather than fail the rest of `down`.
                    return "stale"
                time.sleep(0.25)

    def remove_nodes(self, run: str) -> RemovalReport:
        """Containers and volumes of the run on this host (the overlays are the manager's)."""
        report = RemovalReport()
        with _translated(f"removing run {run} on {self.swarm_node.hostname}"):
            for container in self.client.containers.list(
                all=True, filters=L.run_filter(run), ignore_removed=True
            ):
                try:
                    if container.status == "running":
                        container.stop(timeout=5)
                    container.remove(force=True)
                    report.containers.append(str(container.name))
                except docker.errors.NotFound:
                    pass
            for volume in self.client.volumes.list(filters=L.run_filter(run)):
                try:
                    volume.remove(force=True)
                    report.volumes.append(volume.name)
                except docker.errors.NotFound:
                    pass
        return report


class SwarmEngine:
    name = "swarm"

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self.client = client or connect()
        with _translated("asking the engine about its swarm"):
            swarm = self.client.info().get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active":
            raise EngineError(
                "this Docker engine is not part of a swarm",
                "make it one with `docker swarm init` (or join one), or use --engine docker",
            )
        if not swarm.get("ControlAvailable"):
            raise EngineError(
                "this Docker engine is a swarm worker; the swarm engine needs a manager",
                "run `testbed` on a manager node (`docker node ls` lists them)",
            )
        self.local_id = str(swarm.get("NodeID", ""))
        self._engines: dict[str, MemberEngine] = {}
        self._where: dict[tuple[str, str], MemberEngine] = {}  # (run, node) -> its engine

    # -- the swarm's hosts ------------------------------------------------------------------

    def swarm_nodes(self) -> list[SwarmNode]:
        with _translated("listing the swarm's nodes"):
            return [SwarmNode.from_attrs(n.attrs) for n in self.client.nodes.list()]

    def engine(self, node: SwarmNode) -> MemberEngine:
        """The Docker engine of a swarm host (connected once)."""
        if node.id in self._engines:
            return self._engines[node.id]
        if node.id == self.local_id:
            client = self.client
        elif node.engine:
            try:
                client = docker.DockerClient(base_url=node.engine, timeout=180)
                client.ping()
            except docker.errors.DockerException as exc:
                raise daemon_error(exc) from exc
        else:
            raise InputError(
                f"swarm node {node.hostname} has no Docker API the testbed can reach",
                f"label it with its API URL: `docker node update --label-add "
                f"testbed.engine=tcp://HOST:2376 {node.hostname}` (TLS via DOCKER_CERT_PATH) "
                "or ssh://USER@HOST",
            )
        self._engines[node.id] = MemberEngine(client, node, local=node.id == self.local_id)
        return self._engines[node.id]

    def reachable_engines(self) -> list[MemberEngine]:
        """This host's engine and every other ready host that names its API."""
        nodes = [n for n in self.swarm_nodes() if n.id == self.local_id or n.engine]
        return [self.engine(n) for n in nodes if n.ready or n.id == self.local_id]

    def _local(self) -> MemberEngine:
        local = next(n for n in self.swarm_nodes() if n.id == self.local_id)
        return self.engine(local)

    # -- bring-up ---------------------------------------------------------------------------

    def deploy(self, plan: Plan, image: str, run_dir: Path, on_event: EventFn) -> None:
        placed = choose(
            {n.name: n.labels.get(L.PLACEMENT, "") for n in plan.containers()},
            self.swarm_nodes(),
        )
        engines = {name: self.engine(host) for name, host in placed.items()}
        for engine in set(engines.values()):
            engine.image = image
        with _translated("creating overlay networks"):
            for net in plan.networks:
                self._create_overlay(plan, net)
                on_event("network", net.name)
            for net in plan.networks:
                self._wait_visible(net.resource)
        tiers = [
            list(group)
            for _, group in groupby(
                sorted(plan.containers(), key=lambda n: n.tier), key=lambda n: n.tier
            )
        ]

        def start(node: NodePlan) -> None:
            engines[node.name]._start_node(plan, node, image, run_dir, on_event)
            self._where[(plan.run, node.name)] = engines[node.name]

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for tier in tiers:
                list(pool.map(start, tier))

    def _create_overlay(self, plan: Plan, net: NetworkPlan) -> None:
        existing = self.client.networks.list(names=[net.resource], filters=L.run_filter(plan.run))
        if any(n.name == net.resource and n.attrs.get("Driver") == "overlay" for n in existing):
            return  # left by an earlier `up` of this run that failed: same name, same run
        for attempt in range(IPV4_ATTEMPTS):
            try:
                self.client.networks.create(
                    net.resource,
                    driver="overlay",
                    scope="swarm",
                    attachable=True,
                    enable_ipv6=True,
                    internal=net.internal,
                    ipam=IPAMConfig(
                        pool_configs=[
                            IPAMPool(subnet=ipv4_subnet(net.resource, attempt)),
                            IPAMPool(subnet=net.subnet6, gateway=net.gateway6),
                        ]
                    ),
                    labels=net.labels,
                    check_duplicate=True,
                )
                return
            except docker.errors.APIError as exc:
                if "overlap" not in str(exc).lower() or attempt == IPV4_ATTEMPTS - 1:
                    raise

    def _wait_visible(self, resource: str) -> None:
        """Until the engine resolves the new overlay by name (a fresh swarm was seen to answer
        "network ... not found" to a container created right after the overlay)."""
        deadline = time.monotonic() + OVERLAY_VISIBLE_S
        while True:
            try:
                self.client.api.inspect_network(resource)
                return
            except docker.errors.NotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)

    # -- stop and start ---------------------------------------------------------------------

    def _by_engine(self, run: str, nodes: Sequence[str]) -> dict[MemberEngine, list[str]]:
        grouped: dict[MemberEngine, list[str]] = {}
        for node in nodes:
            grouped.setdefault(self._engine_of(run, node), []).append(node)
        return grouped

    def stop_nodes(self, run: str, nodes: Sequence[str]) -> list[str]:
        wanted = set(nodes)
        stopped: list[str] = []
        for engine in self.reachable_engines():
            stopped += engine.stop_nodes(run, sorted(wanted))
        return sorted(stopped)

    def start_nodes(
        self, run: str, nodes: Sequence[str], on_event: EventFn, *, probe: bool = True
    ) -> None:
        groups = self._by_engine(run, nodes)
        with ThreadPoolExecutor(max_workers=max(1, len(groups))) as pool:
            list(
                pool.map(
                    lambda item: item[0].start_nodes(run, item[1], on_event, probe=probe),
                    groups.items(),
                )
            )

    # -- tear-down --------------------------------------------------------------------------

    def undeploy(self, run: str) -> RemovalReport:
        report = RemovalReport()
        local = self._local()
        for engine in self.reachable_engines():
            if engine is local:
                continue
            part = engine.remove_nodes(run)
            report.containers += part.containers
            report.volumes += part.volumes
        # Last, this host: its containers (Prometheus, Grafana, nodes) one by one (the
        # attachment of a container removed beside others was seen to outlive it, holding its
        # overlay), then volumes and the overlays.
        part = local.remove_nodes(run)
        report.containers += part.containers
        report.volumes += part.volumes
        part = local.undeploy(run)
        report.containers += part.containers
        report.networks += part.networks
        report.volumes += part.volumes
        report.stale_networks += part.stale_networks
        # The manager deletes an overlay asynchronously: wait until the removed ones are gone.
        deadline = time.monotonic() + OVERLAY_RELEASE_S
        while time.monotonic() < deadline:
            listed = {n.name for n in self.client.networks.list(filters=L.run_filter(run))}
            if not listed & set(part.networks):
                break
            time.sleep(0.25)
        for key in [k for k in self._where if k[0] == run]:
            del self._where[key]
        return report

    def empty_networks(self, run: str) -> list[str]:
        if len(self.reachable_engines()) > 1:
            return []  # an overlay lists only this host's containers: not knowable from here
        return self._local().empty_networks(run)

    # -- inspection -------------------------------------------------------------------------

    def runs(self) -> dict[str, int]:
        counts = self._local().runs()
        for engine in self.reachable_engines():
            if engine.local:
                continue
            with _translated(f"listing runs on {engine.swarm_node.hostname}"):
                objects: list[Any] = [
                    *engine.client.containers.list(
                        all=True, filters=L.run_filter(None), ignore_removed=True
                    ),
                    *engine.client.volumes.list(filters=L.run_filter(None)),
                ]
            for obj in objects:
                attrs = obj.attrs
                labels = attrs.get("Labels") or attrs.get("Config", {}).get("Labels") or {}
                if labels.get(L.RUN):
                    counts[labels[L.RUN]] = counts.get(labels[L.RUN], 0) + 1
        return counts

    def status(self, run: str | None = None) -> list[NodeStatus]:
        out: list[NodeStatus] = []
        for engine in self.reachable_engines():
            for status in engine.status(run):
                self._where[(status.run, status.node)] = engine
                out.append(status)
        return sorted(out, key=lambda s: (s.run, _ROLE_ORDER.get(s.role, 9), s.node))

    def _engine_of(self, run: str, node: str) -> MemberEngine:
        known = self._where.get((run, node))
        if known is not None:
            return known
        for engine in self.reachable_engines():
            try:
                engine._container(run, node)
            except NotRunning:
                continue
            self._where[(run, node)] = engine
            return engine
        raise NotRunning(
            f"run {run!r} has no node {node!r}",
            f"list its nodes with `testbed status --run {run} --engine swarm`",
        )

    def exec(self, run: str, node: str, command: list[str]) -> ExecResult:
        return self._engine_of(run, node).exec(run, node, command)

    def attach_network(self, run: str, node: str, network: str, ipv6: str) -> None:
        self._engine_of(run, node).attach_network(run, node, network, ipv6)

    def detach_network(self, run: str, node: str, network: str) -> None:
        self._engine_of(run, node).detach_network(run, node, network)

    def node_state(self, run: str, node: str) -> dict[str, Any] | None:
        try:
            engine = self._engine_of(run, node)
        except NotRunning:
            return None
        return engine.node_state(run, node)

    def logs(self, run: str, node: str, tail: int, follow: bool) -> Iterator[bytes]:
        return self._engine_of(run, node).logs(run, node, tail, follow)

    # -- image, services, Ansible -----------------------------------------------------------

    def ensure_node_image(
        self,
        *,
        base_image: str | None = None,
        force: bool = False,
        progress: ProgressFn | None = None,
    ) -> ImageResult:
        """Built on every reachable host (no registry: each builds the same inputs-hash tag);
        the result is this host's."""
        local = self._local()
        result = local.ensure_node_image(base_image=base_image, force=force, progress=progress)
        for engine in self.reachable_engines():
            if engine is not local:
                engine.ensure_node_image(base_image=base_image, force=force, progress=progress)
        return result

    def services(self) -> RunServices | None:
        from testbed.engines.docker_services import DockerRunServices

        return DockerRunServices(self.client)

    def ansible_connection(self, node: NodeStatus) -> dict[str, Any]:
        # As on one host (a packed thing's modules are told its control port), plus the Docker
        # API of the host that runs the node when that is another one.
        variables = ansible_connection(node)
        engine = self._where.get((node.run, node.node))
        if engine is not None and not engine.local:
            variables["ansible_docker_host"] = engine.swarm_node.engine
        return variables


def ipv4_subnet(name: str, attempt: int) -> str:
    """A /24 of IPV4_SPACE for the overlay ``name`` (another one for each attempt)."""
    count = IPV4_SPACE.num_addresses // 256
    digest = hashlib.sha256(f"{name}/{attempt}".encode()).digest()
    index = int.from_bytes(digest[:4], "big") % count
    return str(ipaddress.IPv4Network((int(IPV4_SPACE.network_address) + index * 256, 24)))
