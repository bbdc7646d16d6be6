"""Wheels for the image, downloaded on the host (containers may not reach the package index) and
cached by (requirements, Python tag, platform); the project's own pure-Python wheel."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from testbed.engines.images.common import (
    NODE_EXTRA,
    PIP_TIMEOUT_S,
    ProgressFn,
    no_progress,
    run_tool,
)
from testbed.engines.images.inputs import package_files
from testbed.engines.images.platform_probe import ImagePlatform
from testbed.errors import ImageError


def wheelhouse_key(requirements: Sequence[str], python_tag: str, platforms: Sequence[str]) -> str:
    """Cache key of a dependency wheelhouse; independent of the project's own code."""
    blob = json.dumps(
        {"requirements": list(requirements), "python": python_tag, "platforms": list(platforms)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def pip_download_command(
    requirements: Sequence[str], platform: ImagePlatform, dest: Path
) -> list[str]:
    """``pip download`` of wheels for the image (not the host), with the running interpreter."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--python-version",
        platform.python_version,
        "--implementation",
        "cp",
        "--abi",
        platform.python_tag,
    ]
    for tag in platform.platform_tags:
        cmd += ["--platform", tag]
    cmd += ["-d", str(dest), *requirements]
    return cmd


def ensure_wheelhouse(
    cache_dir: Path,
    requirements: Sequence[str],
    platform: ImagePlatform,
    report: ProgressFn = no_progress,
) -> Path:
    """The cached dependency wheelhouse for (requirements, Python, platform); download if new."""
    key = wheelhouse_key(requirements, platform.python_tag, platform.platform_tags)
    parent = cache_dir / "wheelhouse"
    dest = parent / key
    if (dest / ".complete").is_file():
        report(f"wheelhouse {key} is cached", None, None)
        return dest
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=parent))
    try:
        report(
            f"downloading wheels for {platform.python_tag} {platform.platform_tags[0]}", None, None
        )
        run_tool(
            pip_download_command(requirements, platform, tmp),
            what="pip download",
            timeout=PIP_TIMEOUT_S,
            hint="the package index must be reachable from the host, and every requirement of "
            f"the '{NODE_EXTRA}' extra needs a wheel for {platform.python_tag} on "
            f"{platform.platform_tags[0]} (or a pure-Python one)",
        )
        (tmp / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        (tmp / ".complete").write_text(
            json.dumps(
                {
                    "requirements": list(requirements),
                    "python": platform.python_tag,
                    "platforms": platform.platform_tags,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


_PROJECT_TOP_FILES = ("pyproject.toml", "README.md", "setup.cfg", "setup.py", "MANIFEST.in")


def build_project_wheel(project_root: Path, work_dir: Path, dest: Path) -> Path:
    """Build the project's (pure-Python) wheel into ``dest`` from a copy of the hashed files.

    Building from a copy keeps the work tree clean (no build/ or egg-info) and makes sure the wheel
    holds exactly the files the inputs hash covers, never stale ones from an old build/.
    """
    source = work_dir / "source"
    source.mkdir(parents=True)
    for name in _PROJECT_TOP_FILES:
        if (project_root / name).is_file():
            shutil.copy2(project_root / name, source / name)
    for path in package_files(project_root):
        target = source / path.relative_to(project_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--disable-pip-version-check",
        "--no-deps",
        "-w",
        str(dest),
        str(source),
    ]
    run_tool(
        cmd,
        what="pip wheel",
        timeout=PIP_TIMEOUT_S,
        hint="the build backend (setuptools) comes from the package index: check that the host "
        "reaches it, and that pyproject.toml is valid",
    )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ImageError(
            f"pip wheel left {len(wheels)} wheels in {dest}, expected 1",
            hint="report this as a bug of testbed.engines.images",
        )
    return wheels[0]


def link_tree(source: Path, dest: Path) -> None:
    """Hard-link (or copy, across file systems) the files of ``source`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            os.link(path, dest / path.name)
        except OSError:
            shutil.copy2(path, dest / path.name)
