"""Running a test script in a network namespace of its own (``unshare -rn``): TUN devices, routes
and forwarding set up by the script never touch the host's network."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run_in_namespace(script: str, cwd: Path) -> None:
    """Run ``script`` with this interpreter inside a fresh network namespace (loopback up) and
    require that it printed exactly "ok"; skip where namespaces or TUN are not available."""
    unshare = shutil.which("unshare")
    if unshare is None or not Path("/dev/net/tun").exists() or shutil.which("ip") is None:
        pytest.skip("needs unshare, ip and /dev/net/tun")
    # -r maps us to root in a user namespace where we are not root on the host.
    proc = subprocess.run(
        [unshare, "-rn", "sh", "-c", f'ip link set lo up && exec {sys.executable} -c "$0"', script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if (
        proc.returncode != 0
        and "unshare" in proc.stderr
        and "Operation not permitted" in proc.stderr
    ):
        pytest.skip(f"no network namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
