"""A plan as a docker-compose file that makes what ``DockerEngine.deploy`` makes.

Same names, same labels, same addresses: containers started by ``docker-compose up`` are found by
``testbed status``, ``testbed phase`` and ``testbed down`` exactly like those of ``testbed up``.
Per node: image, container_name, hostname, the ``testbed.*`` labels, NET_ADMIN, /dev/net/tun,
sysctls, one fixed IPv6 address (and the node's name as alias) on each of its networks, its
state volume at /var/lib/testbed and its run-directory share read-only at /etc/testbed.
Networks: bridges with IPv6, the plan's subnet and gateway, ``internal`` as planned, the plan's
labels. Plus the run's Prometheus (``testbed.observe.service``): on mgmt at its fixed address,
published on 127.0.0.1, its configuration directory mounted read-only. And the run's Grafana as
``testbed up`` starts it (``testbed.observe.grafana_service``), in the compose profile
``grafana``: its image comes from a registry, so a plain ``up`` must not need it;
``--profile grafana`` starts it too.

Docker-compose 1.29 (Debian's v1) reads it: no top-level ``name:``, no ``version:``. Bind
mounts use the long syntax, so a missing run directory fails loudly ("bind source path does not
exist") instead of Docker creating an empty directory in its place.

Start order: ``deploy`` starts tier 0 (routers, trust centers, hosts) and waits until each
answers ``testbed.node.probe ready`` before the things. Here tier-0 nodes carry that probe as
their healthcheck and every higher-tier node ``depends_on`` them with ``service_healthy``.

Rendering is pure: text is a function of the plan, the run directory path and the options, so a
test re-renders the committed ``compose.yaml`` and compares it byte for byte. The paths it was
rendered with are recorded in its ``x-testbed`` block (compose ignores ``x-`` keys).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testbed.contracts.node_config import CONFIG_DIR, STATE_DIR
from testbed.observe import grafana_service
from testbed.observe.config import PROMETHEUS_PORT
from testbed.plan import labels as L
from testbed.plan.model import NodePlan, Plan
from testbed.project import DASHBOARDS

NODE_IMAGE = "testbed/node:latest"
PROMETHEUS_IMAGE = "testbed/prometheus:latest"
GRAFANA_IMAGE = grafana_service.DEFAULT_IMAGE
GRAFANA_PROFILE = "grafana"
PROJECT_DASHBOARDS = DASHBOARDS
STOP_GRACE = "5s"  # testbed.engines.docker.STOP_TIMEOUT
TUN_DEVICE = "/dev/net/tun:/dev/net/tun:rwm"
READY_PROBE = ["CMD", "python3", "-m", "testbed.node.probe", "ready"]
HEALTHCHECK = {"interval": "3s", "timeout": "10s", "retries": 20}
PORT_BASE = 20000  # derived Prometheus ports: PORT_BASE + (hash of the run) % PORT_SPAN
PORT_SPAN = 10000
EXTENSION = "x-testbed"
HEADER = """\
# docker-compose file of testbed run {run!r}: the topology {topology}
# rendered by `testbed render` (testbed/compose/document.py); do not edit.
#
# It references the run directory {run_dir}
# (credentials minted per run, never committed): run `testbed render --run {run}` first, which
# writes it and this file, then
#     docker-compose -p {run} -f {file} up -d
# (add `--profile grafana` before `up` for the run's Grafana, when its image is here).
# `testbed status --run {run}`, `testbed phase ... --run {run}` and `testbed down --run {run}`
# find the containers by their labels; `docker-compose -p {run} -f {file} down -v` works too.
"""


@dataclass(frozen=True)
class ComposeOptions:
    node_image: str = NODE_IMAGE
    prometheus_image: str | None = PROMETHEUS_IMAGE  # None: no Prometheus service
    prometheus_port: int = 0  # 0: derived from the run name (default_prometheus_port)
    # The run's Grafana, in the compose profile "grafana" (its image may not be here: a plain
    # `up` must not need it). None: no Grafana service. Needs the Prometheus service.
    grafana_image: str | None = GRAFANA_IMAGE
    grafana_port: int = 0  # 0: derived from the run name (default_grafana_port)
    dashboards_dir: str = ""  # "": this checkout's dashboards/


@dataclass(frozen=True)
class RenderedPaths:
    """The per-machine inputs of a rendering, as its ``x-testbed`` block records them."""

    run: str
    run_dir: str
    topology: str
    dashboards: str = ""  # files rendered before Grafana joined them have none


def default_prometheus_port(run: str) -> int:
    """A stable host port per run name, so that re-rendering gives the same file."""
    digest = hashlib.sha256(run.encode()).digest()
    return PORT_BASE + int.from_bytes(digest[:4], "big") % PORT_SPAN


def default_grafana_port(run: str) -> int:
    """Likewise for Grafana: the next port of the span after Prometheus's."""
    return PORT_BASE + (default_prometheus_port(run) - PORT_BASE + 1) % PORT_SPAN


