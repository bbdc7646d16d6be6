"""Debian's stock kernel for the VM: one package, downloaded by its exact name, cached.

``linux-image-6.1.0-NN-amd64`` ships the vmlinuz we boot and, for that very version, the
modules the test loads (sch_netem, veth, and what the ingress path needs: ifb, sch_ingress,
cls_u32, act_mirred) with their dependencies read from each module's ``depends=`` field (the
package has no modules.dep: depmod runs at install time). Only those files are extracted.
"""

from __future__ import annotations

import lzma
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE_RE = re.compile(r"^(linux-image-6\.1\.0-(\d+)-amd64)\s")
WANTED = ("sch_netem", "veth", "ifb", "sch_ingress", "cls_u32", "act_mirred")


class Unavailable(Exception):
    """The kernel package cannot be had here (the reason is the message)."""


@dataclass(frozen=True)
class Kernel:
    version: str  # 6.1.0-NN-amd64
    vmlinuz: Path
    modules: tuple[Path, ...]  # in load order (dependencies first)


def _newest_package() -> str:
    try:
        out = subprocess.run(
            ["apt-cache", "search", "--names-only", r"^linux-image-6\.1\.0-[0-9]+-amd64$"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"apt-cache search failed: {exc}") from exc
    found = [(int(m.group(2)), m.group(1)) for m in map(PACKAGE_RE.match, out.splitlines()) if m]
    if not found:
        raise Unavailable("apt-cache knows no linux-image-6.1.0-NN-amd64 (run apt-get update)")
    return max(found)[1]


def package(cache: Path) -> Path:
    """A cached .deb if there is one, else the newest one apt knows, downloaded by name."""
    cache.mkdir(parents=True, exist_ok=True)
    cached = sorted(cache.glob("linux-image-6.1.0-*-amd64_*.deb"))
    if cached:
        return cached[-1]
    if shutil.which("apt-get") is None:
        raise Unavailable("no apt-get to download the kernel package")
    name = _newest_package()
    proc = subprocess.run(
        ["apt-get", "download", name], cwd=cache, capture_output=True, text=True, timeout=600
    )
    debs = sorted(cache.glob(f"{name}_*.deb"))
    if proc.returncode != 0 or not debs:
        raise Unavailable(f"apt-get download {name} failed: {proc.stderr.strip()[-300:]}")
    return debs[-1]


def _members(deb: Path, want: set[str], version_hint: str | None, into: Path) -> dict[str, Path]:
    """Extract vmlinuz and the named modules (module name -> file) in one pass over the deb."""
    found: dict[str, Path] = {}
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if not member.isfile():
                continue
            base = Path(name).name
            module = re.sub(r"\.ko(\.xz)?$", "", base) if ".ko" in base else None
            is_kernel = name.startswith("boot/vmlinuz-")
            if not is_kernel and (module is None or module.replace("-", "_") not in want):
                continue
            data = tar.extractfile(member)
            assert data is not None
            content = data.read()
            if base.endswith(".xz"):
                content, base = lzma.decompress(content), base.removesuffix(".xz")
            target = into / ("vmlinuz" if is_kernel else base)
            target.write_bytes(content)
            found["vmlinuz" if is_kernel else module.replace("-", "_")] = target  # type: ignore[union-attr]
            if is_kernel:
                found["version:" + base.removeprefix("vmlinuz-")] = target
    proc.wait()
    return found


def depends(module: Path) -> list[str]:
    """The ``depends=`` field of a module's .modinfo section."""
    match = re.search(rb"(?:^|\0)depends=([^\0]*)\0", module.read_bytes())
    if not match or not match.group(1):
        return []
    return [d.decode().replace("-", "_") for d in match.group(1).split(b",") if d]


def prepare(cache: Path) -> Kernel:
    deb = package(cache)
    into = cache / deb.stem
    marker = into / "ready"
    if not marker.exists():
        if into.exists():
            shutil.rmtree(into)
        into.mkdir(parents=True)
        want = set(WANTED)
        files = _members(deb, want, None, into)
        while True:  # dependencies of what we have that we do not have yet
            missing = {d for m in want if m in files for d in depends(files[m])} - set(files)
            if not missing:
                break
            want |= missing
            files |= _members(deb, missing, None, into)
            if not missing <= set(files):
                raise Unavailable(f"{deb.name} lacks modules {sorted(missing - set(files))}")
        absent = set(WANTED) - set(files)
        if "vmlinuz" not in files or absent:
            raise Unavailable(f"{deb.name} lacks {sorted(absent) or 'vmlinuz'}")
        order: list[str] = []

        def visit(name: str) -> None:
            for dep in depends(files[name]):
                visit(dep)
            if name not in order:
                order.append(name)

        for name in WANTED:
            visit(name)
        version = next(k.split(":", 1)[1] for k in files if k.startswith("version:"))
        (into / "order").write_text("\n".join([version, *order]) + "\n")
        marker.write_text("ok\n")
    version, *order = (into / "order").read_text().split()
    return Kernel(version, into / "vmlinuz", tuple(into / f"{m}.ko" for m in order))
