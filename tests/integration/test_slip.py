"""The SLIP uplink inside the node image, with the board's pseudo-terminal inside the container
too (a pseudo-terminal of the host cannot be passed into a container as a device): the same
exchange as tests/unit/radio/test_slip_uplink.py, run by the image's Python with the
capabilities, TUN device and forwarding a border router container gets: prefix request, echoes
both ways through the router's kernel with 600-byte payloads full of END/ESC bytes, refusals
counted, the board's loss reported."""

from __future__ import annotations

import os

import pytest

from tests.unit.radio.test_slip_uplink import SCRIPT

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
