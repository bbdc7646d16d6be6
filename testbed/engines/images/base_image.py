"""The base image: python:3.11-slim when here or pullable (a failed pull is remembered for a while),
else a Debian made on the host with mmdebstrap and ``docker import``-ed; images pulled with a
stall timeout."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
from docker.utils import parse_repository_tag

from testbed.engines.images.common import (
    DEFAULT_BASE_IMAGE,
    MMDEBSTRAP_TIMEOUT_S,
    OFFLINE_BASE,
    OFFLINE_BASE_LABEL,
    OFFLINE_BASE_PACKAGES,
    OFFLINE_BASE_PATH,
    OFFLINE_BASE_SUITE,
    PULL_RETRY_AFTER_S,
    PULL_STALL_TIMEOUT_S,
    ProgressFn,
    image_id_of,
    one_line,
    run_tool,
)
from testbed.errors import ImageError


def _resolve_base(
    client: docker.DockerClient, requested: str | None, cache_dir: Path, report: ProgressFn
) -> tuple[str, str, bool]:
    """(reference, image ID, offline base built by this call)."""
    wanted = requested or DEFAULT_BASE_IMAGE
    if wanted != OFFLINE_BASE:
        image_id = image_id_of(client, wanted)
        if image_id is not None:
            return wanted, image_id, False
        marker = pull_marker(cache_dir, wanted)
        if requested is None and pull_recently_failed(cache_dir, wanted):
            # Do not make every `testbed up` wait for a registry that was not there minutes ago.
            error: str | None = (
                f"a pull of {wanted} failed less than {PULL_RETRY_AFTER_S // 60} min ago"
            )
        else:
            report(f"pulling {wanted}", None, None)
            error = _try_pull(client, wanted, PULL_STALL_TIMEOUT_S)
            image_id = image_id_of(client, wanted)
            if error is None and image_id is not None:
                marker.unlink(missing_ok=True)
                return wanted, image_id, False
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(f"{wanted}\n{error}\n", encoding="utf-8")
        if requested is not None:
            raise ImageError(
                f"base image {wanted} is not present and cannot be pulled: {error}",
                hint=f"load it with `docker load`, or leave the base unset to use {OFFLINE_BASE}",
            )
        reason = f"no registry reachable ({one_line(error or 'pull failed')})"
    else:
        reason = "offline base requested"

    image_id = image_id_of(client, OFFLINE_BASE)
    if image_id is not None:
        report(f"{reason}: using the offline base {OFFLINE_BASE}", None, None)
        return OFFLINE_BASE, image_id, False
    report(f"{reason}: building the offline base {OFFLINE_BASE} with mmdebstrap", None, None)
    started = time.monotonic()
    image_id = build_offline_base(client, cache_dir)
    report(
        f"no registry reachable: built offline base {OFFLINE_BASE} "
        f"({time.monotonic() - started:.0f} s, mmdebstrap + docker import)",
        None,
        None,
    )
    return OFFLINE_BASE, image_id, True


def ensure_pulled(
    client: docker.DockerClient,
    ref: str,
    cache_dir: Path,
    on_pull: Callable[[], None] | None = None,
) -> tuple[str | None, str]:
    """(image ID, "") when ``ref`` is here or could be pulled, else (None, why not).

    A failed pull is remembered for a while (as for the base image), so that every `testbed up`
    on a machine without a registry does not wait for it again.
    """
    image_id = image_id_of(client, ref)
    if image_id is not None:
        return image_id, ""
    marker = pull_marker(cache_dir, ref)
    if pull_recently_failed(cache_dir, ref):
        return None, f"a pull of {ref} failed less than {PULL_RETRY_AFTER_S // 60} min ago"
    if on_pull is not None:
        on_pull()  # a pull can take minutes: say so before it starts
    error = _try_pull(client, ref, PULL_STALL_TIMEOUT_S)
    image_id = image_id_of(client, ref)
    if error is None and image_id is not None:
        marker.unlink(missing_ok=True)
        return image_id, ""
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{ref}\n{error}\n", encoding="utf-8")
    return None, one_line(error or "the pull ended without an image")


def _try_pull(client: docker.DockerClient, ref: str, stall_timeout: float) -> str | None:
    """Pull ``ref``; None on success, else why not.

    The SDK's pull has no timeout of its own, and a daemon without a route to the registry can
    take minutes to say so. The pull runs in a daemon thread; it is abandoned when the daemon has
    sent nothing for ``stall_timeout`` seconds (a slow pull that makes progress goes on).
    """
    repository, tag = parse_repository_tag(ref)
    outcome: list[str | None] = []
    last_activity = [time.monotonic()]

    def pull() -> None:
        try:
            for chunk in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                last_activity[0] = time.monotonic()
                if isinstance(chunk, dict) and "error" in chunk:
                    outcome.append(str(chunk["error"]))
                    return
            outcome.append(None)
        except docker.errors.APIError as exc:
            outcome.append(str(exc.explanation or exc))
        except Exception as exc:  # any failure just means "no registry"
            outcome.append(str(exc))

    worker = threading.Thread(target=pull, name=f"pull {ref}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(min(1.0, stall_timeout))
        if worker.is_alive() and time.monotonic() - last_activity[0] > stall_timeout:
            return f"no answer from the registry for {stall_timeout:.0f} s"
    return outcome[0] if outcome else "the pull ended without a result"


def pull_recently_failed(cache_dir: Path, ref: str) -> bool:
    marker = pull_marker(cache_dir, ref)
    try:
        return time.time() - marker.stat().st_mtime < PULL_RETRY_AFTER_S
    except OSError:
        return False


def pull_marker(cache_dir: Path, ref: str) -> Path:
    name = hashlib.sha256(ref.encode("utf-8")).hexdigest()[:16]
    return cache_dir / "pull-failed" / name


def build_offline_base(client: docker.DockerClient, cache_dir: Path) -> str:
    """Make ``testbed/base:bookworm`` with mmdebstrap and docker import; return its image ID."""
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise ImageError(
            "no registry is reachable and mmdebstrap is not installed, so there is no base image",
            hint="install it (`apt-get install mmdebstrap`, as root), or `docker load` "
            f"{DEFAULT_BASE_IMAGE}",
        )
    with tempfile.TemporaryDirectory(prefix="offline-base-", dir=cache_dir) as tmp:
        tarball = Path(tmp) / f"{OFFLINE_BASE_SUITE}.tar"
        cmd = [
            mmdebstrap,
            "--variant=minbase",
            f"--include={','.join(OFFLINE_BASE_PACKAGES)}",
            OFFLINE_BASE_SUITE,
            str(tarball),
        ]
        # stdin: mmdebstrap reads extra sources from a non-terminal stdin; give it nothing.
        run_tool(cmd, what="mmdebstrap", timeout=MMDEBSTRAP_TIMEOUT_S, hint=_MMDEBSTRAP_HINT)
        repository, _, tag = OFFLINE_BASE.partition(":")
        client.api.import_image(
            src=str(tarball),
            repository=repository,
            tag=tag,
            changes=[
                f"ENV PATH={OFFLINE_BASE_PATH}",
                'CMD ["/bin/bash"]',
                f"LABEL {OFFLINE_BASE_LABEL}={OFFLINE_BASE_SUITE}",
            ],
        )
    image_id = image_id_of(client, OFFLINE_BASE)
    if image_id is None:
        raise ImageError(
            f"docker import did not produce {OFFLINE_BASE}",
            hint="look at the Docker daemon's log",
        )
    return image_id


_MMDEBSTRAP_HINT = (
    "mmdebstrap needs root (or user namespaces) and a reachable Debian mirror "
    "(deb.debian.org); run `testbed images build` as root, or `docker load` a base image"
)
