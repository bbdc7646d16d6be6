"""Node images that build without a container registry (one module per concern below).

``ensure_node_image`` makes sure that an image ``testbed/node:<hash>`` exists for the current
project code and base image, and builds it when it does not:

1. Base image. ``python:3.11-slim`` (or the one asked for) if it is present locally, else a pull
   with a short timeout, else (no registry) a Debian bookworm made on the host with ``mmdebstrap``
   and ``docker import``-ed as ``testbed/base:bookworm`` (reused once it exists).
2. Inputs hash. sha256 over the Dockerfile, pyproject.toml, every file of the ``testbed`` package
   and the base image ID. It is stored as the label ``testbed.inputs-hash``; an image carrying it
   is up to date and nothing is built.
3. Wheelhouse. Containers may not reach (or trust) the package index, so pip runs on the host and
   downloads wheels that fit the IMAGE's Python, glibc and machine (probed by running the base
   once), not the host's. It is cached under ``cache_dir`` by (requirements, Python tag,
   platform), so that a change of project code does not download anything again. The project
   itself becomes a pure-Python wheel, built from a copy of exactly the hashed files.
4. Build with the legacy builder of the daemon (``pull=False``: the local base is used as it is),
   reporting "Step N/M" through ``progress``.

Every failure is an ``ImageError`` with the tail of what the failing tool said and a hint.

Modules: ``common`` (names, labels, limits, tool runner), ``inputs`` (inputs hash),
``base_image`` (pull or mmdebstrap), ``platform_probe`` (the image's Python/glibc/machine),
``wheelhouse`` (wheels for the image) and ``build`` (``ensure_node_image``).
"""

from __future__ import annotations

from testbed.engines.images.base_image import build_offline_base, ensure_pulled
from testbed.engines.images.build import ImageResult, ensure_node_image
from testbed.engines.images.common import (
    BASE_IMAGE_ID_LABEL,
    BASE_IMAGE_LABEL,
    DEFAULT_BASE_IMAGE,
    DOCKERFILE,
    INPUTS_HASH_LABEL,
    NODE_EXTRA,
    NODE_IMAGE_LATEST,
    NODE_IMAGE_REPO,
    OFFLINE_BASE,
    OFFLINE_BASE_LABEL,
    PACKAGE,
    ProgressFn,
)
from testbed.engines.images.inputs import (
    inputs_hash,
    node_image_tag,
    package_files,
    read_node_requirements,
)
from testbed.engines.images.platform_probe import (
    ImagePlatform,
    parse_probe_output,
    platform_tags,
    probe_platform,
)
from testbed.engines.images.wheelhouse import (
    build_project_wheel,
    ensure_wheelhouse,
    pip_download_command,
    wheelhouse_key,
)

__all__ = [
    "BASE_IMAGE_ID_LABEL",
    "BASE_IMAGE_LABEL",
    "DEFAULT_BASE_IMAGE",
    "DOCKERFILE",
    "INPUTS_HASH_LABEL",
    "NODE_EXTRA",
    "NODE_IMAGE_LATEST",
    "NODE_IMAGE_REPO",
    "OFFLINE_BASE",
    "OFFLINE_BASE_LABEL",
    "PACKAGE",
    "ImagePlatform",
    "ImageResult",
    "ProgressFn",
    "build_offline_base",
    "build_project_wheel",
    "ensure_node_image",
    "ensure_pulled",
    "ensure_wheelhouse",
    "inputs_hash",
    "node_image_tag",
    "package_files",
    "parse_probe_output",
    "pip_download_command",
    "platform_tags",
    "probe_platform",
    "read_node_requirements",
    "wheelhouse_key",
]
