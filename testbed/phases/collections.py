"""Ansible collections without Galaxy: extracted once from the ``ansible`` wheel, then cached.

``ansible-galaxy`` cannot reach its server from the project's machines, but the package index
carries the ``ansible`` wheel, which bundles every community collection. The phases need two of
them: ``community.docker`` (the connection that runs modules inside containers) and
``community.library_inventory_filtering_v1`` (which it depends on). So, on first use:

    pip download --no-deps ansible==ANSIBLE_VERSION   (into the cache: ~50 MB, reused)
    unzip only ansible_collections/community/{docker,library_inventory_filtering_v1}/ (~2 MB)

into ``<cache>/collections/<version>/ansible_collections/...``, written to a temporary directory
and renamed into place, so a crash leaves nothing half-extracted. ``ANSIBLE_COLLECTIONS_PATH``
then names that tree and the repository's own ``playbooks/collections`` (testbed.iot).

The pinned ansible release matches the ansible-core the host installs (12.x bundles core 2.19).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from testbed import rundir
from testbed.errors import CollectionsError as CollectionsError  # re-exported
from testbed.project import PLAYBOOKS

ANSIBLE_VERSION = "12.3.0"
WHEEL_NAME = f"ansible-{ANSIBLE_VERSION}-py3-none-any.whl"
COLLECTIONS = ("community.docker", "community.library_inventory_filtering_v1")
# A directory for the wheel and the extracted trees (e.g. one shared by test sessions) that
# wins over <cache>/collections.
ENV_OVERRIDE = "TESTBED_ANSIBLE_COLLECTIONS"
STAMP = ".complete"
PROJECT_COLLECTIONS = PLAYBOOKS / "collections"

Report = Callable[[str], None]


@dataclass(frozen=True)
class Collections:
    root: Path  # holds ansible_collections/community/...
    action: str  # "cached", "extracted from the cached wheel", "downloaded and extracted", ...

    @property
    def search_path(self) -> str:
        """The value for ANSIBLE_COLLECTIONS_PATH: ours first, then the extracted ones."""
        return os.pathsep.join([str(PROJECT_COLLECTIONS), str(self.root)])


def collections_dir(cache: Path | None = None) -> Path:
    """Where wheels and extracted trees are kept: $TESTBED_ANSIBLE_COLLECTIONS, else the cache."""
    if cache is None and (override := os.environ.get(ENV_OVERRIDE)):
        return Path(override).resolve()
    return (cache or rundir.cache_dir()) / "collections"


def _tree(name: str) -> str:
    namespace, collection = name.split(".")
    return f"ansible_collections/{namespace}/{collection}/"


def _complete(root: Path) -> bool:
    return (root / STAMP).is_file() and all(
        (root / _tree(name) / "MANIFEST.json").is_file() for name in COLLECTIONS
    )


def ensure_collections(cache: Path | None = None, report: Report | None = None) -> Collections:
    """The directory holding the collections the phases need; fetched only when missing."""
    say = report or (lambda message: None)
    base = collections_dir(cache)
    root = base / ANSIBLE_VERSION
    if _complete(root):
        return Collections(root, f"cached in {root}")
    wheel = base / "wheels" / WHEEL_NAME
    if wheel.is_file():
        action = f"extracted from the cached wheel {wheel}"
    else:
        say(f"downloading the ansible {ANSIBLE_VERSION} wheel (about 50 MB) for its collections")
        download_wheel(wheel)
        action = f"downloaded ansible {ANSIBLE_VERSION} and extracted its collections"
    say(f"extracting {', '.join(COLLECTIONS)} into {root}")
    extract(wheel, root)
    return Collections(root, action + f" into {root}")


def download_wheel(target: Path) -> None:
    """``pip download --no-deps`` the pinned ansible wheel to ``target`` (atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            f"ansible=={ANSIBLE_VERSION}",
        ]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CollectionsError(
                f"could not download the ansible {ANSIBLE_VERSION} wheel: {exc}",
                "check that the package index is reachable, or point "
                f"${ENV_OVERRIDE} at a directory that holds {ANSIBLE_VERSION}/ extracted",
            ) from exc
        downloaded = Path(tmp) / WHEEL_NAME
        if proc.returncode != 0 or not downloaded.is_file():
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise CollectionsError(
                f"pip could not download ansible=={ANSIBLE_VERSION}: "
                + (detail[-1] if detail else f"exit code {proc.returncode}"),
                "check that the package index is reachable (pip config list), or point "
                f"${ENV_OVERRIDE} at a directory that holds {ANSIBLE_VERSION}/ extracted",
            )
        os.replace(downloaded, target)


def extract(wheel: Path, root: Path) -> None:
    """Unzip only the needed collection trees from the wheel into ``root`` (atomically)."""
    prefixes = tuple(_tree(name) for name in COLLECTIONS)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}-"))
    try:
        try:
            with zipfile.ZipFile(wheel) as archive:
                members = [m for m in archive.infolist() if m.filename.startswith(prefixes)]
                for member in members:
                    _extract_member(archive, member, staging)
        except (zipfile.BadZipFile, OSError) as exc:
            wheel.unlink(missing_ok=True)  # a broken download: fetch it again next time
            raise CollectionsError(
                f"cannot read {wheel}: {exc}", "run the command again to download it anew"
            ) from exc
        missing = [n for n in COLLECTIONS if not (staging / _tree(n) / "MANIFEST.json").is_file()]
        if missing:
            raise CollectionsError(
                f"{wheel.name} does not contain {', '.join(missing)}",
                "the pinned ansible release must bundle them; see testbed/phases/collections.py",
            )
        (staging / STAMP).write_text(f"ansible {ANSIBLE_VERSION}\n", encoding="utf-8")
        if root.exists():
            shutil.rmtree(root)  # an incomplete earlier attempt
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _extract_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, root: Path) -> None:
    path = PurePosixPath(member.filename)
    if path.is_absolute() or ".." in path.parts:
        raise CollectionsError(f"unsafe path in the wheel: {member.filename}")
    if member.is_dir():
        (root / path).mkdir(parents=True, exist_ok=True)
        return
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(member) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


def environment(collections: Collections) -> dict[str, str]:
    """Environment for ansible commands: where to find collections."""
    return {"ANSIBLE_COLLECTIONS_PATH": collections.search_path}