def run_dir_of(plan: Plan) -> str:
    """The run directory the plan was made for (every node's ``testbed.run-dir`` label)."""
    dirs = {node.labels.get(L.RUN_DIR, "") for node in plan.nodes}
    if len(dirs) != 1 or not next(iter(dirs)):
        raise ValueError("the plan carries no single run directory (make_plan(run_dir=...))")
    return dirs.pop()


def _network(plan: Plan, name: str) -> dict[str, Any]:
    net = plan.network(name)
    return {
        "name": net.resource,
        "driver": "bridge",
        "enable_ipv6": True,
        "internal": net.internal,
        "labels": dict(net.labels),
        "ipam": {"driver": "default", "config": [{"subnet": net.subnet6, "gateway": net.gateway6}]},
    }


def _node_service(plan: Plan, node: NodePlan, options: ComposeOptions) -> dict[str, Any]:
    run_dir = run_dir_of(plan)
    service: dict[str, Any] = {
        "image": options.node_image,
        "container_name": node.resource,
        "hostname": node.hostname,
        "labels": dict(node.labels),
        "environment": {"PYTHONUNBUFFERED": "1"},
    }
    if node.net_admin:
        service["cap_add"] = ["NET_ADMIN"]
    devices = ([TUN_DEVICE] if node.tun else []) + [f"{d}:{d}:rwm" for d in node.devices]
    if devices:
        service["devices"] = devices  # the TUN, and radio dongles' serial lines
    if node.sysctls:
        service["sysctls"] = dict(node.sysctls)
    service["networks"] = {
        iface.network: {"ipv6_address": iface.ipv6.split("/")[0], "aliases": [node.name]}
        for iface in node.config.interfaces
    }
    service["volumes"] = [
        {"type": "volume", "source": node.volume, "target": str(STATE_DIR)},
        {
            "type": "bind",
            "source": f"{run_dir}/nodes/{node.name}",
            "target": str(CONFIG_DIR),
            "read_only": True,
        },
        *(  # a thing host: each packed thing's own folder, read-only, in its config
            {
                "type": "bind",
                "source": f"{run_dir}/nodes/{member.name}",
                "target": f"{CONFIG_DIR}/things/{member.name}",
                "read_only": True,
            }
            for member in plan.members(node)
        ),
    ]
    containers = plan.containers()
    earlier = [n.name for n in containers if n.tier < node.tier]
    if earlier:
        service["depends_on"] = {name: {"condition": "service_healthy"} for name in earlier}
    elif any(n.tier > node.tier for n in containers):
        service["healthcheck"] = {"test": list(READY_PROBE), **HEALTHCHECK}
    service["stop_grace_period"] = STOP_GRACE
    return service


def _prometheus(plan: Plan, image: str, port: int) -> tuple[str, dict[str, Any], str]:
    """(service name, service, volume name) of the run's Prometheus."""
    from testbed.observe import service as obs
    from testbed.observe.config import OBSERVE_DIR
    from testbed.plan.planner import resource_name

    url = f"http://127.0.0.1:{port}"
    volume = resource_name(plan.run, f"{obs.OBSERVER_NODE}-data")
    service = {
        "image": image,
        "container_name": resource_name(plan.run, obs.OBSERVER_NODE),
        "hostname": obs.OBSERVER_NODE,
        "labels": obs.observer_labels(plan, url),
        "sysctls": dict(obs.SYSCTLS),
        "networks": {
            "mgmt": {"ipv6_address": obs.observer_address(plan), "aliases": [obs.OBSERVER_NODE]}
        },
        "ports": [f"127.0.0.1:{port}:{PROMETHEUS_PORT}"],
        "volumes": [
            {"type": "volume", "source": volume, "target": obs.DATA_MOUNT},
            {
                "type": "bind",
                "source": f"{run_dir_of(plan)}/{OBSERVE_DIR}",
                "target": obs.CONFIG_MOUNT,
                "read_only": True,
            },
        ],
        "stop_grace_period": f"{obs.STOP_TIMEOUT_S}s",
    }
    return obs.OBSERVER_NODE, service, volume


