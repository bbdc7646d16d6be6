"""Network setup: sysctls and routes, with stand-ins for /proc/sys and ip(8)."""

from __future__ import annotations

import asyncio
import io
import stat
import subprocess
from pathlib import Path

import pytest

from testbed.contracts.node_config import Interface, NodeConfig, Route
from testbed.node import logs, netns, netsetup
from testbed.node.errors import ConfigError, NetSetupError

LOG = logs.setup("n", "r", stream=io.StringIO())


def fake_ip(tmp_path: Path, script: str) -> tuple[str, ...]:
    """An 'ip' command that runs ``script`` (sh) with a call counter in $COUNT."""
    path = tmp_path / "ip"
    counter = tmp_path / "count"
    counter.write_text("0")
    path.write_text(
        "#!/bin/sh\n"
        f"COUNT=$(( $(cat {counter}) + 1 )); echo $COUNT > {counter}\n"
        f'echo "$@" >> {tmp_path / "calls"}\n' + script
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return (str(path),)


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def test_sysctl_unchanged_set_and_skipped(tmp_path: Path) -> None:
    knob = tmp_path / "disable_ipv6"
    knob.write_text("0\n")
    assert netsetup.set_sysctl(knob, "0", LOG) == "unchanged"
    knob.write_text("1\n")
    assert netsetup.set_sysctl(knob, "0", LOG) == "set"
    assert knob.read_text() == "0\n"
    assert netsetup.set_sysctl(tmp_path / "absent" / "forwarding", "1", LOG) == "skipped"


ROUTE = Route(prefix="fd00:2::/64", via="fd00:1::1")


def test_route_retried_until_the_next_hop_is_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(netsetup, "ROUTE_RETRY_DELAY", 0.01)
    ip = fake_ip(
        tmp_path,
        'if [ $COUNT -lt 3 ]; then echo "Error: Nexthop has invalid gateway." >&2; exit 2; fi\n',
    )
    assert asyncio.run(netsetup.install_route(ROUTE, LOG, ip)) == "installed"
    assert calls(tmp_path) == ["-6 route replace fd00:2::/64 via fd00:1::1"] * 3


def test_route_not_permitted_is_skipped_without_retry(tmp_path: Path) -> None:
    ip = fake_ip(tmp_path, 'echo "RTNETLINK answers: Operation not permitted" >&2; exit 2\n')
    assert asyncio.run(netsetup.install_route(ROUTE, LOG, ip)) == "skipped"
    assert len(calls(tmp_path)) == 1


def test_route_that_never_works_is_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netsetup, "ROUTE_RETRY_DELAY", 0.01)
    ip = fake_ip(tmp_path, 'echo "Error: Nexthop has invalid gateway." >&2; exit 2\n')
    with pytest.raises(NetSetupError, match="invalid gateway"):
        asyncio.run(netsetup.install_route(ROUTE, LOG, ip, deadline=0.2))


def test_missing_ip_command_is_skipped() -> None:
    assert asyncio.run(netsetup.install_route(ROUTE, LOG, ("/nonexistent/ip",))) == "skipped"


@pytest.mark.parametrize(
    "route",
    [Route("fd00::/64", "-a"), Route("--help", "fd00::1"), Route("10.0.0.0/8", "10.0.0.1")],
)
def test_invalid_routes_are_config_errors(route: Route) -> None:
    with pytest.raises(ConfigError):
        netsetup.validate_route(route)


def test_setup_network_reports_what_it_did(tmp_path: Path) -> None:
    (tmp_path / "disable_ipv6").write_text("1\n")
    (tmp_path / "forwarding").write_text("0\n")
    ip = fake_ip(tmp_path, "exit 0\n")
    config = NodeConfig(
        run="r",
        building="b",
        node="br",
        role="border_router",
        interfaces=(Interface("mgmt", "::1/128"),),
        routes=(ROUTE, Route("fd00:3::/64", "fd00:1::2")),
        forwarding=True,
    )
    report = asyncio.run(netsetup.setup_network(config, LOG, tmp_path, ip, namespace=own))
    assert report == {
        "ipv6": "set",
        "forwarding": "set",
        "routes": {"fd00:2::/64": "installed", "fd00:3::/64": "installed"},
    }
    assert (tmp_path / "forwarding").read_text() == "1\n"


def own() -> netns.Namespace:
    return netns.Namespace(True, "test: a namespace of its own")


