"""What an image is built from, and its inputs hash: the Dockerfile, pyproject.toml, every file of
the testbed package and the base image ID. An image carrying the hash is up to date."""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path

from testbed.engines.images.common import DOCKERFILE, NODE_EXTRA, NODE_IMAGE_REPO, PACKAGE
from testbed.errors import ImageError


def node_image_tag(inputs_hash: str) -> str:
    """The tag the engine runs for a given inputs hash: ``testbed/node:<first 12 hex>``."""
    if not re.fullmatch(r"[0-9a-f]{12,64}", inputs_hash):
        raise ValueError(f"not an inputs hash: {inputs_hash!r}")
    return f"{NODE_IMAGE_REPO}:{inputs_hash[:12]}"


def read_node_requirements(project_root: Path) -> list[str]:
    """The requirements of the ``node`` extra, as pyproject.toml lists them."""
    pyproject = project_root / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ImageError(
            f"cannot read {pyproject}: {exc}",
            hint="run from the project root (the directory that holds pyproject.toml)",
        ) from exc
    extras = data.get("project", {}).get("optional-dependencies", {})
    requirements = extras.get(NODE_EXTRA)
    if not isinstance(requirements, list) or not all(isinstance(r, str) for r in requirements):
        raise ImageError(
            f"{pyproject} has no [project.optional-dependencies] {NODE_EXTRA} list",
            hint=f"declare what runs inside the containers as the '{NODE_EXTRA}' extra",
        )
    return [str(r) for r in requirements]


def package_files(project_root: Path) -> list[Path]:
    """Every file of the testbed package, sorted, without __pycache__ and compiled files."""
    root = project_root / PACKAGE
    if not root.is_dir():
        raise ImageError(
            f"no package directory {root}", hint="pass the project root as project_root"
        )
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in filenames:
            if name.endswith((".pyc", ".pyo")):
                continue
            files.append(Path(dirpath) / name)
    return sorted(files, key=lambda p: p.relative_to(project_root).as_posix())


def inputs_hash(project_root: Path, base_image_id: str) -> str:
    """sha256 over the Dockerfile, pyproject.toml, the package files and the base image ID."""
    digest = hashlib.sha256()

    def feed(name: str, content: bytes) -> None:
        # name, length, content: unambiguous however the files are cut
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(str(len(content)).encode("ascii") + b"\0")
        digest.update(content)

    try:
        feed(DOCKERFILE.as_posix(), (project_root / DOCKERFILE).read_bytes())
        feed("pyproject.toml", (project_root / "pyproject.toml").read_bytes())
        for path in package_files(project_root):
            feed(path.relative_to(project_root).as_posix(), path.read_bytes())
    except OSError as exc:
        raise ImageError(
            f"cannot read the image inputs: {exc}", hint="pass the project root as project_root"
        ) from exc
    feed("base-image-id", base_image_id.encode("utf-8"))
    return digest.hexdigest()
