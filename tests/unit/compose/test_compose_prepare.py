"""testbed.compose.prepare and `testbed render`: the run directory compose mounts, minted."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from testbed.cli.app import app
from testbed.compose.document import compose_document, run_dir_of
from testbed.compose.prepare import prepare_run_dir
from testbed.errors import AlreadyRunning
from testbed.plan.model import Plan
from tests.unit.compose.conftest import DEFAULT_TOPOLOGY


class UpEngine:
    """A backend that reports the run as up (the only call prepare makes)."""

    def __init__(self, run: str) -> None:
        self.run = run

    def runs(self) -> dict[str, int]:
        return {self.run: 3}

    def empty_networks(self, run: str) -> list[str]:
        return []

    def status(self, run: str | None = None) -> list[object]:
        return []  # what the run's nodes are does not matter here


def test_every_bind_source_exists_after_prepare(default_plan: Plan) -> None:
    run_dir = prepare_run_dir(default_plan, DEFAULT_TOPOLOGY.read_text())
    assert str(run_dir) == run_dir_of(default_plan)
    doc = compose_document(default_plan)
    for service in doc["services"].values():
        for mount in service["volumes"]:
            if mount["type"] == "bind":
                assert Path(mount["source"]).is_dir(), mount["source"]
    for node in default_plan.nodes:
        node_dir = run_dir / "nodes" / node.name
        assert stat.S_IMODE(node_dir.stat().st_mode) == 0o700
        assert (node_dir / "node.json").is_file()
    # Minted: every thing has its credentials, the trust center its identity.
    thing = next(n for n in default_plan.nodes if n.role == "thing")
    assert len(list((run_dir / "nodes" / thing.name).rglob("*"))) > 2
    assert (run_dir / "observe" / "prometheus.yml").is_file()
    assert (run_dir / "observe" / "targets" / "nodes.json").is_file()
    # The compose file's Grafana mounts its admin password from here: a private file.
    password = run_dir / "grafana" / "admin-password"
    assert stat.S_IMODE(password.stat().st_mode) == 0o600
    assert stat.S_IMODE(password.parent.stat().st_mode) == 0o700
    assert len(password.read_text().strip()) >= 24


def test_prepare_starts_clean(default_plan: Plan) -> None:
    stale = Path(run_dir_of(default_plan)) / "stale-file"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by a crashed run")
    prepare_run_dir(default_plan, DEFAULT_TOPOLOGY.read_text())
    assert not stale.exists()


def test_prepare_refuses_a_run_that_is_up(default_plan: Plan) -> None:
    marker = Path(run_dir_of(default_plan)) / "keep"
    marker.parent.mkdir(parents=True)
    marker.write_text("credentials of the running nodes")
    with pytest.raises(AlreadyRunning):
        prepare_run_dir(default_plan, "", UpEngine(default_plan.run))  # type: ignore[arg-type]
    assert marker.exists()


def test_cli_render_mints_and_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("testbed.cli.compose._engine_or_none", lambda: None)
    out = tmp_path / "out" / "compose.yaml"
    args = ["render", "-t", str(DEFAULT_TOPOLOGY), "--run", "comp-cli", "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--no-build", "--prometheus-port", "21000"])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(out.read_text())
    run_dir = tmp_path / "home" / "runs" / "comp-cli"
    assert doc["x-testbed"]["run-dir"] == str(run_dir)
    assert (run_dir / "nodes" / "tc-facility").is_dir()
    assert doc["services"]["prometheus"]["ports"] == ["127.0.0.1:21000:9090"]
    assert "docker-compose -p comp-cli" in result.output


def test_cli_render_no_mint_only_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTBED_HOME", str(tmp_path / "home"))
    out = tmp_path / "compose.yaml"
    args = ["render", "--run", "comp-cli", "-o", str(out), "--no-mint", "--no-build"]
    args += ["-t", str(DEFAULT_TOPOLOGY), "--image", "testbed/node:abc", "--no-prometheus"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(out.read_text())
    assert "prometheus" not in doc["services"]
    assert {s["image"] for s in doc["services"].values()} == {"testbed/node:abc"}
    assert not (tmp_path / "home" / "runs" / "comp-cli").exists()
