"""Atomic writes of the files Prometheus reads (configuration, rules, file_sd targets).

Prometheus runs as an unprivileged user inside its container and reads them through a read-only
bind mount of the directory, so they are world-readable (0644 / 0755): none of them holds a
secret. Every write is temp file + fsync + rename in the same directory, so Prometheus (file_sd
watches with inotify) never reads half a file. The directory is mounted, never single files: a
rename replaces the inode, which a single-file bind mount would not follow.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

FILE_MODE = 0o644
DIR_MODE = 0o755


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename), mode 0644."""
    ensure_dir(path.parent)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
