"""The Docker engine's readiness wait, against a scripted daemon: a node that exits between the
daemon's "running" answer and the probe is reported as a failed node (with its exit code), not
as a name conflict (CI saw the 409 "container is not running" that this race produces)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests

from testbed.engines.docker_ready import wait_ready
from testbed.errors import EngineError, NodeFailed
from tests.unit.compose.conftest import ROOT, plan_for
from tests.unit.compose.fake_docker import _API, RecordingClient


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError(f"{status}", response=response, explanation=explanation)


class _DiesBeforeTheProbe(_API):
    """Running at the first inspection, gone by the time the probe is created."""

    def __init__(self) -> None:
        super().__init__()
        self.inspections = 0

    def inspect_container(self, container: str) -> dict[str, Any]:
        self.inspections += 1
        running = self.inspections == 1
        return {"State": {"Running": running, "ExitCode": 0 if running else 3}}

    def exec_create(self, container: str, cmd: list[str]) -> dict[str, str]:
        raise _api_error(409, f"Container {container} is not running")

    def logs(self, container: str, tail: int) -> bytes:
        return b"ValueError: unknown role 'toaster'\n"


def test_a_node_exiting_before_its_probe_is_a_failed_node() -> None:
    client = RecordingClient()
    client.api = _DiesBeforeTheProbe()
    node = plan_for(ROOT / "topologies" / "minimal.yaml", "unit", Path("/tmp/unit")).nodes[0]
    with pytest.raises(NodeFailed) as caught:
        wait_ready(client, node.name, "c1")  # type: ignore[arg-type]
    assert caught.value.node == node.name
    assert "exit code 3" in str(caught.value)
    assert "toaster" in caught.value.log_tail
    assert client.api.inspections == 2


class _Refuses(_API):
    def exec_create(self, container: str, cmd: list[str]) -> dict[str, str]:
        raise _api_error(500, "disk full")


def test_other_daemon_errors_still_surface() -> None:
    client = RecordingClient()
    client.api = _Refuses()
    with pytest.raises(EngineError, match="disk full"):
        wait_ready(
            client,  # type: ignore[arg-type]
            plan_for(ROOT / "topologies" / "minimal.yaml", "unit", Path("/tmp/unit")).nodes[0].name,
            "c1",
        )


def test_a_command_in_a_stopped_node_says_it_stopped_not_name_conflict() -> None:
    from testbed.engines.docker_errors import _translated
    from testbed.errors import NotRunning

    with pytest.raises(NotRunning) as caught, _translated("running a command in thermostat-01"):
        raise _api_error(409, "Container 0123abcd is not running")
    assert "thermostat-01" in str(caught.value) and "stopped" in str(caught.value)
    with pytest.raises(EngineError, match="name conflict"), _translated("creating node x"):
        raise _api_error(409, 'Conflict. The container name "/tb-x" is already in use')
