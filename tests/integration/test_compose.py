"""compose: a run rendered by `testbed render`, started by docker-compose, used by the testbed.

One module-scoped run ``comp-<hex>`` of topologies/default.yaml, rendered into a temp directory
and brought up with Debian's docker-compose 1.29 (v1). Then the rest of the testbed must not
notice that compose started it: `testbed status` lists every node with its addresses, the
Ansible inventory comes from the labels, real phases (install, commission) run against the
containers and are recorded in the run directory, Prometheus scrapes every node, every node
exports what the metric catalogue declares, `testbed dashboards push` annotates the phases in a
FAKE Grafana, the compose profile "grafana" starts the run's Grafana (a FAKE image), and `testbed
down` removes everything by labels.

docker-compose missing: skipped locally, a failure in CI (apt-get install docker-compose).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.compose import tool
from testbed.contracts.metric_catalogue import METRICS
from testbed.observe.api import PrometheusAPI
from testbed.plan import make_plan
from testbed.plan.model import Plan
from testbed.topology import load_topology
from tests.integration.conftest import (
    ROOT,
    RUN_PREFIX,
    assert_networks_gone,
    remove_run,
    run_cli,
)
from tests.integration.nodes import wait_for
from tests.unit.contracts.exports import exported, mismatches
from tests.unit.observe.fake_grafana import FakeGrafana

pytestmark = pytest.mark.integration

TOPOLOGY = ROOT / "topologies" / "default.yaml"


@dataclass
class ComposeRun:
    name: str
    file: Path
    plan: Plan
    run_dir: Path
    prometheus: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _require_compose() -> None:
    if tool.find_compose() is None:
        message = f"{tool.BINARY} is missing (apt-get install {tool.DEBIAN_PACKAGE})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must install it in .ci/run")
        pytest.skip(message)


def _node_image(cli_env: dict[str, str]) -> str:
    """The node image of this checkout by its content tag (``:latest`` may move meanwhile)."""
    from testbed.engines import docker as docker_engine
    from testbed.engines.images import ensure_node_image

    result = ensure_node_image(
        docker_engine.connect(),
        project_root=ROOT,
        cache_dir=Path(cli_env["TESTBED_HOME"]) / "cache",
    )
    return result.tag


@pytest.fixture(scope="module")
def compose_run(
    docker_client: Any, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeRun]:
    _require_compose()
    name = f"{RUN_PREFIX}comp-{uuid.uuid4().hex[:8]}"
    out = tmp_path_factory.mktemp("compose") / "compose.yaml"
    port = _free_port()
    image = _node_image(cli_env)
    args = ["render", "-t", str(TOPOLOGY), "--run", name, "-o", str(out), "--image", image]
    try:
        run_cli([*args, "--prometheus-port", str(port)], cli_env, timeout=1500)
        run_dir = Path(cli_env["TESTBED_HOME"]) / "runs" / name
        plan = make_plan(load_topology(TOPOLOGY), name, str(TOPOLOGY.resolve()), str(run_dir))
        tool.run_compose(out, name, ["up", "-d"], timeout=300)
        yield ComposeRun(name, out, plan, run_dir, f"http://127.0.0.1:{port}")
    finally:
        run_cli(["down", "--run", name], cli_env, check=False)
        remove_run(docker_client, name)


def _status(run: ComposeRun, cli_env: dict[str, str]) -> list[dict[str, Any]]:
    data = json.loads(run_cli(["status", "--run", run.name, "--json"], cli_env).stdout)
    nodes = data["nodes"] if isinstance(data, dict) else data
    assert isinstance(nodes, list)
    return nodes


def test_compose_run_is_listed_by_status(compose_run: ComposeRun, cli_env: dict[str, str]) -> None:
    expected = {n.name for n in compose_run.plan.nodes} | {"prometheus"}

    def all_running() -> list[dict[str, Any]] | None:
        nodes = _status(compose_run, cli_env)
        ok = {n["node"] for n in nodes} == expected and all(n["state"] == "running" for n in nodes)
        return nodes if ok else None

    nodes = wait_for(all_running, 120, "every compose-started node running")
    by_name = {n["node"]: n for n in nodes}
    for node in compose_run.plan.nodes:
        status = by_name[node.name]
        assert status["role"] == node.role
        assert status["run_dir"] == str(compose_run.run_dir)
        planned = {i.network: i.ipv6.split("/")[0] for i in node.config.interfaces}
        assert status["addresses"] == planned, node.name
    assert by_name["prometheus"]["role"] == "observer"


def test_inventory_is_derived_from_the_compose_labels(
    compose_run: ComposeRun, cli_env: dict[str, str]
) -> None:
    text = run_cli(["inventory", "--run", compose_run.name], cli_env).stdout
    inventory = yaml.safe_load(text)["all"]
    things = sorted(n.name for n in compose_run.plan.nodes if n.role == "thing")
    assert sorted(inventory["children"]["role_thing"]["hosts"]) == things
    assert set(inventory["hosts"]) == {n.name for n in compose_run.plan.nodes}
    for host, hostvars in inventory["hosts"].items():
        assert hostvars["ansible_host"] == compose_run.plan.node(host).resource
    assert inventory["vars"]["testbed_run_dir"] == str(compose_run.run_dir)


def test_phases_run_against_compose_containers(
    compose_run: ComposeRun, cli_env: dict[str, str]
) -> None:
    for phase in ("install", "commission"):
        run_cli(["phase", phase, "--run", compose_run.name], cli_env, timeout=900)
    things = {n.name for n in compose_run.plan.nodes if n.role == "thing"}

    def commissioned() -> bool:
        nodes = _status(compose_run, cli_env)
        states = {n["node"]: n.get("lifecycle") for n in nodes if n["node"] in things}
        return set(states) == things and set(states.values()) == {"operational"}

    wait_for(commissioned, 180, "every thing operational after the commission phase")
    records = [json.loads(line) for line in (compose_run.run_dir / "phases.jsonl").open()]
    assert [r["phase"] for r in records] == ["install", "commission"]
    assert set(records[1]["hosts"]) >= things


def _scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://[{address}]:9180/metrics", timeout=10) as response:
        return str(response.read().decode())


def test_every_node_exports_what_the_catalogue_declares(compose_run: ComposeRun) -> None:
    seen: set[str] = set()
    problems: list[str] = []
    for node in compose_run.plan.nodes:
        text = _scrape(node.config.address("mgmt"))
        problems += mismatches(text, node.name)
        seen |= set(exported(text))
    assert problems == []
    # Every declared metric of the roles this topology has shows up somewhere (no vendor cloud);
    # metrics of features the topology does not use (`always=False`: policies, ...) may not.
    present = {n.role for n in compose_run.plan.nodes} | {"internet_host:backend"}
    expected = {
        (f"{s.name}_info" if s.type == "info" else s.name)
        for s in METRICS.values()
        if set(s.roles) & present and s.always
    }
    assert sorted(expected - seen) == []


def test_prometheus_scrapes_every_node(compose_run: ComposeRun, cli_env: dict[str, str]) -> None:
    url = run_cli(["metrics", "url", "--run", compose_run.name], cli_env).stdout.strip()
    assert url == compose_run.prometheus
    api = PrometheusAPI(url)
    expected = {n.name for n in compose_run.plan.nodes} | {"prometheus"}

    def all_up() -> bool:
        up = {r["metric"]["node"]: r["value"][1] for r in api.query("up")}
        return set(up) == expected and set(up.values()) == {"1"}

    wait_for(all_up, 90, "Prometheus to scrape every node of the compose run")


def test_dashboards_push_annotates_the_recorded_phases(
    compose_run: ComposeRun, cli_env: dict[str, str]
) -> None:
    with FakeGrafana("compose-token") as fake:
        args = ["dashboards", "push", "--url", fake.url, "--token", "compose-token"]
        result = run_cli([*args, "--run", compose_run.name], cli_env)
        assert "2 added" in result.stdout
        tags = sorted(tuple(a["tags"]) for a in fake.state.annotations.values())
        assert [t[:3] for t in tags] == [
            ("phase", "phase:commission", f"run:{compose_run.name}"),
            ("phase", "phase:install", f"run:{compose_run.name}"),
        ]
        # The run's Prometheus URL (from its labels) became the datasource.
        (datasource,) = fake.state.datasources.values()
        assert datasource["url"] == compose_run.prometheus


def test_the_grafana_profile_starts_the_runs_grafana(
    compose_run: ComposeRun, cli_env: dict[str, str], docker_client: Any, fake_grafana_image: str
) -> None:
    """`--profile grafana` starts the run's Grafana as `testbed up` would: found by its labels,
    provisioned, with the admin password of the run directory, annotated with the phases. The
    image is a FAKE Grafana (see conftest.fake_grafana_image): only Grafana's side is faked."""
    from testbed.engines.docker import DockerEngine
    from testbed.observe.publish import annotate_own_grafana

    # The same render, with the fake as $TESTBED_GRAFANA_IMAGE; the run directory stays.
    env = dict(cli_env, TESTBED_GRAFANA_IMAGE=fake_grafana_image)
    grafana_port = _free_port()
    ports = ["--prometheus-port", compose_run.prometheus.rsplit(":", 1)[1]]
    ports += ["--grafana-port", str(grafana_port)]
    out = ["-o", str(compose_run.file), "--image", _node_image(cli_env)]
    render = ["render", "-t", str(TOPOLOGY), "--run", compose_run.name, *out, *ports]
    run_cli([*render, "--no-mint", "--no-build"], env)
    tool.run_compose(compose_run.file, compose_run.name, ["--profile", "grafana", "up", "-d"])
    url = f"http://127.0.0.1:{grafana_port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=2) as answer:
                return bool(json.loads(answer.read()).get("database") == "ok")
        except OSError:
            return False

    wait_for(healthy, 90, "the compose run's Grafana to answer")
    (grafana,) = [n for n in _status(compose_run, cli_env) if n["node"] == "grafana"]
    assert grafana["role"] == "observer" and grafana["attributes"]["url"] == url
    container = docker_client.containers.get(f"tb-{compose_run.name}-grafana")
    assert set(container.attrs["NetworkSettings"]["Networks"]) == {
        compose_run.plan.network("mgmt").resource
    }
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert mounts["/run/secrets/testbed-grafana"]["RW"] is False
    with urllib.request.urlopen(f"{url}/api/datasources/uid/testbed-prometheus") as answer:
        assert json.loads(answer.read())["url"] == "http://prometheus:9090"
    # The testbed finds it by its labels and writes the recorded phases with the password file.
    line = annotate_own_grafana(DockerEngine(docker_client), compose_run.name, compose_run.run_dir)
    assert line is not None and "2 phase annotations" in line, line


def test_down_removes_the_compose_run(
    compose_run: ComposeRun, cli_env: dict[str, str], docker_client: Any
) -> None:
    run_cli(["down", "--run", compose_run.name], cli_env)
    flt = {"label": [f"testbed.run={compose_run.name}"]}
    assert docker_client.containers.list(all=True, filters=flt) == []
    assert_networks_gone(docker_client, compose_run.name)
    assert docker_client.volumes.list(filters=flt) == []
    assert not compose_run.run_dir.exists()
    # docker-compose agrees that nothing is left.
    done = tool.run_compose(compose_run.file, compose_run.name, ["ps", "-q"], timeout=60)
    assert done.stdout.strip() == ""
