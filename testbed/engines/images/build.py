"""The node image: found by its inputs hash, else built with the daemon's legacy builder from a
context of the Dockerfile, the cached wheelhouse and the project wheel."""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from testbed.engines.images.base_image import _resolve_base
from testbed.engines.images.common import (
    BASE_IMAGE_ID_LABEL,
    BASE_IMAGE_LABEL,
    DOCKERFILE,
    INPUTS_HASH_LABEL,
    NODE_IMAGE_REPO,
    TAIL_LINES,
    ProgressFn,
    docker_errors,
    locked,
    no_progress,
    shorten,
)
from testbed.engines.images.inputs import inputs_hash, node_image_tag, read_node_requirements
from testbed.engines.images.platform_probe import probe_platform
from testbed.engines.images.wheelhouse import build_project_wheel, ensure_wheelhouse, link_tree
from testbed.errors import ImageError


@dataclass(frozen=True)
class ImageResult:
    tag: str  # testbed/node:<first 12 hex of inputs_hash>: what the engine runs
    image_id: str
    built: bool  # False: an image with this inputs hash existed already
    base_image: str  # the reference the image was built FROM
    offline_base_built: bool  # True: this call ran mmdebstrap to make testbed/base:bookworm
    inputs_hash: str


def ensure_node_image(
    client: docker.DockerClient,
    *,
    project_root: Path,
    cache_dir: Path,
    base_image: str | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
) -> ImageResult:
    """Make sure the node image for this project code and base exists; build it if not.

    ``base_image`` None means: python:3.11-slim when it is local or can be pulled, the offline
    Debian base otherwise. An explicit ``base_image`` is used or it is an error, except
    ``OFFLINE_BASE``, which is built when missing. ``force`` rebuilds without the layer cache
    even when an up-to-date image exists. Both tags (``testbed/node:<hash12>`` and ``:latest``)
    are (re)applied to the image also when nothing is built.
    """
    report: ProgressFn = progress or no_progress
    project_root = project_root.resolve()
    cache_dir = cache_dir.resolve()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(
            f"cannot create the cache directory {cache_dir}: {exc}",
            hint="pass a writable cache directory",
        ) from exc
    if not (project_root / DOCKERFILE).is_file():
        raise ImageError(
            f"no {DOCKERFILE} under {project_root}", hint="pass the project root as project_root"
        )

    with locked(cache_dir / "images.lock"), docker_errors("building the node image"):
        base_ref, base_id, offline_built = _resolve_base(client, base_image, cache_dir, report)
        digest = inputs_hash(project_root, base_id)
        tag = node_image_tag(digest)

        existing = client.images.list(filters={"label": f"{INPUTS_HASH_LABEL}={digest}"})
        if existing and not force:
            # prefer the one that carries the tag (an older forced build may linger, untagged)
            tagged = [image for image in existing if tag in (image.tags or [])]
            image_id = str((tagged or existing)[0].id)
            _tag(client, image_id, tag)
            report(f"node image {tag} is up to date", None, None)
            return ImageResult(tag, image_id, False, base_ref, offline_built, digest)

        platform = probe_platform(client, base_ref)
        report(
            f"base {base_ref}: Python {platform.python_version}, glibc "
            f"{platform.glibc[0]}.{platform.glibc[1]}, {platform.machine}",
            None,
            None,
        )
        requirements = read_node_requirements(project_root)
        deps = ensure_wheelhouse(cache_dir, requirements, platform, report)

        with tempfile.TemporaryDirectory(prefix="node-context-", dir=cache_dir) as tmp:
            context = Path(tmp) / "context"
            (context / "wheels" / "project").mkdir(parents=True)
            shutil.copy2(project_root / DOCKERFILE, context / "Dockerfile")
            link_tree(deps, context / "wheels" / "deps")
            report("building the project wheel", None, None)
            build_project_wheel(project_root, Path(tmp) / "wheel", context / "wheels" / "project")

            labels = {
                INPUTS_HASH_LABEL: digest,
                BASE_IMAGE_LABEL: base_ref,
                BASE_IMAGE_ID_LABEL: base_id,
                "org.opencontainers.image.title": "testbed node",
            }
            image_id = _build(client, context, base_ref, labels, nocache=force, report=report)
        _tag(client, image_id, tag)
        for stale in existing:  # superseded by a forced rebuild of the same inputs
            if str(stale.id) != image_id:
                with contextlib.suppress(docker.errors.APIError):  # in use: leave it
                    client.images.remove(str(stale.id))
        report(f"built node image {tag} ({image_id[:19]})", None, None)
        return ImageResult(tag, image_id, True, base_ref, offline_built, digest)


_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def _build(
    client: docker.DockerClient,
    context: Path,
    base_ref: str,
    labels: dict[str, str],
    *,
    nocache: bool,
    report: ProgressFn,
) -> str:
    """Build with the legacy builder; stream steps into ``report``; return the image ID."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    step: tuple[int, int, str] | None = None
    image_id: str | None = None
    error: str | None = None
    stream: Any = client.api.build(
        path=str(context),
        pull=False,
        rm=True,
        forcerm=True,
        nocache=nocache,
        buildargs={"BASE_IMAGE": base_ref},
        labels=labels,
        decode=True,
    )
    for chunk in stream:
        if not isinstance(chunk, dict):
            continue
        if "stream" in chunk:
            for line in str(chunk["stream"]).splitlines():
                if not line.strip():
                    continue
                tail.append(line.rstrip())
                match = _STEP.match(line.strip())
                if match:
                    step = (int(match[1]), int(match[2]), shorten(match[3], 80))
                    report(f"Step {step[0]}/{step[1]} : {step[2]}", step[0], step[1])
                elif line.startswith("Successfully built "):
                    image_id = image_id or line.split()[-1]
        elif "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
            image_id = str(chunk["aux"]["ID"])
        elif "error" in chunk:
            error = str(chunk["error"]).strip()
            tail.append(error)
    if error is not None or image_id is None:
        where = f"step {step[0]}/{step[1]} ({step[2]})" if step else "before the first step"
        raise ImageError(
            f"node image build failed at {where}: {error or 'no image was produced'}\n"
            + "\n".join(tail),
            hint="the output above is the end of the build; fix the Dockerfile or the project, "
            "or run `testbed images build --force` after a cache problem",
        )
    return image_id if image_id.startswith("sha256:") else str(client.images.get(image_id).id)


def _tag(client: docker.DockerClient, image_id: str, tag: str) -> None:
    repository, _, version = tag.rpartition(":")
    client.api.tag(image_id, repository, version)
    client.api.tag(image_id, NODE_IMAGE_REPO, "latest")
