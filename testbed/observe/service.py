"""The Prometheus container of a run: on mgmt only, published on 127.0.0.1, found by labels.

It carries the run's labels like a node (``testbed.run``, ``testbed.node=prometheus``,
``testbed.role=observer``), so ``testbed status`` lists it and ``testbed down`` removes it with
its TSDB volume; ``testbed.url`` holds the URL it is published on. Its mgmt address is fixed: the
host number just below the planner's first (``addressing.FIRST_HOST``), which the planner never
hands out.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from testbed.observe.api import PrometheusAPI
from testbed.observe.config import PROMETHEUS_PORT
from testbed.observe.errors import ObserveError
from testbed.observe.targets import OBSERVER_ROLE
from testbed.plan import addressing
from testbed.plan import labels as L
from testbed.plan.model import Plan
from testbed.plan.networks import resource_name

OBSERVER_NODE = "prometheus"
OBSERVER_KIND = "prometheus"
URL_ATTRIBUTE = "url"
OBSERVER_HOST = addressing.FIRST_HOST - 1
CONFIG_MOUNT = "/etc/prometheus"
DATA_MOUNT = "/prometheus"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5
PORT_ATTEMPTS = 5
LOG_TAIL = 20
SYSCTLS = {"net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.all.accept_dad": "0"}


@dataclass(frozen=True)
class Observer:
    run: str
    url: str
    container: str  # name
    address: str  # on mgmt


def observer_address(plan: Plan) -> str:
    mgmt = ipaddress.IPv6Network(plan.network("mgmt").subnet6)
    return str(addressing.host(mgmt, OBSERVER_HOST))


def observer_labels(plan: Plan, url: str) -> dict[str, str]:
    any_node = L.NodeLabels.from_labels(plan.nodes[0].labels) if plan.nodes else None
    return L.NodeLabels(
        run=plan.run,
        node=OBSERVER_NODE,
        role=OBSERVER_ROLE,
        building=plan.building,
        kind=OBSERVER_KIND,
        run_dir=any_node.run_dir if any_node else "",
        topology=plan.topology_path,
        attributes=((URL_ATTRIBUTE, url),),
    ).to_labels()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_observer(
    client: docker.DockerClient, plan: Plan, observe_dir: Path, image: str
) -> Observer:
    """Create and start the run's Prometheus; return once it answers /-/ready."""
    name = resource_name(plan.run, OBSERVER_NODE)
    volume = resource_name(plan.run, f"{OBSERVER_NODE}-data")
    mgmt = plan.network("mgmt").resource
    address = observer_address(plan)
    try:
        client.volumes.create(volume, labels={L.RUN: plan.run, L.NODE: OBSERVER_NODE})
        binds = {
            volume: {"bind": DATA_MOUNT, "mode": "rw"},
            str(observe_dir.resolve()): {"bind": CONFIG_MOUNT, "mode": "ro"},
        }
        container_id, url = start_published(
            client,
            lambda port, url: create_on_mgmt(
                client,
                image,
                name=name,
                hostname=OBSERVER_NODE,
                mgmt=mgmt,
                binds=binds,
                container_port=PROMETHEUS_PORT,
                host_port=port,
                labels=observer_labels(plan, url),
                ipv6_address=address,
            ),
        )
    except docker.errors.DockerException as exc:
        raise ObserveError(
            f"cannot start Prometheus for run {plan.run}: {exc}",
            "see the message above; `docker info` shows the daemon's state",
        ) from exc
    api = PrometheusAPI(url, timeout=2.0)
    wait_until_ready(client, container_id, url, "Prometheus", api.ready, READY_TIMEOUT_S)
    return Observer(plan.run, url, name, address)


