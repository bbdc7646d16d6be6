"""Network setup at node start: IPv6 on, forwarding (routers), static routes, isolation.

Docker is normally asked for these sysctls when the container is created; doing it here too
makes the node correct on runtimes that ignore them. Where the node is not allowed to (read-only
/proc/sys, no CAP_NET_ADMIN) each step is skipped with a warning instead of failing: the host
side can see the outcome in /state under "network".

Nothing here touches a namespace that is not the node's own (testbed.node.netns): on a host
(a unit test or benchmark running the node process) every step is skipped, and a config that
asks for isolation is refused with an error, since isolating would delete the host's default
routes and filter its interfaces.

A route that *is* permitted but keeps failing is fatal, because a node without its routes makes
reachability experiments silently wrong. So is a mgmt filter that cannot be loaded: a node that
believes it is isolated while it is not would measure paths that do not exist in the building.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from testbed.contracts.node_config import NodeConfig, Route
from testbed.node import netns
from testbed.node.errors import ConfigError, NetSetupError
from testbed.node.logs import EventLog

SYSCTL_IPV6_ALL = Path("/proc/sys/net/ipv6/conf/all")
IP_COMMAND: tuple[str, ...] = ("ip",)
# Routes via a neighbour fail while our own address on that link is still tentative (DAD takes
# about a second with the default settings); a few seconds covers it with margin.
ROUTE_DEADLINE = 5.0
ROUTE_RETRY_DELAY = 0.2
IP_TIMEOUT = 5.0

# ip(8) messages that mean "you may not", as opposed to "not yet".
_NOT_PERMITTED = ("operation not permitted", "permission denied", "read-only file system")


def set_sysctl(path: Path, value: str, log: EventLog) -> str:
    """Write ``value`` unless it is already there. Returns "unchanged", "set" or "skipped"."""
    try:
        if path.read_text().strip() == value:
            return "unchanged"  # no write: also leaves a developer host untouched in tests
        path.write_text(value + "\n")
    except OSError as exc:
        log.warning("netsetup.sysctl_skipped", path=str(path), value=value, error=str(exc))
        return "skipped"
    log.info("netsetup.sysctl_set", path=str(path), value=value)
    return "set"


def validate_route(route: Route) -> None:
    """Reject anything that is not an IPv6 prefix and address (they become ip(8) arguments)."""
    try:
        ipaddress.IPv6Network(route.prefix)
        ipaddress.IPv6Address(route.via.split("%")[0])
    except ValueError as exc:
        raise ConfigError(
            f"invalid route {route.prefix} via {route.via}: {exc}",
            "routes need an IPv6 prefix and an IPv6 next hop",
        ) from exc


async def _run(cmd: Sequence[str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), IP_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"timed out after {IP_TIMEOUT} s"
    return proc.returncode or 0, err.decode(errors="replace").strip()


async def install_route(
    route: Route,
    log: EventLog,
    ip_command: Sequence[str] = IP_COMMAND,
    deadline: float = ROUTE_DEADLINE,
) -> str:
    """``ip -6 route replace PREFIX via VIA``, retried until ``deadline`` s.

    Returns "installed" or "skipped"; raises NetSetupError if it never succeeds.
    """
    validate_route(route)
    cmd = [*ip_command, "-6", "route", "replace", route.prefix, "via", route.via]
    give_up = time.monotonic() + deadline
    attempts = 0
    while True:
        attempts += 1
        try:
            code, err = await _run(cmd)
        except FileNotFoundError:
            log.warning("netsetup.route_skipped", prefix=route.prefix, error="no ip command")
            return "skipped"
        if code == 0:
            log.info(
                "netsetup.route_installed", prefix=route.prefix, via=route.via, attempts=attempts
            )
            return "installed"
        if any(marker in err.lower() for marker in _NOT_PERMITTED):
            log.warning("netsetup.route_skipped", prefix=route.prefix, via=route.via, error=err)
            return "skipped"
        if time.monotonic() >= give_up:
            raise NetSetupError(
                f"cannot install route {route.prefix} via {route.via}: {err}",
                "is the next hop on a directly attached network of this node?",
            )
        log.debug("netsetup.route_retry", prefix=route.prefix, error=err, attempt=attempts)
        await asyncio.sleep(ROUTE_RETRY_DELAY)


async def setup_network(
    config: NodeConfig,
    log: EventLog,
    sysctl_dir: Path = SYSCTL_IPV6_ALL,
    ip_command: Sequence[str] = IP_COMMAND,
    route_deadline: float = ROUTE_DEADLINE,
    namespace: Callable[[], netns.Namespace] = netns.check,
    metrics_ports: Sequence[int] = (),
) -> dict[str, object]:
    """Apply the config's network settings; returns what was done (shown in /state).
    ``metrics_ports``: more ports the mgmt filter lets scrapes reach besides the node's own
    (a thing host's packed things)."""
    where = namespace()
    if not where.own:
        if config.isolate:
            raise NetSetupError(
                f"refusing to isolate the network: not in a network namespace of its own "
                f"({where.reason}); isolating would delete this host's default routes",
                "run the node in its container, or on a host inside `unshare -n`",
            )
        log.warning("netsetup.skipped", reason=where.reason)
        return {"skipped": where.reason}
    report: dict[str, object] = {"ipv6": set_sysctl(sysctl_dir / "disable_ipv6", "0", log)}
    if config.forwarding:
        report["forwarding"] = set_sysctl(sysctl_dir / "forwarding", "1", log)
    # Concurrently: the routes are independent and each may wait out DAD on its own link.
    outcomes = await asyncio.gather(
        *(install_route(r, log, ip_command, route_deadline) for r in config.routes)
    )
    report["routes"] = {r.prefix: o for r, o in zip(config.routes, outcomes, strict=True)}
    if config.isolate:
        report["default_routes_removed"] = await remove_default_routes(log, ip_command)
        report["mgmt_filter"] = await filter_mgmt(
            config, log, ip_command, metrics_ports=metrics_ports
        )
    return report


NFT_COMMAND = ("nft",)


def mgmt_ruleset(ifname: str, metrics_port: int, more_ports: Sequence[int] = ()) -> str:
    """The node's mgmt filter, both directions, IPv4 and IPv6 (table ``inet``).

    In: metrics scrapes (its metrics port, and ``more_ports``: a thing host's packed things)
    and neighbour discovery; router advertisements are dropped (the plan's
    routes are static: an RA from any peer on mgmt would add a default route to the host).
    Out: replies of accepted connections and neighbour discovery only, so that nothing the
    node starts (a request to Prometheus's API, to another node, or to the host through a
    default route via mgmt) leaves on mgmt.
    """
    nd = "nd-neighbor-solicit, nd-neighbor-advert"
    every = sorted({metrics_port, *more_ports})
    ports = str(every[0]) if len(every) == 1 else "{ " + ", ".join(map(str, every)) + " }"
    return (
        "table inet testbed_mgmt {\n"
        " chain input {\n"
        "  type filter hook input priority 0; policy accept;\n"
        f'  iifname "{ifname}" ct state established,related accept\n'
        f'  iifname "{ifname}" tcp dport {ports} accept\n'
        f'  iifname "{ifname}" icmpv6 type {{ {nd} }} accept\n'
        f'  iifname "{ifname}" drop\n'
        " }\n"
        " chain output {\n"
        "  type filter hook output priority 0; policy accept;\n"
        f'  oifname "{ifname}" ct state established,related accept\n'
        f'  oifname "{ifname}" icmpv6 type {{ {nd} }} accept\n'
        f'  oifname "{ifname}" drop\n'
        " }\n"
        "}\n"
    )


async def filter_mgmt(
    config: NodeConfig,
    log: EventLog,
    ip_command: Sequence[str] = IP_COMMAND,
    nft_command: Sequence[str] = NFT_COMMAND,
    metrics_ports: Sequence[int] = (),
) -> str:
    """Filter the mgmt interface (``mgmt_ruleset``); NetSetupError when that cannot be done.

    Every node sits on mgmt, so without this a thing could talk to a trust center, to another
    thing or to Prometheus directly, past the border router and the radio medium, and an
    experiment would measure a path that does not exist in the building.
    """
    hint = "the node needs CAP_NET_ADMIN, the ip and nft commands and nftables in its kernel"
    try:
        address = config.address("mgmt")
        code, out = await _run_output([*ip_command, "-6", "-o", "addr", "show"])
    except KeyError as exc:
        raise NetSetupError(f"cannot filter mgmt: {exc.args[0]}", hint) from None
    except FileNotFoundError:
        raise NetSetupError("cannot filter mgmt: no ip command", hint) from None
    ifname = next((line.split()[1] for line in out.splitlines() if f" {address}/" in line), None)
    if code != 0 or ifname is None:
        raise NetSetupError(f"cannot filter mgmt: no interface has {address}", hint)
    try:
        ruleset = mgmt_ruleset(ifname, config.metrics_port, metrics_ports)
        code, err = await load_nft(nft_command, ruleset, IP_TIMEOUT)
    except FileNotFoundError:
        raise NetSetupError("cannot filter mgmt: no nft command", hint) from None
    if code != 0:
        raise NetSetupError("cannot filter mgmt: nft: " + err.strip()[:300], hint)
    ports = sorted({config.metrics_port, *metrics_ports})
    log.info("netsetup.mgmt_filtered", interface=ifname, metrics_ports=ports)
    shown = str(ports[0]) if len(ports) == 1 else f"{ports[0]}-{ports[-1]} ({len(ports)} ports)"
    return f"only tcp/{shown} on {ifname}"


async def load_nft(nft_command: Sequence[str], ruleset: str, timeout: float) -> tuple[int, str]:
    """Load ``ruleset`` with ``nft -f -`` in one transaction: (exit code, its stderr).
    FileNotFoundError when there is no nft command."""
    proc = await asyncio.create_subprocess_exec(
        *nft_command,
        "-f",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(ruleset.encode()), timeout)
    return proc.returncode or 0, err.decode(errors="replace")


async def _run_output(cmd: Sequence[str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await asyncio.wait_for(proc.communicate(), IP_TIMEOUT)
    return proc.returncode or 0, out.decode(errors="replace")


async def remove_default_routes(log: EventLog, ip_command: Sequence[str] = IP_COMMAND) -> int:
    """Delete every IPv4 and IPv6 default route; returns how many were removed."""
    removed = 0
    for family in ("-4", "-6"):
        for _ in range(8):  # a few at most (one per attached network with a gateway)
            try:
                code, _ = await _run([*ip_command, family, "route", "del", "default"])
            except FileNotFoundError:
                log.warning("netsetup.default_route_kept", error="no ip command")
                return removed
            if code != 0:
                break  # none left (or not permitted: logged once below)
            removed += 1
    log.info("netsetup.isolated", default_routes_removed=removed)
    return removed
