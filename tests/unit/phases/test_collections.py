"""Collections without Galaxy: the real ansible wheel (downloaded once into the testbed cache and
reused), only two collection trees extracted, atomically, and usable by ansible-doc."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from testbed.phases import collections as C

ANSIBLE_DOC = Path(sys.executable).parent / "ansible-doc"


@pytest.fixture(scope="module")
def cached() -> C.Collections:
    """The real thing, in the testbed cache (downloaded on the first run only)."""
    return C.ensure_collections()


def test_cache_holds_only_the_two_collections(cached: C.Collections) -> None:
    community = cached.root / "ansible_collections" / "community"
    assert sorted(p.name for p in community.iterdir()) == [
        "docker",
        "library_inventory_filtering_v1",
    ]
    assert (community / "docker" / "plugins" / "connection" / "docker.py").is_file()
    assert (cached.root / C.STAMP).read_text().strip() == f"ansible {C.ANSIBLE_VERSION}"
    again = C.ensure_collections()
    assert again.root == cached.root
    assert again.action.startswith("cached in ")


def test_extraction_matches_the_wheel(cached: C.Collections, tmp_path: Path) -> None:
    wheel = C.collections_dir() / "wheels" / C.WHEEL_NAME
    C.extract(wheel, tmp_path / "x")
    prefixes = tuple(C._tree(n) for n in C.COLLECTIONS)
    with zipfile.ZipFile(wheel) as archive:
        wanted = {m.filename for m in archive.infolist() if m.filename.startswith(prefixes)}
        total = len(archive.infolist())
    got = {
        str(p.relative_to(tmp_path / "x"))
        for p in (tmp_path / "x").rglob("*")
        if p.is_file() and p.name != C.STAMP
    }
    assert got == {w for w in wanted if not w.endswith("/")}
    assert len(got) < total / 10  # a small part of the wheel
    assert not list(tmp_path.glob(".x-*"))  # no staging directory left behind


def test_reuses_a_cached_wheel(cached: C.Collections, tmp_path: Path) -> None:
    wheel = C.collections_dir() / "wheels" / C.WHEEL_NAME
    (tmp_path / "collections" / "wheels").mkdir(parents=True)
    os.link(wheel, tmp_path / "collections" / "wheels" / C.WHEEL_NAME)
    said: list[str] = []
    made = C.ensure_collections(tmp_path, report=said.append)
    assert made.action.startswith("extracted from the cached wheel")
    assert not any("downloading" in line for line in said)
    assert made.root == tmp_path / "collections" / C.ANSIBLE_VERSION


def test_override_names_the_directory(
    cached: C.Collections, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(C.ENV_OVERRIDE, str(cached.root.parent))
    assert C.ensure_collections().root == cached.root


def test_a_broken_wheel_is_refused_and_dropped(tmp_path: Path) -> None:
    wheel = tmp_path / "collections" / "wheels" / C.WHEEL_NAME
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"not a zip")
    with pytest.raises(C.CollectionsError, match="cannot read"):
        C.ensure_collections(tmp_path)
    assert not wheel.exists()
    assert not (tmp_path / "collections" / C.ANSIBLE_VERSION).exists()


def test_a_wheel_without_the_collections_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("ansible_collections/community/docker/README.md", "no manifest")
    with pytest.raises(C.CollectionsError, match="does not contain"):
        C.extract(wheel, tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_unsafe_member_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("ansible_collections/community/docker/../../../../evil", "x")
    with pytest.raises(C.CollectionsError, match="unsafe"):
        C.extract(wheel, tmp_path / "root")
    assert not (tmp_path / "evil").exists()


def test_ansible_finds_the_docker_connection(cached: C.Collections) -> None:
    env = dict(os.environ, **C.environment(cached), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(ANSIBLE_DOC), "-t", "connection", "community.docker.docker"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "docker" in proc.stdout
    assert str(cached.root) in proc.stdout


def test_download_failure_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def failing(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(C.subprocess, "run", failing)
    with pytest.raises(C.CollectionsError) as caught:
        C.download_wheel(tmp_path / "wheels" / C.WHEEL_NAME)
    assert "No matching distribution" in caught.value.message
    assert C.ENV_OVERRIDE in caught.value.hint
    shutil.rmtree(tmp_path / "wheels")
