"""The border router's reassembly buffers under a first-fragment flood (RFC 4944 Section 5.3;
Hummen et al., "6LoWPAN fragmentation attacks and mitigation mechanisms", WiSec 2013): with the
per-station policy a station that floods first fragments, under its own or invented source
addresses, cannot lock other stations out; with the shared policy (the defence off) it can."""

from __future__ import annotations

import struct

import pytest

from testbed.contracts.radio import ReassemblyLimits
from testbed.node.radio.frag import FRAG1_DISPATCH, fragment
from testbed.node.radio.reassembly import Reassembler
from tests.unit.node.radio.packets import A_SHORT, B_SHORT, filler, ip6, udp6

ROUTER = B_SHORT


def first_fragment(tag: int, size: int = 2047) -> bytes:
    """A FRAG1 announcing a ``size``-byte datagram that never gets its other fragments."""
    header = bytes([0x60]) + bytes(39)
    return struct.pack("!HH", FRAG1_DISPATCH << 11 | size, tag) + b"\x41" + header + bytes(48)


def packet_fragments(src: bytes, size: int, tag: int) -> list[bytes]:
    pkt = udp6(ip6("fd00::1"), ip6("fd00::2"), 5683, 5683, filler(size - 48, tag))
    return fragment(pkt, src, ROUTER, max_payload=116, tag=tag)


def invented(i: int) -> bytes:
    return bytes([0xEE, i])


def flood(r: Reassembler, sender: str | None, count: int, now: float = 0.0) -> None:
    for i in range(count):
        r.receive(first_fragment(i), invented(i), ROUTER, now, sender)


def deliver(
    r: Reassembler, src: bytes, sender: str, size: int, tag: int, now: float
) -> bytes | None:
    out = None
    for part in packet_fragments(src, size, tag):
        out = r.receive(part, src, ROUTER, now, sender)
    return out


def test_five_invented_sources_of_one_station_cannot_fill_the_buffer() -> None:
    """The seen attack: five first fragments of 2,047 bytes from five invented sources."""
    r = Reassembler()  # per-station, 2 x 1280 per station, 8 x 1280 in all
    flood(r, "guest", 5)
    assert r.snapshot()["open_datagrams"] == 1  # the station's budget holds one of them
    assert r.snapshot()["held_by"] == {"guest": 2047}
    assert r.dropped_fragments["buffer-full"] == 0  # each replaced the station's own oldest
    assert r.dropped_packets["evicted"] == 4
    got = deliver(r, A_SHORT, "lamp-01", 1280, 100, 1.0)
    assert got is not None and len(got) == 1280


def test_the_shared_policy_lets_the_same_flood_lock_everyone_out() -> None:
    r = Reassembler(ReassemblyLimits(policy="shared"))
    flood(r, "guest", 5)
    assert r.buffered_bytes == 5 * 2047
    assert deliver(r, A_SHORT, "lamp-01", 1280, 100, 1.0) is None
    # Every fragment of the lamp's packet found the buffer full, for as long as the flood lasts.
    assert r.dropped_fragments["buffer-full"] == len(packet_fragments(A_SHORT, 1280, 100))
    assert r.expire(61.0) == 5


def test_many_flooding_stations_never_evict_a_smaller_legitimate_datagram() -> None:
    r = Reassembler()
    for guest in range(16):  # every guest slot of a PAN, each with its own budget
        r.receive(first_fragment(guest), invented(guest), ROUTER, 0.0, f"guest-{guest}")
    assert r.buffered_bytes <= r.limits.total_bytes
    parts = packet_fragments(A_SHORT, 1280, 7)
    assert r.receive(parts[0], A_SHORT, ROUTER, 0.1, "lamp-01") is None  # evicts a guest's
    # The guests keep flooding while the lamp's fragments arrive one by one.
    out = None
    for i, part in enumerate(parts[1:]):
        r.receive(first_fragment(100 + i), invented(i), ROUTER, 0.1, f"guest-{i % 16}")
        out = r.receive(part, A_SHORT, ROUTER, 0.1, "lamp-01")
    assert out is not None and len(out) == 1280
    assert r.dropped_packets["evicted"] > 0


def test_a_station_over_its_budget_replaces_its_own_oldest_datagram() -> None:
    r = Reassembler()
    first = packet_fragments(A_SHORT, 1200, 1)
    second = packet_fragments(A_SHORT, 1200, 2)
    third = packet_fragments(A_SHORT, 1200, 3)
    for parts in (first, second, third):
        r.receive(parts[0], A_SHORT, ROUTER, 0.0, "lamp-01")
    assert r.dropped_packets["evicted"] == 1  # the first one (2 x 1200 fit in 2 x 1280)
    assert [r.receive(p, A_SHORT, ROUTER, 0.0, "lamp-01") for p in third[1:]][-1] is not None


def test_without_a_sender_the_claimed_source_is_charged() -> None:
    """A thing's station hears only the router: no sender, charged as before."""
    r = Reassembler()
    flood(r, None, 5)
    assert r.snapshot()["open_datagrams"] == 5
    assert r.snapshot()["held_by"] == {f"ee{i:02x}": 2047 for i in range(5)}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"policy": "fifo"},
        {"per_sender_bytes": 1000},
        {"per_sender_bytes": 4096, "total_bytes": 2048},
        {"timeout": 0.0},
        {"timeout": 61.0},
    ],
)
def test_bad_limits_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ReassemblyLimits(**kwargs)  # type: ignore[arg-type]
