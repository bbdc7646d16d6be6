"""Give up network privileges once the node's network is set up.

A node needs CAP_NET_ADMIN to build its network (routes, the mgmt filter, a radio TUN); most
roles never need it again. Kept, it would let the role's code, or anything that code starts,
rewrite the node's routes and filters mid-experiment. So after set-up the node removes the
capabilities its role does not need at run time from every set of its own (bounding, ambient,
effective, permitted, inheritable): no process it starts can get them back, because exec(2)
cannot raise a capability above the bounding set.

What each role keeps (``RUNTIME_CAPABILITIES``) and why:
- border_router: CAP_NET_ADMIN (``testbed link set`` changes tc/netem and the user-space
  shaper's redirects live; the policy's drop counters are read with ``nft list counters``) and
  CAP_NET_RAW (the user-space shaper sends on AF_PACKET sockets).
- thing, trust_center, internet_host (backend, vendor cloud, attacker): nothing of the two.

Capabilities are per thread. The drop runs on the event loop's thread; threads that exist
already (the default executor's) are replaced, and ``verify`` reads every task's status from
/proc so that a thread still holding a dropped capability is reported rather than assumed away.

Only the standard library (ctypes): prctl(2) and capset(2) are two calls; python-prctl is not
packaged for this image.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from pathlib import Path

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
NAMES = {CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_NET_RAW: "CAP_NET_RAW"}
NETWORK = (CAP_NET_ADMIN, CAP_NET_RAW)
RUNTIME_CAPABILITIES: dict[str, tuple[int, ...]] = {
    "border_router": (CAP_NET_ADMIN, CAP_NET_RAW),
    "thing": (),
    "trust_center": (),
    "internet_host": (),
}

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_LOWER = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


class CapabilityError(OSError):
    """A capability could not be dropped (or is still held after the drop)."""


def _libc() -> ctypes.CDLL:
    # glibc's name first: find_library runs ldconfig in a subprocess (and imports shutil and
    # the compression modules), start-up time spent in every node.
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c") or "libc.so.6", use_errno=True)


def to_drop(role: str) -> tuple[int, ...]:
    """The network capabilities ``role`` does not keep (unknown roles keep nothing)."""
    keep = RUNTIME_CAPABILITIES.get(role, ())
    return tuple(c for c in NETWORK if c not in keep)


def drop(capabilities: Iterable[int]) -> None:
    """Remove ``capabilities`` from the calling thread's five sets. Raises CapabilityError."""
    caps = tuple(capabilities)
    if not caps:
        return
    libc = _libc()
    for cap in caps:
        # Bounding set first: needs CAP_SETPCAP, which we still have (it is in Docker's default
        # set); EINVAL means the kernel does not know the capability, EPERM that we lack SETPCAP.
        held = libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1
        if held and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            name = NAMES.get(cap, str(cap))
            raise CapabilityError(
                err, f"cannot drop {name} from the bounding set: {os.strerror(err)}"
            )
        libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, cap, 0, 0)  # EINVAL on old kernels: ok
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise CapabilityError(err, f"capget: {os.strerror(err)}")
    for cap in caps:
        word, bit = divmod(cap, 32)
        mask = ~(1 << bit) & 0xFFFFFFFF
        data[word].effective &= mask
        data[word].permitted &= mask
        data[word].inheritable &= mask
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise CapabilityError(err, f"capset: {os.strerror(err)}")


def held(status: str) -> dict[str, int]:
    """The capability masks of one /proc/<pid>/status text: {"CapEff": ..., "CapBnd": ...}."""
    out = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            out[key] = int(value.strip(), 16)
    return out


def holders(capabilities: Iterable[int], proc: Path = Path("/proc/self/task")) -> list[str]:
    """Threads of this process that still hold any of ``capabilities`` in any set."""
    mask = sum(1 << c for c in capabilities)
    out = []
    for task in sorted(proc.iterdir()):
        try:
            sets = held((task / "status").read_text())
        except OSError:
            continue  # the thread ended meanwhile
        if any(value & mask for value in sets.values()):
            try:
                name = (task / "comm").read_text().strip()
            except OSError:
                name = "?"
            out.append(f"{task.name} ({name})")
    return out
