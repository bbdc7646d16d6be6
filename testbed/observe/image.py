"""The Prometheus image ``testbed/prometheus:<hash>``, built offline like the node image.

Same base as the node image (``testbed.engines.images``: python:3.11-slim when local or
pullable, else the offline Debian ``testbed/base:bookworm``), same rules: an inputs hash
(Dockerfile, how Prometheus gets in, base image ID) stored as the ``testbed.inputs-hash`` label,
nothing built when an image carries it, the legacy builder with ``pull=False``.

How Prometheus gets into the image (images/prometheus/Dockerfile):

- ``apt``: Debian's prometheus package installed during the build (plain-http mirror, signed
  indexes: no TLS needed in the build container). Tried first; it brings the classic web UI.
- ``host``: the host's Debian binaries copied in (``testbed.observe.binaries``). Used when the apt
  build fails, or when asked for.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from testbed.engines.images import BASE_IMAGE_LABEL, INPUTS_HASH_LABEL, ProgressFn
from testbed.engines.images.base_image import _resolve_base
from testbed.engines.images.build import _build as build_with_legacy_builder
from testbed.engines.images.common import docker_errors, locked
from testbed.errors import ImageError
from testbed.observe.binaries import HostBinaries, Source, host_binaries

REPOSITORY = "testbed/prometheus"
DOCKERFILE = Path("images/prometheus/Dockerfile")
SOURCE_LABEL = "testbed.prometheus-source"


@dataclass(frozen=True)
class PrometheusImage:
    tag: str
    image_id: str
    built: bool
    source: str  # "debian-apt" or what HostBinaries.source says
    base_image: str
    inputs_hash: str
    seconds: float  # time spent in this call (hashing, building)


def inputs_hash(dockerfile: bytes, base_image_id: str, binaries_digest: str | None) -> str:
    digest = hashlib.sha256()
    for name, value in (
        ("dockerfile", dockerfile),
        ("source", (binaries_digest or "debian-apt").encode()),
        ("base-image-id", base_image_id.encode()),
    ):
        digest.update(name.encode() + b"\0" + str(len(value)).encode() + b"\0" + value)
    return digest.hexdigest()


def image_tag(digest: str) -> str:
    return f"{REPOSITORY}:{digest[:12]}"


def ensure_prometheus_image(
    client: docker.DockerClient,
    *,
    project_root: Path,
    cache_dir: Path,
    source: Source = "auto",
    progress: ProgressFn | None = None,
) -> PrometheusImage:
    """The Prometheus image for this Dockerfile and base; built when missing."""
    report: ProgressFn = progress or (lambda message, step, total: None)
    started = time.monotonic()
    dockerfile_path = project_root / DOCKERFILE
    try:
        dockerfile = dockerfile_path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {dockerfile_path}: {exc}", "run from the project") from exc
    cache_dir.mkdir(parents=True, exist_ok=True)

    with (
        locked(cache_dir / "images.lock"),
        docker_errors("building the Prometheus image"),
    ):
        base_ref, base_id, _ = _resolve_base(client, None, cache_dir, report)

        def existing(binaries: HostBinaries | None) -> PrometheusImage | None:
            digest = inputs_hash(dockerfile, base_id, binaries.digest() if binaries else None)
            found = client.images.list(filters={"label": f"{INPUTS_HASH_LABEL}={digest}"})
            if not found:
                return None
            image_id = str(found[0].id)
            _tag(client, image_id, image_tag(digest))
            label = (found[0].labels or {}).get(SOURCE_LABEL, "")
            return PrometheusImage(
                image_tag(digest), image_id, False, label, base_ref, digest, _since(started)
            )

        def build(binaries: HostBinaries | None) -> PrometheusImage:
            digest = inputs_hash(dockerfile, base_id, binaries.digest() if binaries else None)
            label = binaries.source if binaries else "debian-apt"
            report(f"building {image_tag(digest)} ({label}) from {base_ref}", None, None)
            image_id = _build(
                client, cache_dir, dockerfile, binaries, base_ref, digest, label, report
            )
            _tag(client, image_id, image_tag(digest))
            return PrometheusImage(
                image_tag(digest), image_id, True, label, base_ref, digest, _since(started)
            )

        if source in ("auto", "apt"):
            found = existing(None)
            if found is not None:
                return found
        binaries: HostBinaries | None = None
        host_error: ImageError | None = None
        if source in ("auto", "host"):
            try:
                binaries = host_binaries(cache_dir)
            except ImageError as exc:
                if source == "host":
                    raise
                host_error = exc
            if binaries is not None:
                found = existing(binaries)
                if found is not None:
                    return found
        if source == "host" and binaries is not None:
            return build(binaries)
        try:
            return build(None)
        except ImageError as apt_error:
            if binaries is None:
                raise ImageError(
                    f"the Prometheus image cannot be built: apt in the build failed "
                    f"({apt_error.message.splitlines()[0]}), and the host has no Prometheus"
                    + (f" ({host_error.message})" if host_error else ""),
                    "install Debian's prometheus package on the host "
                    "(`apt-get install prometheus`), then run `testbed up` again",
                ) from apt_error
            report(f"apt in the build failed; using {binaries.source}", None, None)
            return build(binaries)


def _build(
    client: docker.DockerClient,
    cache_dir: Path,
    dockerfile: bytes,
    binaries: HostBinaries | None,
    base_ref: str,
    digest: str,
    source_label: str,
    report: ProgressFn,
) -> str:
    with tempfile.TemporaryDirectory(prefix="prometheus-context-", dir=cache_dir) as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_bytes(dockerfile)
        host = context / "host"
        host.mkdir()
        (host / ".keep").write_bytes(b"")
        if binaries is not None:
            for name, path in binaries.paths.items():
                shutil.copy2(path, host / name)
        labels = {
            INPUTS_HASH_LABEL: digest,
            BASE_IMAGE_LABEL: base_ref,
            SOURCE_LABEL: source_label,
            "org.opencontainers.image.title": "testbed prometheus",
        }
        try:
            return build_with_legacy_builder(
                client, context, base_ref, labels, nocache=False, report=report
            )
        except ImageError as exc:
            raise ImageError(
                exc.message.replace("node image", "Prometheus image", 1),
                "the output above is the end of the build (images/prometheus/Dockerfile)",
            ) from exc


def _tag(client: docker.DockerClient, image_id: str, tag: str) -> None:
    repository, _, version = tag.rpartition(":")
    client.api.tag(image_id, repository, version)
    client.api.tag(image_id, repository, "latest")


def _since(started: float) -> float:
    return round(time.monotonic() - started, 1)
