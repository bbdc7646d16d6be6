"""The proxy's ports on the router, open to the building's backends only (nftables, input).

    table inet tb_proxy {
      counter r_proxy { }
      chain input {
        type filter hook input priority 0; policy accept;
        udp dport { 5683, 5684 } ip6 saddr { B1, B2 } accept
        udp dport { 5683, 5684 } counter name "r_proxy" drop
      }
    }

Installed by the proxy when it starts, so the router's proxy ports are reachable from the
backends exactly while the proxy is on (off: no table, and nothing listens). Only the input
hook: the proxy's legs end and start at the router, so the forward policy
(testbed.node.firewall, its own table) is not involved, and the proxy's requests to the things
are the router's own output. The proxy refuses other sources itself as well (4.03), so that it
holds without nftables too (unit tests on loopback).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable, Sequence

from testbed.node.errors import NetSetupError
from testbed.node.logs import EventLog
from testbed.node.netsetup import load_nft

TABLE = "tb_proxy"
COUNTER = "r_proxy"
NFT_TIMEOUT = 5.0


def render(ports: Iterable[int], sources: Iterable[str]) -> str:
    port_set = "{ " + ", ".join(str(p) for p in sorted(set(ports))) + " }"
    addresses = sorted({str(ipaddress.IPv6Address(s)) for s in sources})
    lines = [
        f"table inet {TABLE} {{",
        f"  counter {COUNTER} {{ }}",
        "  chain input {",
        "    type filter hook input priority 0; policy accept;",
    ]
    if addresses:
        lines.append(f"    udp dport {port_set} ip6 saddr {{ {', '.join(addresses)} }} accept")
    lines += [f'    udp dport {port_set} counter name "{COUNTER}" drop', "  }", "}"]
    return "\n".join(lines) + "\n"


async def install(
    ports: Iterable[int], sources: Iterable[str], log: EventLog, nft: Sequence[str] = ("nft",)
) -> None:
    """Load the table (replacing an older one); NetSetupError when nftables refuses."""
    text = f"table inet {TABLE} {{ }}\ndelete table inet {TABLE}\n" + render(ports, sources)
    try:
        code, err = await load_nft(nft, text, NFT_TIMEOUT)
    except FileNotFoundError:
        code, err = 127, "no nft command"
    if code != 0:
        raise NetSetupError(
            "cannot restrict the proxy ports to the backends: " + err[:300],
            "the border router needs CAP_NET_ADMIN and nftables in its kernel",
        )
    log.info("proxy.firewall_installed", table=TABLE)


def dropped(nft: Sequence[str] = ("nft",)) -> int | None:
    """Packets to the proxy ports from non-backends dropped so far (None: not readable)."""
    try:
        done = subprocess.run(
            [*nft, "-j", "list", "counter", "inet", TABLE, COUNTER],
            capture_output=True,
            timeout=2.0,
            check=True,
        )
        entries = json.loads(done.stdout)["nftables"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None
    for entry in entries:
        counter = entry.get("counter") if isinstance(entry, dict) else None
        if isinstance(counter, dict) and counter.get("name") == COUNTER:
            return int(counter.get("packets", 0))
    return None
