"""Whole-file replacement on the host: temp file in the same directory, fsync, rename.

A reader (Prometheus watching file_sd, a node reading its mounted keys, the next ``testbed``
command) sees the old file or the new one, never half of one; the mode is set on the temp file
before any byte is written, so a secret is never readable by others even for a moment. The
caller makes the directory (with the mode it needs). Node-side code has its own writer
(testbed/node/statefile.py), since the node package stands alone.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: str | bytes, mode: int) -> None:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
