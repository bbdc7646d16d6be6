"""A tiny root file system for the VM, as a gzipped newc cpio written here (no cpio binary).

Contents: busybox (static, from busybox-static) as /bin/busybox with its applets installed at
boot; iproute2's ``tc`` and ``ip`` with every library ``ldd`` lists; the kernel modules; /init
and the scripts the test generated; /dev/console, so that /init's output reaches the serial
console.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import stat
import subprocess
from pathlib import Path

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


class Missing(Exception):
    """A host tool the image needs is not installed (the reason is the message)."""


def _entry(out: io.BytesIO, ino: int, name: str, mode: int, data: bytes = b"",
           rdev: tuple[int, int] = (0, 0)) -> None:  # fmt: skip
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = b"070701" + b"".join(f"{f:08x}".encode() for f in fields)
    out.write(header + encoded)
    out.write(b"\0" * (-(len(header) + len(encoded)) % 4))
    out.write(data)
    out.write(b"\0" * (-len(data) % 4))


def cpio(files: dict[str, bytes], executables: set[str], symlinks: dict[str, str]) -> bytes:
    """newc archive: directories implied by the paths, then files, symlinks, /dev/console."""
    out = io.BytesIO()
    dirs = sorted({str(p) for f in [*files, *symlinks] for p in Path(f).parents if str(p) != "."})
    dirs += [d for d in ("dev", "proc", "sys", "run", "tmp") if d not in dirs]
    ino = 1
    for d in sorted(set(dirs), key=lambda p: p.count("/")):
        _entry(out, ino, d, stat.S_IFDIR | 0o755)
        ino += 1
    for name, data in sorted(files.items()):
        _entry(out, ino, name, stat.S_IFREG | (0o755 if name in executables else 0o644), data)
        ino += 1
    for name, target in sorted(symlinks.items()):
        _entry(out, ino, name, stat.S_IFLNK | 0o777, target.encode())
        ino += 1
    _entry(out, ino, "dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    _entry(out, ino + 1, "TRAILER!!!", 0)
    return gzip.compress(out.getvalue(), compresslevel=6)


def busybox() -> Path:
    for path in BUSYBOX_PATHS:
        p = Path(path)
        if p.exists() and b"libc.so" not in p.read_bytes()[:200_000]:
            return p
    raise Missing("no static busybox (Debian package busybox-static)")


def with_libraries(binary: str) -> dict[str, Path]:
    """The binary and what ``ldd`` lists for it, by their paths in the image."""
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")
    if path is None:
        raise Missing(f"no {binary} on this host (Debian package iproute2)")
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    found = {path.lstrip("/"): Path(path)}
    for line in out.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            lib = Path(match.group(1))
            found[str(lib).lstrip("/")] = lib.resolve()
    return found


def build(modules: list[Path], scripts: dict[str, str], into: Path) -> Path:
    files: dict[str, bytes] = {"bin/busybox": busybox().read_bytes()}
    executables = {"bin/busybox", "init"}
    for binary in ("tc", "ip"):
        for name, path in with_libraries(binary).items():
            files[name] = path.read_bytes()
            executables.add(name)
    for module in modules:
        files[f"modules/{module.name}"] = module.read_bytes()
    for name, text in scripts.items():
        files[name] = text.encode()
        executables.add(name)
    # tc/ip live in /usr/sbin or /sbin on the host; the scripts call them by name via PATH.
    symlinks = {"bin/sh": "busybox", "var/run": "../run"}
    image = into / "initrd.cpio.gz"
    image.write_bytes(cpio(files, executables, symlinks))
    return image
