"""The base image's platform (Python, glibc, machine), probed by running it once: the wheels
must fit the image, not the host."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import docker
import docker.errors

from testbed.engines.images.common import OLDEST_GLIBC_MINOR, tail
from testbed.errors import ImageError


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
            f"python3 failed in the base image {image}: {tail(stderr, 10)}",
            hint="the base image needs python3 (and python3-venv)",
        ) from exc
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
    return parse_probe_output(text)
