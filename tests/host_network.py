"""What the host's network looks like, to prove that tests and benchmarks leave it alone.

Compared: the IPv4 and IPv6 routes of the main table, and the nftables ruleset (or, without
nft, the iptables-save output), each without what the Docker daemon manages while containers
and networks come and go (routes on its bridges and veths, its chains and tables): those change
with every run of any user of the daemon and are Docker's, not ours. Everything else must be
byte for byte the same; a default route that vanished or a table ``testbed_mgmt``/``tb_policy``
that appeared shows up as a difference.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

# docker_gwbridge and the DOCKER-INGRESS chains: Swarm mode (a test may `docker swarm init`).
DOCKER_DEVICE = re.compile(r"\bdev (br-[0-9a-f]+|docker\w*|veth\w+)\b")
DOCKER_RULE = re.compile(r"DOCKER|docker\w*|br-[0-9a-f]{12}|^-A POSTROUTING .*-j MASQUERADE$")


@dataclass(frozen=True)
class HostNetwork:
    routes4: tuple[str, ...]
    routes6: tuple[str, ...]
    firewall: tuple[str, ...]

    def differences(self, later: HostNetwork) -> list[str]:
        out = []
        for name in ("routes4", "routes6", "firewall"):
            before, after = set(getattr(self, name)), set(getattr(later, name))
            out += [f"{name}: lost {line!r}" for line in sorted(before - after)]
            out += [f"{name}: gained {line!r}" for line in sorted(after - before)]
        return out


def _lines(cmd: list[str]) -> tuple[str, ...] | None:
    if shutil.which(cmd[0]) is None:
        return None
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return None
    return tuple(line.rstrip() for line in done.stdout.splitlines() if line.strip())


def _routes(family: str) -> tuple[str, ...]:
    lines = _lines(["ip", family, "route", "show", "table", "main"]) or ()
    # "expires 123sec" (RA-learnt routes) counts down: not a change.
    return tuple(
        re.sub(r" expires \d+sec", "", line) for line in lines if not DOCKER_DEVICE.search(line)
    )


def _firewall() -> tuple[str, ...]:
    ruleset = _lines(["nft", "list", "ruleset"])
    if ruleset is None:
        ruleset = _lines(["iptables-save"]) or ()
        ruleset += _lines(["ip6tables-save"]) or ()
    return tuple(
        # counters move with traffic: iptables-save prints them as [packets:bytes]
        re.sub(r"\[\d+:\d+\]", "", line)
        for line in ruleset
        if not DOCKER_RULE.search(line) and not line.startswith("#")
    )


def snapshot() -> HostNetwork:
    return HostNetwork(_routes("-4"), _routes("-6"), _firewall())
