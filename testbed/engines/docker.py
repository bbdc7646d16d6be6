"""Docker engine (docker SDK): networks, volumes and containers of a plan, found by labels.

Every Docker error is translated into a TestbedError with a hint at this boundary, so users
see what to do instead of a traceback.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool

from testbed import rundir
from testbed.contracts.node_config import CONFIG_DIR, STATE_DIR, Role
from testbed.engines import packed
from testbed.engines.base import EventFn, ExecResult, NodeStatus, RemovalReport, RunServices
from testbed.engines.docker_errors import _translated, daemon_error
from testbed.engines.docker_networks import (
    _attached,
    _network_shape,
    leftover_network,
    remove_network,
)
from testbed.engines.docker_ready import wait_ready
from testbed.errors import EngineError, NotRunning
from testbed.plan import labels as L
from testbed.plan.model import NetworkPlan, NodePlan, Plan
from testbed.project import PROJECT_ROOT

if TYPE_CHECKING:
    from testbed.engines.images import ImageResult, ProgressFn

STOP_TIMEOUT = 5
WORKERS = 8  # concurrent create and start calls to the daemon
READY_WORKERS = 32  # concurrent readiness waits
# a connection each: creates, starts and waits at once, plus the run's services
CONNECTIONS = 2 * WORKERS + READY_WORKERS + 4


def connect() -> docker.DockerClient:
    """A client for the local daemon, or DaemonUnavailable with what to do about it."""
    try:
        # Generous: a busy daemon (many nodes starting on 2 cores) can take long to answer.
        client = docker.from_env(timeout=180, max_pool_size=CONNECTIONS)
        client.ping()
    except docker.errors.DockerException as exc:
        raise daemon_error(exc) from exc
    return client


class DockerEngine:
    name = "docker"

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self.client = client or connect()

    # -- bring-up ---------------------------------------------------------------------------

    def deploy(self, plan: Plan, image: str, run_dir: Path, on_event: EventFn) -> None:
        # The networks are independent of each other: made together.
        with _translated("creating networks"), ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for net in pool.map(lambda n: self._make_network(plan, n), plan.networks):
                on_event("network", net.name)
        nodes = sorted(plan.containers(), key=lambda n: n.tier)
        tiers = [list(group) for _, group in groupby(nodes, key=lambda n: n.tier)]
        # Creating a container (volume, container, its networks) starts nothing, so every
        # node is created at once, in tier order, while the lower tiers start. Starts keep
        # the tier order: a node starts only after every node of the tiers below is ready.
        # Readiness waits mostly wait (one blocking probe exec each), so they get threads of
        # their own rather than holding the WORKERS slots that create and start use.
        starts = threading.Semaphore(WORKERS)
        creating = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="create")
        waiting = ThreadPoolExecutor(
            max_workers=max(1, min(READY_WORKERS, max((len(t) for t in tiers), default=1))),
            thread_name_prefix="ready",
        )
        try:
            created = {
                n.name: creating.submit(self._create_node, plan, n, image, run_dir, on_event)
                for n in nodes
            }

            def start(node: NodePlan) -> None:
                self._start_created(node, created[node.name].result(), on_event, starts)

            for tier in tiers:
                for future in [waiting.submit(start, n) for n in tier]:
                    future.result()
        finally:
            # On a failure nothing more is created; what was is removed by the caller.
            creating.shutdown(wait=True, cancel_futures=True)
            waiting.shutdown(wait=True, cancel_futures=True)

    def _make_network(self, plan: Plan, net: NetworkPlan) -> NetworkPlan:
        self._create_network(plan, net)
        return net

    def _create_network(self, plan: Plan, net: NetworkPlan) -> None:
        def create() -> None:
            self.client.networks.create(
                net.resource,
                driver="bridge",
                enable_ipv6=True,
                internal=net.internal,
                ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=net.subnet6, gateway=net.gateway6)]),
                labels=net.labels,
                check_duplicate=True,
            )

        try:
            create()
            return
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            existing = leftover_network(self.client, plan.run, net.resource)
            if existing is None:
                raise
        # A network of this very run with nothing attached: left behind by an earlier `down`.
        if self._remove_network(existing) != "stale":
            create()
            return
        # The daemon cannot remove it until it restarts (a stale endpoint count). It works
        # otherwise, so reuse it when it is exactly what the plan asks for.
        if _network_shape(existing.attrs) != (net.subnet6, net.gateway6, net.internal, True):
            raise EngineError(
                f"network {net.resource} is left over from an earlier run {plan.run!r} with "
                "another configuration, and Docker refuses to remove it (a stale endpoint "
                "count, a Docker 20.10 libnetwork defect)",
                "restart the Docker daemon (`sudo systemctl restart docker`), which drops it, "
                "or bring the topology up under another --run NAME",
            )

    def _start_node(
        self, plan: Plan, node: NodePlan, image: str, run_dir: Path, on_event: EventFn
    ) -> None:
        """Create, start and wait for one node."""
        container_id = self._create_node(plan, node, image, run_dir, on_event)
        self._start_created(node, container_id, on_event)

    def _start_created(
        self,
        node: NodePlan,
        container_id: str,
        on_event: EventFn,
        slots: threading.Semaphore | None = None,
    ) -> None:
        """Start a created node's container and wait until the node is ready; ``slots``
        bounds how many start calls reach the daemon at once (the wait is not bounded)."""
        with slots or contextlib.nullcontext(), _translated(f"starting node {node.name}"):
            self._start_container(container_id)
        on_event("started", node.name)
        wait_ready(self.client, node.name, container_id)
        on_event("ready", node.name)

    def _create_node(
        self, plan: Plan, node: NodePlan, image: str, run_dir: Path, on_event: EventFn
    ) -> str:
        """The node's volume and container, attached to all its networks; its container id."""
        nets = {n.name: n for n in plan.networks}
        first, *rest = node.config.interfaces
        with _translated(f"creating node {node.name}"):
            self.client.volumes.create(node.volume, labels={L.RUN: plan.run, L.NODE: node.name})
            config_source = self._config_source(plan, node, run_dir)
            networking = self.client.api.create_networking_config(
                {
                    nets[first.network].resource: self.client.api.create_endpoint_config(
                        ipv6_address=first.ipv6.split("/")[0], aliases=[node.name]
                    )
                }
            )
            host_config = self.client.api.create_host_config(
                binds={
                    node.volume: {"bind": str(STATE_DIR), "mode": "rw"},
                    config_source: {"bind": str(CONFIG_DIR), "mode": "ro"},
                    # a thing host: each packed thing's own folder, read-only, in its config
                    **{
                        self._config_source(plan, m, run_dir): {
                            "bind": f"{CONFIG_DIR}/things/{m.name}",
                            "mode": "ro",
                        }
                        for m in plan.members(node)
                    },
                },
                cap_add=["NET_ADMIN"] if node.net_admin else None,
                devices=(["/dev/net/tun:/dev/net/tun:rwm"] if node.tun else [])
                + [f"{d}:{d}:rwm" for d in node.devices]
                or None,
                sysctls=node.sysctls or None,
                network_mode=nets[first.network].resource,
                init=False,
            )
            created = self.client.api.create_container(
                image,
                name=node.resource,
                hostname=node.hostname,
                labels=node.labels,
                environment={"PYTHONUNBUFFERED": "1"},
                host_config=host_config,
                networking_config=networking,
                stop_timeout=STOP_TIMEOUT,
                detach=True,
            )
            container_id = str(created["Id"])
            for iface in rest:
                self.client.api.connect_container_to_network(
                    container_id,
                    nets[iface.network].resource,
                    ipv6_address=iface.ipv6.split("/")[0],
                    aliases=[node.name],
                )
        on_event("created", node.name)
        return container_id

    def _start_container(self, container_id: str) -> None:
        self.client.api.start(container_id)

    def _config_source(self, plan: Plan, node: NodePlan, run_dir: Path) -> str:
        """What is mounted read-only at the node's CONFIG_DIR: its run-directory folder (an
        engine on another host overrides this with a copy it can reach)."""
        return str((run_dir / "nodes" / node.name).resolve())

    # -- stop and start a deployed run ------------------------------------------------------

    def stop_nodes(self, run: str, nodes: Sequence[str]) -> list[str]:
        wanted = set(nodes)
        with _translated(f"stopping nodes of run {run}"):
            containers = [
                c
                for c in self.client.containers.list(filters=L.run_filter(run), ignore_removed=True)
                if c.labels.get(L.NODE) in wanted
            ]

            def stop(container: Any) -> str:
                with contextlib.suppress(docker.errors.NotFound):
                    container.stop(timeout=STOP_TIMEOUT)  # SIGTERM: nodes shut down cleanly
                return str(container.labels.get(L.NODE))

            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                return sorted(pool.map(stop, containers))

    def start_nodes(
        self, run: str, nodes: Sequence[str], on_event: EventFn, *, probe: bool = True
    ) -> None:
        def start(node: str) -> None:
            container = self._container(run, node)
            with _translated(f"starting node {node}"):
                self._start_container(container.id)  # a running container is left as it is
            on_event("started", node)
            if probe:
                wait_ready(self.client, node, container.id)
                on_event("ready", node)

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(start, nodes))

    # -- image, services, Ansible -----------------------------------------------------------

    def ensure_node_image(
        self,
        *,
        base_image: str | None = None,
        force: bool = False,
        progress: ProgressFn | None = None,
    ) -> ImageResult:
        from testbed.engines.images import ensure_node_image

        return ensure_node_image(
            self.client,
            project_root=PROJECT_ROOT,
            cache_dir=rundir.cache_dir(),
            base_image=base_image,
            force=force,
            progress=progress,
        )

    def services(self) -> RunServices | None:
        from testbed.engines.docker_services import DockerRunServices

        return DockerRunServices(self.client)

    def ansible_connection(self, node: NodeStatus) -> dict[str, Any]:
        return ansible_connection(node)

    # -- tear-down --------------------------------------------------------------------------

    def undeploy(self, run: str) -> RemovalReport:
        report = RemovalReport()
        filters = L.run_filter(run)
        with _translated(f"removing run {run}"):
            containers = self.client.containers.list(all=True, filters=filters, ignore_removed=True)

            def remove(container: Any) -> str:
                # Stop first (SIGTERM: nodes shut down cleanly), then remove. Force-removing
                # running containers in parallel can leave a stale endpoint behind in Docker
                # 20.10's libnetwork, and the network then refuses removal.
                with contextlib.suppress(docker.errors.NotFound):
                    if container.status == "running":
                        container.stop(timeout=STOP_TIMEOUT)
                    container.remove(force=True, v=False)
                return str(container.name)

            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                report.containers = list(pool.map(remove, containers))
            for net in self.client.networks.list(filters=filters):
                # One stale network must not keep the others and the volumes from going.
                outcome = self._remove_network(net)
                if outcome == "removed":
                    report.networks.append(net.name)
                elif outcome == "stale":
                    report.stale_networks.append(net.name)
            for volume in self.client.volumes.list(filters=filters):
                try:
                    volume.remove(force=True)
                    report.volumes.append(volume.name)
                except docker.errors.NotFound:
                    pass
        return report

    def _remove_network(self, net: Any, attempts: int = 10) -> str:
        return remove_network(self.client, net, attempts)

    def empty_networks(self, run: str) -> list[str]:
        with _translated(f"listing the networks of run {run}"):
            names = [n.name for n in self.client.networks.list(filters=L.run_filter(run))]
            empty = []
            for name in names:
                # The list call leaves "Containers" out: inspect each network.
                with contextlib.suppress(docker.errors.NotFound):
                    if not _attached(self.client.networks.get(name).attrs):
                        empty.append(name)
        return empty

    # -- inspection -------------------------------------------------------------------------

    def runs(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        filters = L.run_filter(None)
        with _translated("listing runs"):
            objects: list[Any] = [
                # sparse: the list call's own answer carries the labels; without it the SDK
                # inspects every container of every run on the daemon, one call each.
                *self.client.containers.list(all=True, filters=filters, sparse=True),
                *self.client.networks.list(filters=filters),
                *self.client.volumes.list(filters=filters),
            ]
        for obj in objects:
            run = (obj.attrs.get("Labels") or obj.attrs.get("Config", {}).get("Labels") or {}).get(
                L.RUN
            )
            if run:
                counts[run] = counts.get(run, 0) + 1
        return counts

    def status(self, run: str | None = None) -> list[NodeStatus]:
        with _translated("listing nodes"):
            containers = self.client.containers.list(
                all=True, filters=L.run_filter(run), ignore_removed=True
            )
            nets = self.client.networks.list(filters=L.run_filter(run))
        logical = {n.name: n.attrs["Labels"].get(L.NETWORK, n.name) for n in nets}
        out = []
        for container in containers:
            labels = container.labels
            if L.NODE not in labels:
                continue
            ident = L.NodeLabels.from_labels(labels)
            addresses: dict[str, str] = {}
            mgmt_ipv4 = ""
            for net_name, endpoint in container.attrs["NetworkSettings"]["Networks"].items():
                name = logical.get(net_name, net_name)
                if endpoint.get("GlobalIPv6Address"):
                    addresses[name] = endpoint["GlobalIPv6Address"]
                if name == "mgmt":
                    mgmt_ipv4 = endpoint.get("IPAddress", "")
            out.append(
                NodeStatus(
                    run=ident.run,
                    node=ident.node,
                    role=ident.role,
                    kind=ident.kind,
                    state=container.status,
                    resource=container.name,
                    image=(container.image.tags or [container.image.short_id])[0]
                    if container.image
                    else "",
                    addresses=addresses,
                    mgmt_ipv4=mgmt_ipv4,
                    attributes=ident.attribute_map,
                    run_dir=ident.run_dir,
                    topology=ident.topology,
                )
            )
            out += packed.expand(out[-1], labels)
        return sorted(out, key=lambda s: (s.run, _ROLE_ORDER.get(s.role, 9), s.node))

    def _container(self, run: str, node: str) -> Any:
        with _translated(f"finding node {node}"):
            found = self.client.containers.list(
                all=True,
                filters={"label": [f"{L.RUN}={run}", f"{L.NODE}={node}"]},
                ignore_removed=True,
            )
        if not found:  # a packed thing: its thing host's container
            with _translated(f"finding node {node}"):
                found = self.client.containers.list(
                    all=True,
                    filters={"label": [f"{L.RUN}={run}", packed.label_key(node)]},
                    ignore_removed=True,
                )
        if not found:
            raise NotRunning(
                f"run {run!r} has no node {node!r}",
                f"list its nodes with `testbed status --run {run}`",
            )
        return found[0]

    def _network(self, run: str, network: str) -> Any:
        with _translated(f"finding network {network} of run {run}"):
            found = self.client.networks.list(
                filters={"label": [f"{L.RUN}={run}", f"{L.NETWORK}={network}"]}
            )
        if not found:
            raise NotRunning(
                f"run {run!r} has no network {network!r}",
                f"list its nodes and networks with `testbed status --run {run}`",
            )
        return found[0]

    def attach_network(self, run: str, node: str, network: str, ipv6: str) -> None:
        container, net = self._container(run, node), self._network(run, network)
        if net.name in (container.attrs.get("NetworkSettings") or {}).get("Networks", {}):
            return  # attached already (a move that is tried again)
        with _translated(f"connecting {node} to {network}"):
            self.client.api.connect_container_to_network(
                container.id, net.id, ipv6_address=ipv6, aliases=[node]
            )

    def detach_network(self, run: str, node: str, network: str) -> None:
        container, net = self._container(run, node), self._network(run, network)
        if net.name not in (container.attrs.get("NetworkSettings") or {}).get("Networks", {}):
            return
        with _translated(f"disconnecting {node} from {network}"):
            self.client.api.disconnect_container_from_network(container.id, net.id)

    def exec(self, run: str, node: str, command: list[str]) -> ExecResult:
        container = self._container(run, node)
        # A packed thing: its probes and modules ask its own control port in the host's container.
        env = packed.exec_environment(container.labels, node)
        with _translated(f"running a command in {node}"):
            result = container.exec_run(command, demux=False, environment=env or None)
        return ExecResult(exit_code=int(result.exit_code), output=result.output or b"")

    def node_state(self, run: str, node: str) -> dict[str, Any] | None:
        try:
            result = self.exec(run, node, ["python3", "-m", "testbed.node.probe", "state"])
        except (EngineError, NotRunning):
            return None
        if result.exit_code != 0:
            return None
        try:
            state = json.loads(result.output)
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def logs(self, run: str, node: str, tail: int, follow: bool) -> Iterator[bytes]:
        container = self._container(run, node)
        with _translated(f"reading the log of {node}"):
            if follow:
                yield from container.logs(stream=True, follow=True, tail=tail)
            else:
                yield container.logs(tail=tail)


_ROLE_ORDER = {role: order for order, role in enumerate(Role.ALL)}
ANSIBLE_CONNECTION = "community.docker.docker"


def ansible_connection(node: NodeStatus) -> dict[str, Any]:
    """Ansible reaches a node through the Docker API: ``docker exec`` into its container; a
    packed thing's modules are told its control port in their environment."""
    port = packed.control_port(node)
    return {
        "ansible_connection": ANSIBLE_CONNECTION,
        "ansible_host": node.resource,
        # Explicitly empty elsewhere: a task delegated to another node must not take it along.
        "ansible_docker_extra_env": {packed.CONTROL_PORT_ENV: str(port)} if port else {},
    }
