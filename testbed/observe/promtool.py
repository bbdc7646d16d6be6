"""``promtool check config`` and ``check rules`` on generated files (tests, `metrics check`).

promtool comes with Debian's prometheus package (``apt-get install prometheus``) and is also in
the testbed's Prometheus image; ``find_promtool`` looks on PATH and at the Debian location.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed.errors import TestbedError

PROMTOOL_ENV_HINT = "install Debian's prometheus package (`apt-get install prometheus`)"
_CANDIDATES = ("/usr/bin/promtool", "/usr/local/bin/promtool")
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    output: str


def find_promtool() -> str | None:
    found = shutil.which("promtool")
    if found:
        return found
    for candidate in _CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return None


def _promtool() -> str:
    promtool = find_promtool()
    if promtool is None:
        raise TestbedError("promtool is not installed", PROMTOOL_ENV_HINT)
    return promtool


def _run(args: Sequence[str]) -> CheckResult:
    proc = subprocess.run(
        [_promtool(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return CheckResult(proc.returncode == 0, (proc.stdout + proc.stderr).strip())


def check_config(config: Path) -> CheckResult:
    """Checks the configuration and, through it, every rule file it names."""
    return _run(["check", "config", str(config)])


def check_rules(*rule_files: Path) -> CheckResult:
    return _run(["check", "rules", *(str(p) for p in rule_files)])
