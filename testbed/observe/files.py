"""Atomic writes of the files Prometheus reads (configuration, rules, file_sd targets).

Prometheus runs as an unprivileged user inside its container and reads them through a read-only
bind mount of the directory, so they are world-readable (0644 / 0755): none of them holds a
secret. Every write is temp file + fsync + rename in the same directory, so Prometheus (file_sd
watches with inotify) never reads half a file. The directory is mounted, never single files: a
rename replaces the inode, which a single-file bind mount would not follow.
"""

from __future__ import annotations

import os
from pathlib import Path

from testbed.atomic import write_atomically

FILE_MODE = 0o644
DIR_MODE = 0o755


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename), mode 0644."""
    ensure_dir(path.parent)
    write_atomically(path, data, FILE_MODE)
