"""What the image builders share: names, labels, limits, progress reports and error translation."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import docker
import docker.errors

from testbed.errors import ImageError

NODE_IMAGE_REPO = "testbed/node"
NODE_IMAGE_LATEST = f"{NODE_IMAGE_REPO}:latest"
OFFLINE_BASE = "testbed/base:bookworm"
DEFAULT_BASE_IMAGE = "python:3.11-slim"

INPUTS_HASH_LABEL = "testbed.inputs-hash"
BASE_IMAGE_LABEL = "testbed.base-image"
BASE_IMAGE_ID_LABEL = "testbed.base-image-id"
OFFLINE_BASE_LABEL = "testbed.offline-base"

DOCKERFILE = Path("images/node/Dockerfile")
PACKAGE = "testbed"
NODE_EXTRA = "node"
PROJECT_NAME = "iot-security-testbed"

OFFLINE_BASE_SUITE = "bookworm"
OFFLINE_BASE_PACKAGES = ("python3", "python3-venv", "iproute2", "nftables")
OFFLINE_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PULL_STALL_TIMEOUT_S = 20.0  # give up a pull when the daemon sent nothing for this long
PULL_RETRY_AFTER_S = 600  # after a failed pull, use the offline base without asking again
MMDEBSTRAP_TIMEOUT_S = 1200.0
PIP_TIMEOUT_S = 900.0
OLDEST_GLIBC_MINOR = 17  # manylinux2014 == manylinux_2_17
TAIL_LINES = 30

ProgressFn = Callable[[str, int | None, int | None], None]
"""(message, step, total_steps); step and total are None for messages outside a build step."""


def no_progress(message: str, step: int | None, total: int | None) -> None:
    return None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One image build at a time per cache directory (two shells, or two CI jobs)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def docker_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.DockerException as exc:
        raise ImageError(
            f"Docker failed while {doing}: {exc}",
            hint="check that the Docker daemon runs and answers (`docker info`)",
        ) from exc
    except OSError as exc:
        if type(exc).__module__.split(".")[0] in {"requests", "urllib3"}:
            raise ImageError(
                f"lost the Docker daemon while {doing}: {exc}",
                hint="check that the Docker daemon runs and answers (`docker info`)",
            ) from exc
        raise ImageError(
            f"file system error while {doing}: {exc}",
            hint="check free space and permissions of the cache directory",
        ) from exc


def image_id_of(client: docker.DockerClient, ref: str) -> str | None:
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


def run_tool(cmd: Sequence[str], *, what: str, timeout: float, hint: str) -> None:
    try:
        proc = subprocess.run(
            list(cmd),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ImageError(f"{what} did not finish within {timeout:.0f} s", hint=hint) from exc
    except OSError as exc:
        raise ImageError(f"cannot run {what}: {exc}", hint=hint) from exc
    if proc.returncode != 0:
        output = proc.stderr.strip() or proc.stdout.strip()
        raise ImageError(
            f"{what} failed (exit code {proc.returncode}):\n{tail(output, 15)}", hint=hint
        )


def tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:200]
