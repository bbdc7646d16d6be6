"""Node images that build without a container registry.

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
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.utils import parse_repository_tag

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


@dataclass(frozen=True)
class ImageResult:
    tag: str  # testbed/node:<first 12 hex of inputs_hash>: what the backend runs
    image_id: str
    built: bool  # False: an image with this inputs hash existed already
    base_image: str  # the reference the image was built FROM
    offline_base_built: bool  # True: this call ran mmdebstrap to make testbed/base:bookworm
    inputs_hash: str


@dataclass(frozen=True)
class ImagePlatform:
    """What the wheels must fit: the base image's Python, C library and machine."""

    python: tuple[int, int]
    glibc: tuple[int, int]
    machine: str

    @property
    def python_tag(self) -> str:
        return f"cp{self.python[0]}{self.python[1]}"

    @property
    def python_version(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"

    @property
    def platform_tags(self) -> list[str]:
        return platform_tags(self.glibc, self.machine)


# --- pure helpers (unit-tested) ------------------------------------------------------------------


def node_image_tag(inputs_hash: str) -> str:
    """The tag the backend runs for a given inputs hash: ``testbed/node:<first 12 hex>``."""
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


_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "i386": "i686", "i586": "i686"}


def platform_tags(glibc: tuple[int, int], machine: str) -> list[str]:
    """pip ``--platform`` values for a glibc and machine, newest first.

    ``manylinux_2_<minor>_<arch>`` from the image's glibc down to 2.17, then the legacy alias
    ``manylinux2014_<arch>`` (the same as 2.17; some wheels carry only that name).
    """
    major, minor = glibc
    arch = _ARCH_ALIASES.get(machine, machine)
    if major != 2 or minor < OLDEST_GLIBC_MINOR:
        raise ImageError(
            f"the base image has glibc {major}.{minor}; manylinux wheels need 2.17 or newer",
            hint="use a newer glibc-based base image (Debian 10+, e.g. python:3.11-slim)",
        )
    tags = [f"manylinux_2_{m}_{arch}" for m in range(minor, OLDEST_GLIBC_MINOR - 1, -1)]
    tags.append(f"manylinux2014_{arch}")
    return tags