def _grafana(plan: Plan, image: str, port: int, dashboards: str) -> tuple[str, dict[str, Any], str]:
    """(service name, service, volume name) of the run's Grafana, as ``testbed up`` makes it
    (testbed.observe.grafana_service): mgmt only, 127.0.0.1, provisioning read-only, the admin
    password from the run directory's 0600 file (``testbed render`` writes it)."""
    from testbed.observe import service as obs
    from testbed.plan.planner import resource_name

    g = grafana_service
    run_dir = Path(run_dir_of(plan))
    url = f"http://127.0.0.1:{port}"
    volume = resource_name(plan.run, f"{g.GRAFANA_NODE}-data")
    read_only = [
        (f"{dashboards}/provisioning", g.PROVISIONING_MOUNT),
        (f"{dashboards}/json", g.DASHBOARDS_MOUNT),
        (str(g.secret_dir(run_dir)), g.SECRET_MOUNT),
    ]
    service = {
        "image": image,
        "profiles": [GRAFANA_PROFILE],
        "container_name": resource_name(plan.run, g.GRAFANA_NODE),
        "hostname": g.GRAFANA_NODE,
        "user": "0",
        "depends_on": [obs.OBSERVER_NODE],
        "environment": dict(g.ENVIRONMENT),
        "labels": g.grafana_labels(plan, url, run_dir),
        "sysctls": dict(obs.SYSCTLS),
        "networks": {"mgmt": {"aliases": [g.GRAFANA_NODE]}},
        "ports": [f"127.0.0.1:{port}:{g.GRAFANA_PORT}"],
        "volumes": [
            {"type": "volume", "source": volume, "target": g.DATA_MOUNT},
            *(
                {"type": "bind", "source": source, "target": target, "read_only": True}
                for source, target in read_only
            ),
        ],
        "stop_grace_period": f"{g.STOP_TIMEOUT_S}s",
    }
    return g.GRAFANA_NODE, service, volume


def compose_document(plan: Plan, options: ComposeOptions | None = None) -> dict[str, Any]:
    """The compose document of a plan (a dict in the order it is written)."""
    opts = options or ComposeOptions()
    services = {node.name: _node_service(plan, node, opts) for node in plan.containers()}
    volumes: dict[str, Any] = {
        node.volume: {"name": node.volume, "labels": {L.RUN: plan.run, L.NODE: node.name}}
        for node in plan.containers()
    }
    if opts.prometheus_image:
        port = opts.prometheus_port or default_prometheus_port(plan.run)
        name, service, volume = _prometheus(plan, opts.prometheus_image, port)
        if name in services:
            raise ValueError(f"a node is named {name!r}, the name of the run's Prometheus")
        services[name] = service
        volumes[volume] = {"name": volume, "labels": {L.RUN: plan.run, L.NODE: name}}
    dashboards = opts.dashboards_dir or str(PROJECT_DASHBOARDS)
    if opts.grafana_image and opts.prometheus_image:
        port = opts.grafana_port or default_grafana_port(plan.run)
        name, service, volume = _grafana(plan, opts.grafana_image, port, dashboards)
        if name in services:
            raise ValueError(f"a node is named {name!r}, the name of the run's Grafana")
        services[name] = service
        volumes[volume] = {"name": volume, "labels": {L.RUN: plan.run, L.NODE: name}}
    return {
        EXTENSION: {
            "run": plan.run,
            "building": plan.building,
            "run-dir": run_dir_of(plan),
            "topology": plan.topology_path,
            "dashboards": dashboards,
        },
        "services": services,
        "networks": {net.name: _network(plan, net.name) for net in plan.networks},
        "volumes": volumes,
    }


def render(
    plan: Plan, options: ComposeOptions | None = None, file_name: str = "compose.yaml"
) -> str:
    """The compose file's text: a header comment, then the document as block YAML."""
    header = HEADER.format(
        run=plan.run, run_dir=run_dir_of(plan), file=file_name, topology=_short(plan)
    )
    document = escape_interpolation(compose_document(plan, options))
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=100)
    return header + body


def _short(plan: Plan) -> str:
    """The topology file as the header names it: from topologies/ on, where it is there."""
    path = plan.topology_path
    marker = "/topologies/"
    return path[path.rindex(marker) + 1 :] if marker in path else path


def escape_interpolation(value: Any) -> Any:
    """Compose substitutes ``$VAR`` in every string value; ``$$`` is a literal ``$``."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {key: escape_interpolation(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escape_interpolation(item) for item in value]
    return value


def rendered_paths(text: str) -> RenderedPaths:
    """The run, run directory and topology path a compose file was rendered with."""
    data = yaml.safe_load(text)
    block = data.get(EXTENSION) if isinstance(data, dict) else None
    if not isinstance(block, dict):
        raise ValueError(f"no {EXTENSION} block: not a file written by `testbed render`")

    def unescaped(key: str) -> str:
        return str(block[key]).replace("$$", "$")

    return RenderedPaths(
        run=unescaped("run"),
        run_dir=unescaped("run-dir"),
        topology=unescaped("topology"),
        dashboards=unescaped("dashboards") if "dashboards" in block else "",
    )
