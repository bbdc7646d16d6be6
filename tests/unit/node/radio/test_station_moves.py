"""A station that moves between PANs, at the medium: the new hub admits it as a planned
station bound to its carrier (no one else may speak for it, it may not take another's short
address), the old hub forgets it and frees its addresses. Over real UDP sockets on ::1."""

from __future__ import annotations

import asyncio
import socket

import pytest

from testbed.contracts.radio import ext_from_short
from testbed.node.radio.admission import STATION_HIJACK, Admitted, Stations
from testbed.node.radio.frontend import ZepClient
from testbed.node.radio.port import StationPort
from tests.unit.node.radio.test_frontend import ROUTER, Pan, addr, cfg, make_pan, packet

MOVED = 0x100


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


def test_the_registry_admits_a_moved_station_only_from_its_carrier() -> None:
    stations = Stations({b"\x00\x11": "lamp-201"}, guest_limit=2)
    stations.add_planned("lamp-101", MOVED.to_bytes(2, "big"), ("fd00::5", 17754))
    ext = ext_from_short(MOVED)
    assert stations.admit(("fd00::6", 17754), ext) == STATION_HIJACK
    first = stations.admit(("fd00::5", 17754), ext)
    assert isinstance(first, Admitted) and first.name == "lamp-101" and first.new
    # Another station's short address is not for the taking.
    with pytest.raises(KeyError):
        stations.add_planned("lamp-102", b"\x00\x11", ("fd00::7", 17754))
    # Gone: its addresses are free, its endpoint unknown.
    assert stations.remove("lamp-101")
    assert stations.endpoint("lamp-101") is None
    assert stations.addresses("lamp-101") == frozenset()
    assert not stations.remove("lamp-101")
    stations.add_planned("lamp-102", MOVED.to_bytes(2, "big"), ("fd00::7", 17754))


def test_a_station_moved_onto_a_hub_is_reached_and_released_is_forgotten() -> None:
    zep_port = _free_udp_port()

    async def body(pan: Pan) -> None:
        pan.hub.admit_station("m", MOVED, "::1")
        assert pan.hub.config.names[f"{MOVED:04x}"] == "m"
        got: list[bytes] = []
        assert pan.hub.transport is not None
        hub_port = pan.hub.transport.get_extra_info("sockname")[1]
        client = ZepClient(cfg(MOVED, hub_port))  # sends to the hub, from the carrier's port
        client.port = StationPort(client.config, client.transmit, got.append)
        await client.open(("::1", zep_port))
        try:
            for _ in range(400):  # its HELLO binds it
                if "m" in pan.hub.endpoints():
                    break
                await asyncio.sleep(0.005)
            p = packet(addr(ROUTER), addr(MOVED), 300)
            pan.router.send_packet(p)
            for _ in range(400):
                if got:
                    break
                await asyncio.sleep(0.005)
            assert got == [p]
            assert pan.hub.release_station("m")
            assert "m" not in pan.hub.medium.nodes()
            assert "m" not in pan.hub.endpoints()
            assert f"{MOVED:04x}" not in pan.hub.config.names
            assert not pan.hub.release_station("m")
        finally:
            client.close()

    async def main() -> None:
        pan = await make_pan(port=zep_port)
        try:
            await body(pan)
        finally:
            pan.close()

    asyncio.run(main())
