"""testbed.atomic: a file is replaced whole, with its mode from the first byte, or not at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from testbed.atomic import write_atomically


def test_new_file_has_the_mode_and_the_bytes(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    os.umask(0o022)
    write_atomically(target, b"secret", 0o600)
    assert target.read_bytes() == b"secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    write_atomically(target, "text é", 0o644)
    assert target.read_text(encoding="utf-8") == "text é"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]  # no temp file left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "targets.json"
    write_atomically(target, b"old", 0o644)

    def broken(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="No space"):
        write_atomically(target, b"new", 0o644)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["targets.json"]
