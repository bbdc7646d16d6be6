"""Debian's docker-compose 1.29 (v1), run so that the project's environment cannot break it.

docker-compose v1 is a Python program of the system interpreter (``#!/usr/bin/python3``) built
for the ``docker`` SDK 5.x of Debian. It breaks when the 7.x SDK is importable, e.g. through
``PYTHONPATH`` or a virtual environment's variables inherited from the caller. ``compose_env``
removes those; the project lives in its own virtual environment, which the system interpreter
does not see.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from testbed.errors import ComposeError as ComposeError  # re-exported

BINARY = "docker-compose"
DEBIAN_PACKAGE = "docker-compose"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DROPPED = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")


def compose_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without what points Python at another set of packages."""
    env = dict(os.environ if base is None else base)
    venv = env.get("VIRTUAL_ENV", "")
    for name in _DROPPED:
        env.pop(name, None)
    paths = [p for p in env.get("PATH", SYSTEM_PATH).split(os.pathsep) if p]
    if venv:
        paths = [p for p in paths if not p.startswith(venv)]
    env["PATH"] = os.pathsep.join(paths or [SYSTEM_PATH])
    env["PYTHONNOUSERSITE"] = "1"
    return env


def find_compose() -> str | None:
    """The docker-compose binary: on PATH (outside virtual environments), else Debian's."""
    found = shutil.which(BINARY, path=compose_env()["PATH"])
    if found is None and Path("/usr/bin", BINARY).is_file():
        found = str(Path("/usr/bin", BINARY))
    return found


def require_compose() -> str:
    binary = find_compose()
    if binary is None:
        raise ComposeError(
            f"{BINARY} is not installed",
            f"as root: apt-get install {DEBIAN_PACKAGE} (Debian's docker-compose 1.29)",
        )
    return binary


def run_compose(
    file: Path,
    project: str,
    args: Sequence[str],
    *,
    timeout: float = 600.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``docker-compose -p PROJECT -f FILE ARGS...``; ComposeError with its output on failure."""
    cmd = [require_compose(), "-p", project, "-f", str(file), *args]
    try:
        done = subprocess.run(
            cmd,
            env=compose_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ComposeError(
            f"{' '.join(cmd)} did not finish within {timeout:.0f} s", "see `docker ps -a`"
        ) from exc
    if check and done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-30:])
        raise ComposeError(
            f"{' '.join(cmd[1:])} failed (exit code {done.returncode}):\n{tail}",
            "the lines above are what docker-compose said",
        )
    return done
