"""RUN/phases.jsonl: one JSON object per line for every phase run, appended as it ends.

    {"phase": "maintain", "run": "office", "start": 1732634000.12, "end": 1732634011.9,
     "duration_s": 11.78, "status": "failed", "rc": 2, "limit": "vendor_acme", "forks": 10,
     "check": false, "extravars": {"firmware_version": "2.0.0"},
     "hosts": {"thermostat-01": {"outcome": "changed", "ok": 3, "changed": 1, "failed": 0,
                                 "unreachable": 0, "skipped": 0, "reason": "",
                                 "skipped_steps": []}, ...}}

Times are Unix seconds (wall clock), so dashboards can mark phases on their time axis. A line
is written with a single ``write`` on a file opened for appending, so concurrent phases of one
run do not interleave inside a line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

PHASES_FILE = "phases.jsonl"


def phases_path(run_dir: Path) -> Path:
    return Path(run_dir) / PHASES_FILE


def record_phase(run_dir: Path, record: Mapping[str, Any]) -> Path:
    """Append one phase run (a JSON object) to RUN/phases.jsonl; returns the file's path."""
    for key in ("phase", "start", "end", "hosts"):
        if key not in record:
            raise ValueError(f"a phase record needs {key!r}")
    path = phases_path(run_dir)
    line = (json.dumps(dict(record), sort_keys=True, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return path


def read_phases(run_dir: Path) -> Iterator[dict[str, Any]]:
    """The recorded phase runs, oldest first; a torn last line (a crash mid-write) is skipped."""
    path = phases_path(run_dir)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record
