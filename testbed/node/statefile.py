"""Durable JSON files on the node's state volume.

A thing's lifecycle state must survive a container restart *and* a crash in the middle of a
write: a torn state.json could turn a decommissioned thing back into an installable one. So a
file is replaced only as a whole (temp file + fsync + rename + fsync of the directory), and a file
that exists but cannot be parsed is an error, never "no state".
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from testbed.node.errors import StateError


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)  # the data is on disk before the name points at it
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # and the rename itself is on disk
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StateError(
            f"cannot write {path}: {exc.strerror or exc}",
            "check that the state volume is mounted read-write and not full",
        ) from exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's object, or None if it does not exist. Unreadable or corrupt -> StateError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(
            f"{path} is corrupt: {exc}",
            "inspect it; delete it only if resetting this node's state is intended",
        ) from exc
    if not isinstance(data, dict):
        raise StateError(f"{path} does not hold a JSON object")
    return data
