"""Is this process in a network namespace of its own (not the host's)?

The node process changes routes, sysctls and nftables of the namespace it runs in. In a
container that namespace is the node's; on a developer's host (a unit test, a benchmark that
starts the real node process) it is the host's, and isolating it would delete the host's default
routes and filter its interfaces. So every such change first asks :func:`check`.

How it knows, and why this way: the kernel registers some ``net.core`` sysctls only for the
initial network namespace (``netdev_max_backlog``, ``bpf_jit_enable``, ...; a namespace created
by Docker, ``unshare -n`` or ``ip netns`` shows none of them in /proc/sys/net/core, which always
describes the reader's own namespace). That holds whatever the container runtime, needs no
marker that a runtime might forget to set, and is not fooled by a container started with
``--network host`` (it sees the host's namespace and its sysctls). Second, where /proc/1 is a
process other than ourselves (no PID namespace, e.g. ``unshare -n`` on a host), sharing its
network namespace means sharing the host's (checked where /proc/1 may be inspected). An
unreadable /proc/sys/net/core counts as "not known", and not knowing is a refusal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# net.core sysctls of the initial network namespace only (net/core/sysctl_net_core.c registers
# net_core_table for init_net alone; netns_core_table, e.g. somaxconn, is per namespace).
INIT_ONLY = ("netdev_max_backlog", "bpf_jit_enable", "netdev_budget", "dev_weight")


@dataclass(frozen=True)
class Namespace:
    own: bool
    reason: str


def check(proc: Path = Path("/proc")) -> Namespace:
    core = proc / "sys" / "net" / "core"
    try:
        present = [n for n in INIT_ONLY if (core / n).exists()]
        core_listed = core.is_dir()
    except OSError as exc:
        return Namespace(False, f"cannot read {core}: {exc.strerror or exc}")
    if not core_listed:
        return Namespace(False, f"{core} is not readable: cannot tell the namespace")
    if present:
        return Namespace(False, f"{core} has {present[0]}, which only the host's namespace has")
    try:
        mine = os.stat(proc / "self" / "ns" / "net")
        first = os.stat(proc / "1" / "ns" / "net")
    except OSError:
        # PID 1 outside our user or PID namespace may not be inspectable (EACCES): the kernel's
        # answer above stands on its own; this comparison can only add a refusal.
        return Namespace(True, "a network namespace of its own")
    if os.getpid() != 1 and (mine.st_dev, mine.st_ino) == (first.st_dev, first.st_ino):
        return Namespace(False, "this process shares the network namespace of PID 1")
    return Namespace(True, "a network namespace of its own")
