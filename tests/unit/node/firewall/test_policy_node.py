"""Node side: the firewall's drop counters from nft's JSON, and the trust center's scope."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from testbed.node import netns
from testbed.node.errors import ConfigError, NetSetupError
from testbed.node.firewall.firewall import PolicyFirewall
from testbed.node.firewall.ruleset import parse, render
from testbed.node.logs import EventLog
from testbed.node.trust_center.scope import parse_scope, visible

POLICY = json.dumps(
    {
        "rules": [
            {"label": "no-lamps", "allow": False, "from": ["fd00::1"], "to": ["fd00::2"]},
            {"label": "ok", "allow": True, "from": ["fd00::1"], "to": ["fd00::3"]},
        ],
        "default": "default-deny",
    }
)


def fake_nft(tmp_path: Path, listing: dict[str, object], rc: int = 0) -> tuple[str, ...]:
    """An ``nft`` that records its stdin and prints ``listing`` for -j."""
    script = tmp_path / "nft.py"
    script.write_text(
        "import sys, json\n"
        f"out = {json.dumps(json.dumps(listing))}\n"
        "if '-j' in sys.argv: print(out)\n"
        f"else: open({str(tmp_path / 'stdin')!r}, 'w').write(sys.stdin.read())\n"
        f"sys.exit({rc})\n"
    )
    return (sys.executable, str(script))


def counters(**packets: int) -> dict[str, object]:
    return {
        "nftables": [
            {"metainfo": {"json_schema_version": 1}},
            *(
                {"counter": {"family": "inet", "table": "tb_policy", "name": n, "packets": p}}
                for n, p in packets.items()
            ),
        ]
    }


def own() -> netns.Namespace:
    return netns.Namespace(True, "test: a namespace of its own")


def test_drop_counters_by_rule(tmp_path: Path) -> None:
    nft = fake_nft(tmp_path, counters(r0=7, r_default=3, r_spoofed=2))
    firewall = PolicyFirewall(parse(POLICY), EventLog(logging.getLogger("t")), nft)
    asyncio.run(firewall.start(own))
    loaded = (tmp_path / "stdin").read_text()
    assert "delete table inet tb_policy" in loaded and 'counter name "r0" drop' in loaded
    registry = CollectorRegistry()
    firewall.register_metrics(registry)
    name = "testbed_policy_dropped_packets_total"
    assert registry.get_sample_value(name, {"rule": "no-lamps"}) == 7
    assert registry.get_sample_value(name, {"rule": "default-deny"}) == 3
    assert registry.get_sample_value(name, {"rule": "spoofed-source"}) == 2
    assert registry.get_sample_value(name, {"rule": "ipv4"}) == 0


def test_on_a_host_the_router_leaves_the_firewall_alone(tmp_path: Path) -> None:
    firewall = PolicyFirewall(
        parse(POLICY), EventLog(logging.getLogger("t")), fake_nft(tmp_path, {})
    )
    asyncio.run(firewall.start(lambda: netns.Namespace(False, "test: the host")))
    assert not firewall.installed and not (tmp_path / "stdin").exists()


def test_without_policies_the_router_still_loads_the_guards() -> None:
    from testbed.contracts.node_config import Interface, NodeConfig

    config = NodeConfig(
        run="r", building="b", node="br", role="border_router",
        interfaces=(Interface("mgmt", "fd00:9::10/64"),),
    )  # fmt: skip
    firewall = PolicyFirewall.for_node(config, EventLog(logging.getLogger("t")))
    text = render(firewall.policy)
    assert 'meta nfproto ipv4 counter name "r_ipv4" drop' in text
    assert firewall.policy.counters()["r_spoofed"] == "spoofed-source"
    assert 'ip6 saddr fd00:9::/64 counter name "r_mgmt" drop' in text
    assert "r_default" not in text  # no policies: what passes the guards is forwarded


def test_a_ruleset_the_kernel_refuses_stops_the_router(tmp_path: Path) -> None:
    firewall = PolicyFirewall(
        parse(POLICY), EventLog(logging.getLogger("t")), fake_nft(tmp_path, {}, rc=1)
    )
    with pytest.raises(NetSetupError):
        asyncio.run(firewall.start(own))


def test_bad_attribute_is_a_config_error() -> None:
    from testbed.contracts.node_config import NodeConfig

    config = NodeConfig.from_dict(
        {
            "run": "r",
            "building": "b",
            "node": "br1",
            "role": "border_router",
            "interfaces": [],
            "attributes": {"policy-forward": "[]"},
        }
    )
    with pytest.raises(ConfigError):
        PolicyFirewall.for_node(config, EventLog(logging.getLogger("t")))


def test_scope() -> None:
    scope = parse_scope('{"backend-hvac": ["ACME-1"]}')
    assert visible(scope, "backend-hvac", "ACME-1")
    assert not visible(scope, "backend-hvac", "LUMINA-2")
    assert visible(scope, "backend", "LUMINA-2")  # not restricted
    assert parse_scope(None) == {}
    with pytest.raises(ConfigError):
        parse_scope("[1, 2]")


def test_the_shapers_ingress_counts_as_its_link_even_before_it_runs(tmp_path: Path) -> None:
    """`testbed link set` may start the user-space shaper later: its TUN is allowed from the
    start (a router that dropped what the shaper hands on cut the link off)."""
    from testbed.node.firewall.firewall import interface_sources

    ip = tmp_path / "ip"
    ip.write_text(
        "#!/bin/sh\ncat <<'EOF'\n"
        "fd00:0:0:1::/64 dev eth1 proto kernel metric 256 pref medium\n"
        "fd00:0:0:2::/64 dev eth2 proto kernel metric 256 pref medium\n"
        "EOF\n"
    )
    ip.chmod(0o755)
    links = {"backbone": "fd00:0:0:1::/64", "internet": "fd00:0:0:2::/64"}
    log = EventLog(logging.getLogger("t"))
    sources = dict(asyncio.run(interface_sources(log, links, (str(ip),))))
    assert sources["shp-internet-i"] == sources["eth2"] == ("fd00:0:0:2::/64",)
    assert sources["shp-backbone-i"] == ("fd00:0:0:1::/64",)
