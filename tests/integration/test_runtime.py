"""`testbed up / status / down` against a real Docker daemon."""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from pathlib import Path

import pytest

from testbed import bringup
from testbed.engines.docker import DockerEngine
from testbed.errors import NodeFailed
from testbed.plan import Plan, make_plan
from testbed.topology import load_topology
from tests.integration.conftest import ROOT, assert_networks_gone, remove_run, run_cli

pytestmark = pytest.mark.integration


def _metrics(address: str, port: int = 9180) -> str:
    with urllib.request.urlopen(f"http://[{address}]:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def test_default_building_up_status_down(docker_client, node_image, cli_env, run_name):  # type: ignore[no-untyped-def]
    topology = ROOT / "topologies" / "default.yaml"
    run_dir = Path(cli_env["TESTBED_HOME"]) / "runs" / run_name
    plan = make_plan(load_topology(topology), run_name, str(topology), str(run_dir))
    try:
        up = run_cli(["up", "-t", str(topology), "--run", run_name, "--no-wait"], cli_env)
        assert f"run {run_name!r} is up" in up.stdout

        # Every planned node runs, with its labels and its planned addresses.
        everything = docker_client.containers.list(filters={"label": f"testbed.run={run_name}"})
        # Observers (Prometheus) belong to the run but are not nodes of the building.
        containers = {
            c.labels["testbed.node"]: c
            for c in everything
            if c.labels.get("testbed.role") != "observer"
        }
        assert sorted(containers) == sorted(n.name for n in plan.nodes)
        for node in plan.nodes:
            c = containers[node.name]
            assert c.status == "running"
            for key, value in node.labels.items():
                assert c.labels.get(key) == value, (node.name, key)
            attached = c.attrs["NetworkSettings"]["Networks"]
            for iface in node.config.interfaces:
                resource = plan.network(iface.network).resource
                assert attached[resource]["GlobalIPv6Address"] == iface.ipv6.split("/")[0]

        # Every node answers on its metrics endpoint over mgmt.
        for node in plan.nodes:
            text = _metrics(node.config.address("mgmt"))
            assert "testbed_node_up 1.0" in text, node.name
            assert f'node="{node.name}"' in text

        # IPv6 reachability on data networks: thing -> border router (over the radio medium),
        # router -> backend (internet), and across the router: thing -> backend, backend and
        # trust center -> thing.
        br, thing = plan.node("br1"), plan.node("thermostat-01")
        backend = plan.node("backend").config

        def reach(src: str, dst: str) -> bool:
            proc = run_cli(
                [
                    "exec",
                    src,
                    "--run",
                    run_name,
                    "--",
                    "python3",
                    "-m",
                    "testbed.node.probe",
                    "reach",
                    dst,
                    "--count",
                    "2",
                    "--timeout",
                    "1",
                ],
                cli_env,
                check=False,
            )
            return proc.returncode == 0

        for src, dst in [
            ("thermostat-01", br.data_address("pan-floor1")),
            ("br1", backend.address("internet")),
            ("thermostat-01", backend.address("internet")),
            ("backend", thing.data_address("pan-floor1")),
            ("tc-facility", thing.data_address("pan-floor1")),
        ]:
            assert reach(src, dst), f"{src} cannot reach {dst}"
        # No shortcut around the border router: the backend cannot reach the thing's address
        # on the radio carrier network, nor a trust center address via mgmt and the host.
        assert not reach("backend", thing.config.address("pan-floor1"))
        assert not reach("thermostat-01", plan.node("tc-facility").config.address("mgmt"))

        # status --json agrees with Docker.
        status = json.loads(run_cli(["status", "--run", run_name, "--json"], cli_env).stdout)
        status = [s for s in status if s["role"] != "observer"]
        assert sorted(s["node"] for s in status) == sorted(containers)
        for entry in status:
            node = plan.node(entry["node"])
            assert entry["state"] == "running"
            assert entry["role"] == node.role
            for iface in node.config.interfaces:
                assert entry["addresses"][iface.network] == iface.ipv6.split("/")[0]

        # A second `up` of the same run: clear message, exit 6, no duplicates.
        again = run_cli(
            ["up", "-t", str(topology), "--run", run_name, "--no-wait"], cli_env, check=False
        )
        assert again.returncode == 6
        assert "already up" in again.stderr and "Traceback" not in again.stderr
        after = docker_client.containers.list(
            all=True, filters={"label": f"testbed.run={run_name}"}
        )
        assert len(after) == len(everything)

        assert (run_dir / "nodes" / "br1" / "node.json").stat().st_mode & 0o777 == 0o600

        down = run_cli(["down", "--run", run_name], cli_env)
        assert "removed" in down.stdout
        flt = {"label": f"testbed.run={run_name}"}
        assert docker_client.containers.list(all=True, filters=flt) == []
        assert_networks_gone(docker_client, run_name)
        assert docker_client.volumes.list(filters=flt) == []
        assert not run_dir.exists()
    finally:
        remove_run(docker_client, run_name)


def test_no_daemon_is_a_clear_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = dict(cli_env, DOCKER_HOST=f"unix://{tmp_path}/no-such-docker.sock")
    proc = run_cli(
        ["up", "-t", str(ROOT / "topologies" / "minimal.yaml"), "--run", "nodaemon"],
        env,
        check=False,
    )
    assert proc.returncode == 5
    assert "cannot connect to the Docker daemon" in proc.stderr
    assert "hint:" in proc.stderr and "Traceback" not in proc.stderr


def test_status_and_down_without_runs(docker_client, cli_env) -> None:  # type: ignore[no-untyped-def]
    proc = run_cli(["down", "--run", "never-started"], cli_env, check=False)
    assert proc.returncode == 8 and "not up" in proc.stderr
    proc = run_cli(["status", "--run", "never-started"], cli_env, check=False)
    assert proc.returncode == 8


def _minimal_plan_with_a_broken(node: str, run: str) -> Plan:
    """minimal.yaml with one node given a role the node process does not know: it exits at
    start, as a node with a real defect would."""
    plan = make_plan(load_topology(ROOT / "topologies" / "minimal.yaml"), run)
    broken = plan.node(node)
    bad = dataclasses.replace(broken, config=dataclasses.replace(broken.config, role="toaster"))
    return dataclasses.replace(plan, nodes=tuple(bad if n.name == node else n for n in plan.nodes))


def test_failed_node_is_named_and_everything_is_removed(  # type: ignore[no-untyped-def]
    docker_client, node_image, run_name, tmp_path, monkeypatch
):
    """A node that dies at start: the error names it with its log tail, and `up` cleans up."""
    monkeypatch.setenv("TESTBED_HOME", str(tmp_path))
    plan = _minimal_plan_with_a_broken("thermostat-01", run_name)
    try:
        with pytest.raises(NodeFailed) as caught:
            bringup.up(DockerEngine(), plan, "", node_image, lambda *_: None)
        assert caught.value.node == "thermostat-01"
        assert "toaster" in caught.value.log_tail
        flt = {"label": f"testbed.run={run_name}"}
        assert docker_client.containers.list(all=True, filters=flt) == []
        assert_networks_gone(docker_client, run_name)
        assert not (tmp_path / "runs" / run_name).exists()
    finally:
        remove_run(docker_client, run_name)


def test_keep_on_error_keeps_the_run(  # type: ignore[no-untyped-def]
    docker_client, node_image, run_name, tmp_path, monkeypatch
):
    monkeypatch.setenv("TESTBED_HOME", str(tmp_path))
    plan = _minimal_plan_with_a_broken("backend", run_name)
    try:
        with pytest.raises(NodeFailed):
            bringup.up(DockerEngine(), plan, "", node_image, lambda *_: None, keep_on_error=True)
        flt = {"label": f"testbed.run={run_name}"}
        assert docker_client.containers.list(all=True, filters=flt)
        report = bringup.down(DockerEngine(), run_name)
        assert report.containers
        # Every network went (or Docker kept one it had lost count of, which is reported).
        removed = sorted(report.networks + report.stale_networks)
        assert removed == sorted(n.resource for n in plan.networks)
        assert docker_client.containers.list(all=True, filters=flt) == []
    finally:
        remove_run(docker_client, run_name)


def test_node_stops_cleanly_on_sigterm(docker_client, node_image, cli_env, run_name):  # type: ignore[no-untyped-def]
    topology = ROOT / "topologies" / "minimal.yaml"
    try:
        run_cli(["up", "-t", str(topology), "--run", run_name, "--no-wait"], cli_env)
        c = docker_client.containers.list(
            filters={"label": [f"testbed.run={run_name}", "testbed.node=thermostat-01"]}
        )[0]
        c.stop(timeout=10)
        c.reload()
        assert c.attrs["State"]["ExitCode"] == 0, c.logs(tail=20)
        lines = [json.loads(x) for x in c.logs().decode().splitlines() if x.startswith("{")]
        assert lines and all({"ts", "level", "node"} <= set(x) for x in lines)
        # logs through the CLI
        proc = run_cli(["logs", "thermostat-01", "--run", run_name], cli_env)
        assert "thermostat-01" in proc.stdout
    finally:
        run_cli(["down", "--run", run_name], cli_env, check=False)
        remove_run(docker_client, run_name)