def wheelhouse_key(requirements: Sequence[str], python_tag: str, platforms: Sequence[str]) -> str:
    """Cache key of a dependency wheelhouse; independent of the project's own code."""
    blob = json.dumps(
        {"requirements": list(requirements), "python": python_tag, "platforms": list(platforms)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def parse_probe_output(output: str) -> ImagePlatform:
    """Parse what ``_PROBE`` printed inside the base image."""
    try:
        data = json.loads(output.strip().splitlines()[-1])
        python = (int(data["python"][0]), int(data["python"][1]))
        libc_name, libc_version = str(data["libc"][0]), str(data["libc"][1])
        machine = str(data["machine"])
        implementation = str(data.get("implementation", "cpython"))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ImageError(
            f"unexpected answer from python3 in the base image: {output.strip()[-300:]!r}",
            hint="the base image needs a working python3",
        ) from exc
    if implementation != "cpython":
        raise ImageError(
            f"the base image runs {implementation}, not CPython",
            hint="use a CPython base image such as python:3.11-slim",
        )
    if libc_name != "glibc":
        raise ImageError(
            f"the base image's C library is {libc_name or 'unknown'}, not glibc",
            hint="use a glibc-based image (Debian or Ubuntu); musl images are not supported",
        )
    match = re.match(r"(\d+)\.(\d+)", libc_version)
    if match is None:
        raise ImageError(
            f"cannot read the base image's glibc version {libc_version!r}",
            hint="use a glibc-based image (Debian or Ubuntu)",
        )
    return ImagePlatform(python, (int(match[1]), int(match[2])), machine)


# --- the build -----------------------------------------------------------------------------------


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
    report: ProgressFn = progress or _no_progress
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

    with _locked(cache_dir / "images.lock"), _docker_errors("building the node image"):
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
            _link_tree(deps, context / "wheels" / "deps")
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


def _no_progress(message: str, step: int | None, total: int | None) -> None:
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One image build at a time per cache directory (two shells, or two CI jobs)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _docker_errors(doing: str) -> Iterator[None]:
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


def _image_id(client: docker.DockerClient, ref: str) -> str | None:
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


def _resolve_base(
    client: docker.DockerClient, requested: str | None, cache_dir: Path, report: ProgressFn
) -> tuple[str, str, bool]:
    """(reference, image ID, offline base built by this call)."""
    wanted = requested or DEFAULT_BASE_IMAGE
    if wanted != OFFLINE_BASE:
        image_id = _image_id(client, wanted)
        if image_id is not None:
            return wanted, image_id, False
        marker = _pull_marker(cache_dir, wanted)
        if requested is None and _pull_recently_failed(cache_dir, wanted):
            # Do not make every `testbed up` wait for a registry that was not there minutes ago.
            error: str | None = (
                f"a pull of {wanted} failed less than {PULL_RETRY_AFTER_S // 60} min ago"
            )
        else:
            report(f"pulling {wanted}", None, None)
            error = _try_pull(client, wanted, PULL_STALL_TIMEOUT_S)
            image_id = _image_id(client, wanted)
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
        reason = f"no registry reachable ({_one_line(error or 'pull failed')})"
    else:
        reason = "offline base requested"

    image_id = _image_id(client, OFFLINE_BASE)
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
    image_id = _image_id(client, ref)
    if image_id is not None:
        return image_id, ""
    marker = _pull_marker(cache_dir, ref)
    if _pull_recently_failed(cache_dir, ref):
        return None, f"a pull of {ref} failed less than {PULL_RETRY_AFTER_S // 60} min ago"
    if on_pull is not None:
        on_pull()  # a pull can take minutes: say so before it starts
    error = _try_pull(client, ref, PULL_STALL_TIMEOUT_S)
    image_id = _image_id(client, ref)
    if error is None and image_id is not None:
        marker.unlink(missing_ok=True)
        return image_id, ""
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{ref}\n{error}\n", encoding="utf-8")
    return None, _one_line(error or "the pull ended without an image")


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


def _pull_recently_failed(cache_dir: Path, ref: str) -> bool:
    marker = _pull_marker(cache_dir, ref)
    try:
        return time.time() - marker.stat().st_mtime < PULL_RETRY_AFTER_S
    except OSError:
        return False


def _pull_marker(cache_dir: Path, ref: str) -> Path:
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
        _run(cmd, what="mmdebstrap", timeout=MMDEBSTRAP_TIMEOUT_S, hint=_MMDEBSTRAP_HINT)
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
    image_id = _image_id(client, OFFLINE_BASE)
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

_PROBE = (
    "import json, platform, sys; "
    "print(json.dumps({'python': list(sys.version_info[:2]), "
    "'implementation': sys.implementation.name, "
    "'libc': list(platform.libc_ver()), 'machine': platform.machine()}))"
)


def probe_platform(client: docker.DockerClient, image: str) -> ImagePlatform:
    """Run the image once to learn its Python version, glibc version and machine."""
    try:
        output = client.containers.run(
            image,
            entrypoint=["python3", "-c", _PROBE],
            remove=True,
            network_disabled=True,
            labels={"testbed.purpose": "image-probe"},
        )
    except docker.errors.ContainerError as exc:
        stderr = exc.stderr.decode("utf-8", "replace") if exc.stderr else str(exc)
        raise ImageError(
            f"python3 failed in the base image {image}: {_tail(stderr, 10)}",
            hint="the base image needs python3 (and python3-venv)",
        ) from exc
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
    return parse_probe_output(text)


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
    report: ProgressFn = _no_progress,
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
        _run(
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
    _run(
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
            hint="report this as a bug of testbed.backends.images",
        )
    return wheels[0]


def _run(cmd: Sequence[str], *, what: str, timeout: float, hint: str) -> None:
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
            f"{what} failed (exit code {proc.returncode}):\n{_tail(output, 15)}", hint=hint
        )


def _link_tree(source: Path, dest: Path) -> None:
    """Hard-link (or copy, across file systems) the files of ``source`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            os.link(path, dest / path.name)
        except OSError:
            shutil.copy2(path, dest / path.name)


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
                    step = (int(match[1]), int(match[2]), _shorten(match[3], 80))
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


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:200]
