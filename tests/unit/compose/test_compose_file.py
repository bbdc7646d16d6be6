"""The committed compose.yaml: in sync with the planner, and accepted by docker-compose v1.

compose.yaml is ``topologies/default.yaml`` rendered for run ``office`` (``testbed render
--no-mint --no-build`` at the top of the checkout). Its run directory and topology paths are
per machine; the file records the ones it was rendered with (``x-testbed``), and the test
renders again with those, so the comparison is exact.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from testbed.compose import tool
from testbed.compose.document import ComposeOptions, render, rendered_paths
from testbed.plan import make_plan
from testbed.topology import load_topology
from tests.unit.compose.conftest import DEFAULT_TOPOLOGY, ROOT, plan_for

COMPOSE_FILE = ROOT / "compose.yaml"
REGENERATE = "regenerate it: .venv/bin/testbed render --no-mint --no-build (at the top level)"


def require_compose() -> str:
    binary = tool.find_compose()
    if binary is None:
        message = (
            f"{tool.BINARY} is missing: CI must install Debian's package "
            f"(apt-get install {tool.DEBIAN_PACKAGE}) in .ci/run"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def test_committed_compose_file_is_the_default_topology_for_run_office() -> None:
    paths = rendered_paths(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert paths.run == "office"
    assert paths.topology.endswith("/topologies/default.yaml")
    assert paths.run_dir.endswith("/.testbed/runs/office")
    assert Path(paths.topology).parent.parent == Path(paths.run_dir).parents[2]


def test_committed_compose_file_is_in_sync_with_the_planner() -> None:
    committed = COMPOSE_FILE.read_text(encoding="utf-8")
    paths = rendered_paths(committed)
    # The paths are inputs of the plan (labels name them), the topology's content is this one.
    plan = make_plan(load_topology(DEFAULT_TOPOLOGY), paths.run, paths.topology, paths.run_dir)
    options = ComposeOptions(dashboards_dir=paths.dashboards)
    assert render(plan, options) == committed, f"compose.yaml is out of date: {REGENERATE}"


def _config(path: Path) -> dict[str, object]:
    require_compose()
    done = tool.run_compose(path, "comp-unit", ["config"], timeout=60)
    data = yaml.safe_load(done.stdout)
    assert isinstance(data, dict)
    return data


def test_docker_compose_config_accepts_the_committed_file() -> None:
    data = _config(COMPOSE_FILE)
    assert "name" not in data
    assert set(data["services"]) >= {"br1", "tc-facility", "prometheus"}  # type: ignore[operator]


def test_docker_compose_config_keeps_ipv6_labels_and_mounts(tmp_path: Path) -> None:
    plan = plan_for(DEFAULT_TOPOLOGY, "comp-unit", tmp_path / "runs" / "comp-unit")
    path = tmp_path / "compose.yaml"
    path.write_text(render(plan), encoding="utf-8")
    data = _config(path)
    networks = data["networks"]
    services = data["services"]
    assert isinstance(networks, dict) and isinstance(services, dict)
    for net in plan.networks:
        seen = networks[net.name]
        assert seen["name"] == net.resource
        assert seen["enable_ipv6"] is True
        assert bool(seen.get("internal", False)) is net.internal
        assert seen["ipam"]["config"] == [{"subnet": net.subnet6, "gateway": net.gateway6}]
    for node in plan.nodes:
        seen = services[node.name]
        assert seen["labels"] == node.labels
        assert seen["cap_add"] == ["NET_ADMIN"]
        assert {k: str(v) for k, v in seen["sysctls"].items()} == node.sysctls
        binds = [v for v in seen["volumes"] if v["type"] == "bind"]
        assert binds[0]["read_only"] is True
        addresses = {n: e["ipv6_address"] for n, e in seen["networks"].items()}
        assert addresses == {i.network: i.ipv6.split("/")[0] for i in node.config.interfaces}


def test_compose_env_hides_the_projects_python() -> None:
    env = tool.compose_env(
        {
            "PATH": "/work/.venv/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": "/work/.venv",
            "PYTHONPATH": "/work",
            "HOME": "/root",
        }
    )
    assert env["PATH"] == "/usr/bin:/bin"
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
    assert env["PYTHONNOUSERSITE"] == "1" and env["HOME"] == "/root"


def test_missing_binary_says_which_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tool, "find_compose", lambda: None)
    with pytest.raises(tool.ComposeError) as err:
        tool.require_compose()
    assert "apt-get install docker-compose" in err.value.hint
