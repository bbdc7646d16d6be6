"""The run directory on the host (``.testbed/RUN/``): plan, topology copy, per-node files.

Each node gets only its own subdirectory, mounted read-only at /etc/testbed. Directories are
0700 and files 0600 because keys live there; writes are atomic (temp + rename).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from testbed.atomic import write_atomically
from testbed.plan.model import Plan

HOME_ENV = "TESTBED_HOME"


def testbed_home() -> Path:
    """Where run directories and caches live: $TESTBED_HOME or ./.testbed."""
    return Path(os.environ.get(HOME_ENV) or Path.cwd() / ".testbed").resolve()


def run_dir_for(run: str) -> Path:
    return testbed_home() / "runs" / run


def cache_dir() -> Path:
    return testbed_home() / "cache"


def private_dir(path: Path) -> Path:
    """Create a directory (and missing parents) with mode 0700, whatever the umask."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a file with mode 0600 atomically; its directory is created 0700."""
    private_dir(path.parent)
    write_atomically(path, data, 0o600)


def write_run_dir(plan: Plan, run_dir: Path, topology_text: str) -> None:
    private_dir(run_dir)
    os.chmod(run_dir, 0o700)
    write_private(run_dir / "topology.yaml", topology_text.encode())
    write_private(run_dir / "plan.json", json.dumps(plan.to_dict(), indent=2).encode())
    (run_dir / "moves.json").unlink(missing_ok=True)  # a run starts where the plan puts things
    for node in plan.nodes:
        node_dir = private_dir(run_dir / "nodes" / node.name)
        write_private(node_dir / "node.json", node.config.to_json().encode())
        if node.packed_in:  # where its folder is mounted in its thing host's config folder
            private_dir(run_dir / "nodes" / node.packed_in / "things" / node.name)


def remove_run_dir(run_dir: Path) -> bool:
    if run_dir.is_dir():
        shutil.rmtree(run_dir)
        return True
    return False