def start_published(
    client: docker.DockerClient, create: Callable[[int, str], str]
) -> tuple[str, str]:
    """Create (``create(port, url)`` -> container ID) and start a container published on a free
    127.0.0.1 port; (container ID, URL). Another process may take the port between the choice
    and the start: then another port."""
    for attempt in range(PORT_ATTEMPTS):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        container_id = create(port, url)
        try:
            client.api.start(container_id)
            return container_id, url
        except docker.errors.APIError as exc:
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_container(container_id, force=True)
            text = str(exc.explanation or exc)
            taken = "allocated" in text or "in use" in text
            if not taken or attempt == PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def create_on_mgmt(
    client: docker.DockerClient,
    image: str,
    *,
    name: str,
    hostname: str,
    mgmt: str,
    binds: dict[str, dict[str, str]],
    container_port: int,
    host_port: int,
    labels: dict[str, str],
    ipv6_address: str | None = None,
    user: str | None = None,
    environment: dict[str, str] | None = None,
) -> str:
    """Create (not start) an observability container of a run: on mgmt only, reachable there by
    its hostname, ``container_port`` published on 127.0.0.1:``host_port``; its container ID."""
    host_config = client.api.create_host_config(
        binds=binds,
        port_bindings={container_port: ("127.0.0.1", host_port)},
        sysctls=SYSCTLS,
        network_mode=mgmt,
    )
    networking = client.api.create_networking_config(
        {mgmt: client.api.create_endpoint_config(ipv6_address=ipv6_address, aliases=[hostname])}
    )
    created: dict[str, Any] = client.api.create_container(
        image,
        name=name,
        hostname=hostname,
        user=user,
        environment=environment,
        labels=labels,
        ports=[container_port],
        host_config=host_config,
        networking_config=networking,
        stop_timeout=STOP_TIMEOUT_S,
        detach=True,
    )
    return str(created["Id"])


def wait_until_ready(
    client: docker.DockerClient,
    container_id: str,
    url: str,
    what: str,
    ready: Callable[[], bool],
    timeout: float,
) -> None:
    """Poll ``ready`` until it holds; ObserveError with the log tail if the container exits or
    the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = client.api.inspect_container(container_id)["State"]
        except docker.errors.DockerException as exc:
            raise ObserveError(
                f"the {what} container vanished: {exc}", "look at `docker ps -a`"
            ) from exc
        if not state.get("Running"):
            raise ObserveError(
                f"{what} exited at start (exit code {state.get('ExitCode')}):\n"
                + log_tail(client, container_id),
                "the lines above are the end of its log",
            )
        if ready():
            return
        if time.monotonic() > deadline:
            raise ObserveError(
                f"{what} did not become ready within {timeout:.0f} s on {url}:\n"
                + log_tail(client, container_id),
                "the lines above are the end of its log",
            )
        time.sleep(0.3)


def log_tail(client: docker.DockerClient, container_id: str) -> str:
    try:
        raw: bytes = client.api.logs(container_id, tail=LOG_TAIL)
    except docker.errors.DockerException:
        return "(log not available)"
    return raw.decode("utf-8", "replace").rstrip()


def remove_observer(client: docker.DockerClient, run: str) -> None:
    """Remove a run's Prometheus container (its volume stays for `testbed down`)."""
    for container in _observer_containers(client, run):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def find_observer(client: docker.DockerClient, run: str) -> Observer | None:
    for container in _observer_containers(client, run):
        labels = container.labels or {}
        url = labels.get(L.PREFIX + URL_ATTRIBUTE, "")
        if container.status == "running" and url:
            return Observer(run, url, str(container.name), "")
    return None


def _observer_containers(client: docker.DockerClient, run: str) -> list[Any]:
    # The node label too: the run's Grafana is an observer as well.
    flt = {"label": [f"{L.RUN}={run}", f"{L.ROLE}={OBSERVER_ROLE}", f"{L.NODE}={OBSERVER_NODE}"]}
    # ignore_removed: other runs' containers may vanish while the daemon lists them
    return list(client.containers.list(all=True, filters=flt, ignore_removed=True))
