"""The shared TUN of a thing host: packets by source address to each packed thing's station."""

from __future__ import annotations

import ipaddress

from testbed.node.packing.shared_tun import NO_STATION, SharedTun, TunView

A, A_LL = "fd00:0:0:10::ff:fe00:14/64", "fe80::ff:fe00:14/64"
B, B_LL = "fd00:0:0:10::ff:fe00:15/64", "fe80::ff:fe00:15/64"


def packet(src: str, dst: str, payload: bytes = b"x") -> bytes:
    header = bytes([0x60, 0, 0, 0]) + len(payload).to_bytes(2, "big") + bytes([17, 64])
    return (
        header
        + ipaddress.IPv6Interface(src).ip.packed
        + ipaddress.IPv6Interface(dst).ip.packed
        + payload
    )


def pack() -> tuple[SharedTun, dict[str, list[bytes]], dict[str, TunView]]:
    shared = SharedTun()
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    views = {
        "a": shared.view(A, A_LL)("lowpan0", got["a"].append),
        "b": shared.view(B, B_LL)("lowpan0", got["b"].append),
    }
    assert all(isinstance(v, TunView) for v in views.values())
    return shared, got, views  # type: ignore[return-value]


def test_each_packet_goes_to_the_station_of_its_source() -> None:
    shared, got, views = pack()
    to_router = "fd00:0:0:10::ff:fe00:10"
    shared._dispatch(packet(A, to_router))
    shared._dispatch(packet(B_LL, "fe80::ff:fe00:10"))
    shared._dispatch(packet(B, to_router))
    assert len(got["a"]) == 1 and len(got["b"]) == 2
    assert views["a"].packets_read == 1 and views["b"].packets_read == 2


def test_a_packet_from_no_packed_thing_is_dropped_and_counted() -> None:
    shared, got, _ = pack()
    shared._dispatch(packet("fd00:0:0:10::ff:fe00:99", "fd00::1"))
    shared._dispatch(b"\x60short")
    assert got == {"a": [], "b": []}
    assert shared.dropped[NO_STATION] == 2


def test_a_multicast_packet_is_written_once_for_the_pack() -> None:
    _, _, views = pack()
    group = packet("fd00:0:0:10::ff:fe00:10", "ff05::fd")
    views["a"].write(group)  # the pack's first station: into the device (closed here)
    views["b"].write(group)  # every other station: the kernel fans it out already
    assert views["b"].multicast_skipped == 1 and views["a"].multicast_skipped == 0
    assert views["a"].write_dropped == 1  # no device open in this test
    unicast = packet("fd00:0:0:10::ff:fe00:10", B)
    views["b"].write(unicast)
    assert views["b"].write_dropped == 1 and views["b"].multicast_skipped == 1
