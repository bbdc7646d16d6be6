"""Every script in bench/ runs once at its smallest size, so that none breaks unnoticed.

A smoke run, no timing asserted: the script must finish with exit code 0 (each exits non-zero
when the work it measures failed), print no NaN, and leave this host's routes and firewall as
they were (tests/host_network.py): bench/bootstrap.py runs the real node process, which may
only change the network of a namespace of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import host_network

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"

# script -> (its smallest arguments, what it needs: "docker", "root")
SMOKE: dict[str, tuple[list[str], set[str]]] = {
    "bootstrap.py": (["--sizes", "2", "--concurrency", "2"], set()),
    "edhoc.py": (["--sizes", "2"], set()),
    "pki.py": (["--seconds", "0.05"], set()),
    "radio.py": (["--seconds", "0.05"], set()),
    "medium.py": (["--seconds", "0.3", "--nodes", "2"], set()),
    "shaper.py": (["--seconds", "0.3"], {"root"}),
    "bringup.py": (["--repeat", "1", "--cases", "default.yaml"], {"docker"}),
    "phases.py": (["--things", "6", "--phases", "install", "commission"], {"docker"}),
    "group.py": (["--members", "1,2", "--loss", "0,10", "--rounds", "5"], set()),
    "medium_flood.py": (["--frames", "2000"], set()),
    "hub_floor.py": (["--seconds", "0.3", "--nodes", "2", "--repeat", "1"], set()),
    "profiles.py": (
        ["--things", "1", "--loss", "0", "--mtu", "1232", "--concurrency", "1"],
        set(),
    ),
    "proxy.py": (["--requests", "2"], set()),
    "refusals.py": (["--count", "50"], set()),
    "slip.py": (["--seconds", "0.05"], set()),
    "scale.py": (["--things", "2", "--idle", "1", "--settle", "1"], {"docker"}),
}


def test_every_bench_script_has_a_smoke_run() -> None:
    assert {p.name for p in BENCH.glob("*.py")} == set(SMOKE)


@pytest.mark.timeout(900)  # phases.py brings a building up and runs two phases
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_bench_script_runs_at_its_smallest_size(
    script: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    args, needs = SMOKE[script]
    if "root" in needs and os.geteuid() != 0:
        pytest.skip(f"{script} needs root (network namespaces)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TESTBED_HOME": str(tmp_path / "home")}
    if "docker" in needs:
        request.getfixturevalue("docker_client")  # skips (or fails in CI) without a daemon
        env["TESTBED_HOME"] = str(request.getfixturevalue("testbed_home"))  # shared image cache
    before = host_network.snapshot()
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=880,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "nan" not in done.stdout.lower().split(), done.stdout
    assert before.differences(host_network.snapshot()) == [], output[-2000:]