def host() -> netns.Namespace:
    return netns.Namespace(False, "test: the host's namespace")


def test_isolation_is_refused_outside_an_own_namespace(tmp_path: Path) -> None:
    """The node process on a host must not delete the host's default routes or filter it."""
    (tmp_path / "disable_ipv6").write_text("1\n")
    ip = fake_ip(tmp_path, "exit 0\n")
    config = NodeConfig(
        run="r", building="b", node="t", role="thing",
        interfaces=(Interface("mgmt", "::1/128"),), routes=(ROUTE,), isolate=True,
    )  # fmt: skip
    with pytest.raises(NetSetupError, match="refusing to isolate"):
        asyncio.run(netsetup.setup_network(config, LOG, tmp_path, ip, namespace=host))
    plain = NodeConfig(run="r", building="b", node="t", role="thing", interfaces=config.interfaces)
    report = asyncio.run(netsetup.setup_network(plain, LOG, tmp_path, ip, namespace=host))
    assert report == {"skipped": "test: the host's namespace"}
    assert not (tmp_path / "calls").exists()  # no ip(8) call at all
    assert (tmp_path / "disable_ipv6").read_text() == "1\n"  # no sysctl written


def fake_nft(tmp_path: Path, rc: int) -> tuple[str, ...]:
    path = tmp_path / "nft"
    path.write_text(f"#!/bin/sh\ncat > {tmp_path / 'ruleset'}\necho 'Error: nope' >&2\nexit {rc}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return (str(path),)


MGMT = NodeConfig(
    run="r", building="b", node="t", role="thing", interfaces=(Interface("mgmt", "fd00:9::5/64"),)
)
ADDR_SHOW = 'echo "7: eth0    inet6 fd00:9::5/64 scope global \\       valid_lft forever"\n'


def test_mgmt_filter_both_directions_without_router_advertisements(tmp_path: Path) -> None:
    ip = fake_ip(tmp_path, ADDR_SHOW)
    done = asyncio.run(netsetup.filter_mgmt(MGMT, LOG, ip, fake_nft(tmp_path, 0)))
    assert done == "only tcp/9180 on eth0"
    ruleset = (tmp_path / "ruleset").read_text()
    assert 'oifname "eth0" drop' in ruleset and 'iifname "eth0" drop' in ruleset
    assert 'oifname "eth0" ct state established,related accept' in ruleset
    assert "router-advert" not in ruleset  # RAs on mgmt are dropped, not accepted


def test_a_thing_hosts_mgmt_filter_lets_scrapes_reach_each_packed_thing(tmp_path: Path) -> None:
    """Prometheus scrapes each packed thing at its own port on the thing host's mgmt address."""
    ip = fake_ip(tmp_path, ADDR_SHOW)
    nft = fake_nft(tmp_path, 0)
    done = asyncio.run(netsetup.filter_mgmt(MGMT, LOG, ip, nft, metrics_ports=[9182, 9181]))
    assert done == "only tcp/9180-9182 (3 ports) on eth0"
    ruleset = (tmp_path / "ruleset").read_text()
    assert 'iifname "eth0" tcp dport { 9180, 9181, 9182 } accept' in ruleset
    assert ruleset.count("dport") == 1  # nothing else comes in


@pytest.mark.parametrize("failure", ["nft refuses", "no interface", "no nft"])
def test_mgmt_filter_fails_closed(tmp_path: Path, failure: str) -> None:
    """A node whose mgmt filter is not in place must not run as if it were isolated."""
    ip = fake_ip(tmp_path, "exit 0\n" if failure == "no interface" else ADDR_SHOW)
    nft = ("/nonexistent/nft",) if failure == "no nft" else fake_nft(tmp_path, 1)
    with pytest.raises(NetSetupError, match="cannot filter mgmt"):
        asyncio.run(netsetup.filter_mgmt(MGMT, LOG, ip, nft))


def test_nft_accepts_the_mgmt_filter(tmp_path: Path) -> None:
    path = tmp_path / "mgmt.nft"
    path.write_text(
        netsetup.mgmt_ruleset("eth0", 9180)
        + netsetup.mgmt_ruleset("eth1", 9180, [9181]).replace("testbed_mgmt", "testbed_mgmt_packed")
    )
    try:
        done = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no nft here")
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN here")
    assert done.returncode == 0, done.stderr
