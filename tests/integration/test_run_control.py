"""A run that exists but does not run, and a run's compose file rendered while it is up
(topologies/minimal.yaml, one building for the module).

- `testbed render -o compose.yaml` of a run that is up writes the compose file of that very run
  and mints nothing: every file of the run directory stays byte for byte (it used to refuse).
- After `testbed stop` (as after a Docker daemon restart) every node has exited; `status` says
  the run is stopped, `up` refuses with exit code 14 and points at `testbed start` (it used to
  say "already up"), and `start` brings the building back: the thing is operational from its
  volume's state, and the backend reads it end to end again.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.engines.docker import DockerEngine
from testbed.errors import RunStopped
from tests.integration.conftest import ROOT, remove_run, run_cli
from tests.integration.nodes import action, state, wait_for

pytestmark = pytest.mark.integration
RUN = f"ctl-{uuid.uuid4().hex[:6]}"
TOPOLOGY = ROOT / "topologies" / "minimal.yaml"
THING = "thermostat-01"


@pytest.fixture(scope="module")
def building(docker_client, node_image, cli_env) -> Iterator[DockerEngine]:  # type: ignore[no-untyped-def]
    remove_run(docker_client, RUN)
    up = run_cli(["up", "-t", str(TOPOLOGY), "--run", RUN], cli_env)
    assert "commissioned: 1 of 1 things" in up.stdout, up.stdout
    try:
        yield DockerEngine(docker_client)
    finally:
        run_cli(["down", "--run", RUN], cli_env, check=False)
        remove_run(docker_client, RUN)


def read(backend: DockerEngine) -> dict[str, Any]:
    answer: dict[str, Any] = action(
        backend, RUN, "backend", "read", thing=THING, resource="temperature"
    )
    return answer


def _files(run_dir: Path) -> dict[str, tuple[str, int]]:
    """Every file of a directory: relative path -> (sha256, mtime in ns)."""
    return {
        str(p.relative_to(run_dir)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def test_render_of_a_running_run_writes_its_compose_file_and_mints_nothing(
    building: DockerEngine, cli_env: dict[str, str], tmp_path: Path
) -> None:
    (node,) = [n for n in building.status(RUN) if n.node == THING]
    run_dir = Path(node.run_dir)
    before = _files(run_dir)
    assert any("nodes/" + THING in name for name in before)  # its credentials are there
    out = tmp_path / "compose.yaml"
    args = ["render", "-t", str(TOPOLOGY), "--run", RUN, "-o", str(out), "--no-build"]
    result = run_cli(args, cli_env)
    assert "nothing minted" in result.stdout, result.stdout
    doc = yaml.safe_load(out.read_text())
    assert doc["x-testbed"]["run-dir"] == str(run_dir)
    assert {f"tb-{RUN}-{n.node}" for n in building.status(RUN) if n.role == "thing"} <= {
        s.get("container_name") for s in doc["services"].values()
    }
    assert _files(run_dir) == before


def test_a_stopped_run_is_told_apart_and_starts_again(
    building: DockerEngine, cli_env: dict[str, str]
) -> None:
    wait_for(lambda: read(building)["outcome"] == "ok", 60, "a first read of the thing")
    run_cli(["stop", "--run", RUN], cli_env)
    nodes = [n for n in building.status(RUN) if n.role != "observer"]
    assert nodes and all(n.state == "exited" for n in nodes), [(n.node, n.state) for n in nodes]

    status = run_cli(["status", "--run", RUN], cli_env)
    assert f"run {RUN} is stopped" in status.stdout and "testbed start" in status.stdout

    again = run_cli(["up", "-t", str(TOPOLOGY), "--run", RUN], cli_env, check=False)
    assert again.returncode == RunStopped.exit_code, again.stdout + again.stderr
    assert "is stopped" in again.stderr and f"testbed start --run {RUN}" in again.stderr

    started = run_cli(["start", "--run", RUN], cli_env)
    assert "commissioned: 1 of 1 things" in started.stdout, started.stdout
    assert all(n.state == "running" for n in building.status(RUN))
    assert state(building, RUN, THING)["lifecycle"] == "operational"
    wait_for(lambda: read(building)["outcome"] == "ok", 60, "a read after the start")
    assert "is stopped" not in run_cli(["status", "--run", RUN], cli_env).stdout
