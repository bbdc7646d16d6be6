"""The medium's station registry: stations are bound to their carrier endpoint and to the
link-layer addresses they registered; hijacks, foreign sources and guest floods are refused
with their cause, and every table stays bounded by the stations the PAN admits."""

from __future__ import annotations

import random

from testbed.contracts.radio import ext_from_short
from testbed.node.radio.admission import (
    FOREIGN_SENDER,
    NO_ENDPOINT,
    STATION_HIJACK,
    TOO_MANY_NODES,
    Admitted,
    Stations,
)

LAMP, THERMO, ROUTER = b"\x00\x11", b"\x00\x12", b"\x00\x10"
PLANNED = {LAMP: "lamp-01", THERMO: "thermostat-01", ROUTER: "br1"}
CARRIERS = {"lamp-01": ("fd00:0:0:3::11", 17754), "thermostat-01": ("fd00:0:0:3::12", 17754)}
LAMP_AT = ("fd00:0:0:3::11", 17754, 0, 0)
ATTACKER = ("fd00:0:0:3::99", 17754, 0, 0)


def registry(guests: int = 2, carriers: bool = True) -> Stations:
    stations = Stations(PLANNED, guests, CARRIERS if carriers else None)
    stations.add_local("br1", (ROUTER, ext_from_short(0x10)))
    return stations


def test_a_planned_station_speaks_only_from_its_planned_endpoint() -> None:
    s = registry()
    first = s.admit(LAMP_AT, ext_from_short(0x11))  # its HELLO
    assert first == Admitted("lamp-01", new=True, learn=tuple(sorted({LAMP, ext_from_short(0x11)})))
    assert s.admit(LAMP_AT, LAMP) == Admitted("lamp-01")
    # Anyone else claiming its EUI-64 or its short address: a hijack, refused.
    assert s.admit(ATTACKER, ext_from_short(0x11)) == STATION_HIJACK
    assert s.admit(("fd00:0:0:3::11", 40000), LAMP) == STATION_HIJACK  # another port
    assert s.admit(ATTACKER, ext_from_short(0x12)) == STATION_HIJACK  # not up yet: still its
    assert s.endpoint("lamp-01") == LAMP_AT
    # The router's own station can never be claimed.
    assert s.admit(ATTACKER, ROUTER) == STATION_HIJACK


def test_without_a_planned_carrier_the_first_host_binds_and_may_restart() -> None:
    s = registry(carriers=False)
    assert isinstance(s.admit(("::1", 5000), ext_from_short(0x11)), Admitted)
    assert s.admit(("::1", 5001), ext_from_short(0x11)) == Admitted(
        "lamp-01", learn=tuple(sorted({LAMP, ext_from_short(0x11)}))
    )  # the same host, a new port: a restart, followed
    assert s.endpoint("lamp-01") == ("::1", 5001)
    assert s.admit(("::ffff:127.0.0.1", 5000), ext_from_short(0x11)) == STATION_HIJACK


def test_frames_from_sources_the_station_did_not_register_are_foreign() -> None:
    s = registry()
    s.admit(LAMP_AT, ext_from_short(0x11))
    assert s.admit(LAMP_AT, b"\xee\x01") == FOREIGN_SENDER  # planned: its pair, nothing else
    assert s.admit(LAMP_AT, THERMO) == FOREIGN_SENDER
    assert s.admit(LAMP_AT, None) == Admitted("lamp-01")  # an ACK frame has no source
    # A guest registers one extended and one short address, then nothing more.
    guest_ext = bytes.fromhex("0a0b0c0d0e0f1011")
    assert s.admit(ATTACKER, guest_ext) == Admitted(
        "ll-0a0b0c0d0e0f1011", new=True, learn=(guest_ext,)
    )
    assert s.admit(ATTACKER, b"\x05\x05") == Admitted("ll-0a0b0c0d0e0f1011", learn=(b"\x05\x05",))
    assert s.admit(ATTACKER, b"\x05\x06") == FOREIGN_SENDER
    assert s.admit(ATTACKER, bytes(8)) == FOREIGN_SENDER
    assert s.admit(ATTACKER, LAMP) == FOREIGN_SENDER
    # The guest's HELLO claiming the lamp's EUI-64: a takeover attempt, not a mere forgery.
    assert s.admit(ATTACKER, ext_from_short(0x11), hello=True) == STATION_HIJACK
    assert s.endpoint("lamp-01") == LAMP_AT
    assert s.admit(("fd00::77", 1), None) == NO_ENDPOINT


def test_guests_stop_at_the_bound_and_tables_stay_bounded_under_random_sources() -> None:
    s = registry(guests=4)
    rng = random.Random(1)
    causes: dict[object, int] = {}
    for _ in range(20_000):
        endpoint = (f"fd00::{rng.randrange(1 << 16):x}", rng.randrange(1, 65536))
        src = rng.randbytes(rng.choice((2, 8)))
        verdict = s.admit(endpoint, src)
        key = verdict if isinstance(verdict, str) else "admitted"
        causes[key] = causes.get(key, 0) + 1
    assert causes["admitted"] == 4 and causes[TOO_MANY_NODES] > 19_000
    assert s.size()["stations"] == len(set(PLANNED.values())) + 4
    assert s.size()["endpoints"] == 4
    assert s.size()["addresses"] <= 2 * s.size()["stations"]
    # One endpoint inventing sources: one guest at most, the rest refused as foreign.
    s2 = registry(guests=4)
    verdicts = [s2.admit(ATTACKER, rng.randbytes(2)) for _ in range(5_000)]
    assert verdicts.count(FOREIGN_SENDER) == 4_999
    assert s2.size()["addresses"] == 2 * 3 + 1
