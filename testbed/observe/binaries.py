"""Prometheus binaries from the host, for the image's fallback path (no apt in build containers).

Debian's prometheus package holds two Go binaries that need nothing but glibc, so the ones of a
bookworm host run in the bookworm-based image. Where they come from, in order:

1. installed on the host (``/usr/bin/prometheus`` and ``promtool``, e.g. ``apt-get install
   prometheus``);
2. the package file: ``apt-get download prometheus`` into the cache (no root needed), extracted
   once with ``dpkg-deb -x``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from testbed.errors import ImageError

NAMES = ("prometheus", "promtool")
DEB_DIR = "prometheus-deb"
TIMEOUT_S = 300.0
Source = Literal["auto", "apt", "host"]  # how Prometheus gets into the image


@dataclass(frozen=True)
class HostBinaries:
    prometheus: Path
    promtool: Path
    source: str  # what the image label says: "host:/usr/bin" or "deb:prometheus_..._amd64.deb"

    @property
    def paths(self) -> dict[str, Path]:
        return {"prometheus": self.prometheus, "promtool": self.promtool}

    def digest(self) -> str:
        """sha256 over both binaries (about 100 MB: a fraction of a second)."""
        digest = hashlib.sha256()
        for name, path in sorted(self.paths.items()):
            digest.update(name.encode() + b"\0")
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()


def installed() -> HostBinaries | None:
    found = [shutil.which(name) for name in NAMES]
    if not all(found):
        return None
    paths = [Path(p).resolve() for p in found if p]
    if not all(_runs(p) for p in paths):
        return None
    return HostBinaries(paths[0], paths[1], f"host:{paths[0].parent}")


def from_deb(cache_dir: Path) -> HostBinaries:
    """Binaries of the cached (else freshly downloaded) Debian package."""
    directory = cache_dir / DEB_DIR
    directory.mkdir(parents=True, exist_ok=True)
    debs = sorted(directory.glob("prometheus_*.deb"))
    if not debs:
        _run(["apt-get", "download", "prometheus"], directory, "apt-get download prometheus")
        debs = sorted(directory.glob("prometheus_*.deb"))
        if not debs:
            raise ImageError(
                f"apt-get download left no prometheus_*.deb in {directory}",
                "download Debian's prometheus package into that directory by hand",
            )
    deb = debs[-1]
    extract = directory / deb.stem
    binaries = [extract / "usr" / "bin" / name for name in NAMES]
    if not all(p.is_file() for p in binaries):
        shutil.rmtree(extract, ignore_errors=True)
        _run(["dpkg-deb", "-x", str(deb), str(extract)], directory, "dpkg-deb -x")
    if not all(p.is_file() for p in binaries):
        raise ImageError(
            f"{deb.name} holds no usr/bin/prometheus and usr/bin/promtool",
            f"remove {deb} so that a fresh one is downloaded",
        )
    return HostBinaries(binaries[0], binaries[1], f"deb:{deb.name}")


def host_binaries(cache_dir: Path) -> HostBinaries:
    found = installed()
    if found is not None:
        return found
    return from_deb(cache_dir)


def _runs(path: Path) -> bool:
    try:
        proc = subprocess.run(
            [str(path), "--version"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageError(
            f"{what} failed: {exc}",
            "install Debian's prometheus package on the host (`apt-get install prometheus`)",
        ) from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise ImageError(
            f"{what} failed (exit code {proc.returncode}): {tail}",
            "install Debian's prometheus package on the host (`apt-get install prometheus`), "
            "or run `apt-get update` first",
        )
