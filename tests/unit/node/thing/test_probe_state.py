"""``python3 -m testbed.node.probe state``: what the host reads with `testbed exec NODE -- ...`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.unit.node.node_harness import ROOT, NodeProcess, free_port, thing_config


def probe(*args: str) -> tuple[int, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "testbed.node.probe", "state", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    return proc.returncode, json.loads(proc.stdout)


def test_state_prints_the_nodes_state(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, thing_config()).start()
    try:
        node.wait_ready()
        code, state = probe("--config", str(node.config_path))
    finally:
        node.kill()
    assert code == 0
    assert state["node"] == "thermostat-01"
    assert state["state"]["lifecycle"] == "installed"


def test_state_against_nothing_fails() -> None:
    code, out = probe("--port", str(free_port()), "--timeout", "1")
    assert code == 1 and "error" in out
