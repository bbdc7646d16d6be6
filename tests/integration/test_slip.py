"""The SLIP uplink inside the node image, with the board's pseudo-terminal inside the container
too (a pseudo-terminal of the host cannot be passed into a container as a device): the same
exchange as tests/unit/node/radio/test_slip_uplink.py, run by the image's Python with the
capabilities, TUN device and forwarding a border router container gets: prefix request, echoes
both ways through the router's kernel with 600-byte payloads full of END/ESC bytes, refusals
counted, the board's loss reported."""

from __future__ import annotations

import os

import pytest

from tests.unit.node.radio.test_slip_uplink import SCRIPT

pytestmark = pytest.mark.integration


def test_the_slip_uplink_runs_in_the_node_image(docker_client, node_image: str) -> None:  # type: ignore[no-untyped-def]
    name = f"slip-it-{os.getpid()}"
    container = docker_client.containers.run(
        node_image,
        ["python3", "-c", SCRIPT],
        name=name,
        entrypoint=[],
        detach=True,
        cap_add=["NET_ADMIN"],
        devices=["/dev/net/tun:/dev/net/tun"],
        sysctls={"net.ipv6.conf.all.forwarding": "1", "net.ipv6.conf.all.disable_ipv6": "0"},
        environment={"FORWARDING_SET": "1"},
        network_mode="none",
        labels={"testbed.test": "slip"},
    )
    try:
        result = container.wait(timeout=120)
        logs = container.logs().decode(errors="replace")
        assert result["StatusCode"] == 0 and logs.strip().endswith("ok"), logs
    finally:
        container.remove(force=True)


def test_nft_in_the_node_image_takes_a_policy_with_a_boards_prefix(
    docker_client,  # type: ignore[no-untyped-def]
    node_image: str,
) -> None:
    """The policy's sets mix node addresses and a SLIP board's prefix; nft (in the image, the
    host may have none) must accept the ruleset the border router would load."""
    from testbed.node.firewall import ruleset
    from testbed.plan.planner import make_plan
    from testbed.topology import parse_topology
    from tests.unit.node.radio.test_radios_topology import topology
    from tests.unit.node.radio.test_slip_topology import POLICIES, SLIP

    plan = make_plan(parse_topology(topology(SLIP) + POLICIES), "t")
    br = next(n for n in plan.nodes if n.name == "br1")
    text = ruleset.render(ruleset.parse(dict(br.config.attributes)["policy-forward"]))
    assert "::/64" in text
    out = docker_client.containers.run(
        node_image,
        ["sh", "-c", 'printf "%s" "$RULES" > /tmp/p.nft && nft -c -f /tmp/p.nft && echo ok'],
        name=f"slip-nft-{os.getpid()}",
        entrypoint=[],
        cap_add=["NET_ADMIN"],
        environment={"RULES": text},
        network_mode="none",
        remove=True,
    )
    assert out.decode().strip() == "ok"
