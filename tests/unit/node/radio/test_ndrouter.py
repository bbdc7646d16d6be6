"""The border router's 6LoWPAN-ND (ndrouter.py): what it answers, what it keeps, where it routes."""

from __future__ import annotations

import ipaddress

from testbed.contracts.radio import RadioPanConfig
from testbed.node.radio import mac, nd
from testbed.node.radio.addressing import BROADCAST, link_local
from testbed.node.radio.ndrouter import NdRouter, NdRouterConfig, RouterPort, reserved_addresses
from testbed.node.radio.port import StationPort
from testbed.node.radio.station import Station, StationConfig
from tests.unit.node.radio.packets import ip6

PREFIX = ipaddress.IPv6Network("fd00:1:2:3::/64")
ROUTER_SHORT = b"\x00\x01"
ROUTER = ip6("fd00:1:2:3::ff:fe00:1")
ROUTER_LL = ip6("fe80::ff:fe00:1")
EUI_A = bytes.fromhex("e6d9e603f87d6da7")
EUI_B = bytes.fromhex("1200000000000042")
ADDR = ip6("fd00:1:2:3:e4d9:e603:f87d:6da7")
THING = ip6("fd00:1:2:3::ff:fe00:11")


def router(capacity: int = 4) -> NdRouter:
    return NdRouter(
        NdRouterConfig(
            PREFIX,
            ROUTER_SHORT,
            ROUTER,
            reserved=reserved_addresses(PREFIX, [b"\x00\x11"]),
            capacity=capacity,
        )
    )


def register(
    r: NdRouter,
    src: bytes,
    eui: bytes,
    now: float = 0.0,
    lifetime: int = 15,
    tid: int | None = None,
) -> tuple[nd.NdMessage, bytes]:
    options = nd.lladdr_option(nd.OPT_SLLAO, eui) + nd.Aro(0, lifetime, eui, tid).encode()
    target = ROUTER_LL if tid is None else src
    replies = r.handle(nd.neighbour_solicitation(src, ROUTER_LL, target, options), now)
    assert replies is not None and len(replies) == 1
    packet, lladdr = replies[0]
    msg = nd.parse(packet)
    assert msg is not None and msg.kind == nd.NA and msg.aro is not None
    return msg, lladdr


def test_rs_gets_a_unicast_ra_with_pio_6co_abro() -> None:
    r = router()
    host_ll = link_local(EUI_A)
    rs = nd.router_solicitation(host_ll, nd.ALL_ROUTERS, nd.lladdr_option(1, EUI_A))
    [(packet, lladdr)] = r.handle(rs, 0.0) or []
    assert lladdr == EUI_A
    ra = nd.parse(packet)
    assert ra is not None and ra.kind == nd.RA and ra.src == ROUTER_LL and ra.dst == host_ll
    assert ra.sllao == ROUTER_SHORT
    kinds = [k for k, _ in ra.options]
    assert kinds == [nd.OPT_SLLAO, nd.OPT_PIO, nd.OPT_6CO, nd.OPT_ABRO]
    pio = dict(ra.options)[nd.OPT_PIO]
    assert (
        pio[0] == 64
        and pio[1] == nd.PIO_AUTONOMOUS
        and pio[14:22] == PREFIX.network_address.packed[:8]
    )
    assert dict(ra.options)[nd.OPT_ABRO][6:] == ROUTER
    # From the unspecified address: the answer is multicast.
    [(_, lladdr)] = r.handle(nd.router_solicitation(nd.UNSPECIFIED, nd.ALL_ROUTERS), 0.0) or []
    assert lladdr == BROADCAST
    assert r.counters.router_advertisements["solicited"] == 2


def test_periodic_ras_are_jittered_within_the_rfc_interval() -> None:
    r = router()
    assert len(r.periodic(0.0)) == 1
    times: list[float] = []
    t = 0.0
    while len(times) < 20:
        t += 1.0
        if r.periodic(t):
            times.append(t)
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert all(200.0 <= g <= 601.0 for g in gaps), gaps
    assert len(set(gaps)) > 1  # jittered, not a fixed period


def test_registration_success_refresh_and_routing() -> None:
    r = router()
    na, lladdr = register(r, ADDR, EUI_A)
    assert na.aro == nd.Aro(nd.STATUS_SUCCESS, 15, EUI_A)
    assert na.dst == ADDR and lladdr == EUI_A and na.target == ROUTER_LL
    assert na.flags & nd.NA_SOLICITED and na.flags & nd.NA_ROUTER
    assert r.lookup(ADDR) == EUI_A
    register(r, ADDR, EUI_A, now=100.0)  # refresh by the same owner
    assert r.counters.registrations["success"] == 2 and len(r.registrations()) == 1


def test_duplicate_address_is_refused_and_answered_on_link_local() -> None:
    r = router()
    register(r, ADDR, EUI_A)
    na, lladdr = register(r, ADDR, EUI_B, now=10.0)
    assert na.aro is not None and na.aro.status == nd.STATUS_DUPLICATE
    assert na.dst == link_local(EUI_B) and lladdr == EUI_B  # never to the contested address
    assert r.lookup(ADDR) == EUI_A
    # A planned thing's address and the router's own are not for the taking either.
    for taken in (THING, ROUTER, ROUTER_LL, link_local(b"\x00\x11")):
        na, _ = register(r, taken, EUI_B)
        assert na.aro is not None and na.aro.status == nd.STATUS_DUPLICATE, taken
    na, _ = register(r, ip6("fd99::1"), EUI_B)  # not this PAN's prefix
    assert na.aro is not None and na.aro.status == nd.STATUS_DUPLICATE
    assert r.counters.registrations["duplicate"] == 6


def test_neighbour_cache_full_then_room_after_expiry() -> None:
    r = router(capacity=2)
    for i in range(2):
        register(
            r, PREFIX.network_address.packed[:8] + bytes(7) + bytes((i + 1,)), EUI_A, lifetime=1
        )
    na, _ = register(r, ADDR, EUI_B, now=30.0)
    assert na.aro is not None and na.aro.status == nd.STATUS_NC_FULL
    assert r.lookup(ADDR) is None
    na, _ = register(r, ADDR, EUI_B, now=61.0)  # the two one-minute registrations lapsed
    assert na.aro is not None and na.aro.status == nd.STATUS_SUCCESS
    assert r.counters.registrations["expired"] == 2


def test_lifetime_zero_removes_and_expiry_forgets() -> None:
    r = router()
    register(r, ADDR, EUI_A, lifetime=2)
    assert r.expire(119.0) == 0 and r.lookup(ADDR) == EUI_A
    assert r.expire(120.0) == 1 and r.lookup(ADDR) is None
    register(r, ADDR, EUI_A)
    na, _ = register(r, ADDR, EUI_A, lifetime=0)
    assert na.aro is not None and na.aro.status == nd.STATUS_SUCCESS and r.lookup(ADDR) is None
    assert r.counters.registrations["removed"] == 1
    # An expired holder does not block a new owner.
    register(r, ADDR, EUI_A, now=0.0, lifetime=1)
    na, _ = register(r, ADDR, EUI_B, now=61.0)
    assert na.aro is not None and na.aro.status == nd.STATUS_SUCCESS


def test_earo_registers_the_target_and_echoes_the_tid() -> None:
    r = router()
    na, _ = register(r, ADDR, EUI_A, tid=42)
    assert na.aro == nd.Aro(nd.STATUS_SUCCESS, 15, EUI_A, tid=42)
    assert na.target == ADDR and r.lookup(ADDR) == EUI_A


def test_ns_for_the_router_gets_na_with_tllao_and_others_are_ignored() -> None:
    r = router()
    ns = nd.neighbour_solicitation(ADDR, ROUTER_LL, ROUTER_LL, nd.lladdr_option(1, EUI_A))
    [(packet, lladdr)] = r.handle(ns, 0.0) or []
    na = nd.parse(packet)
    assert na is not None and na.tllao == ROUTER_SHORT and lladdr == EUI_A
    assert r.handle(nd.neighbour_solicitation(ADDR, THING, THING), 0.0) == []
    bad = bytearray(ns)
    bad[7] = 1
    assert r.handle(bytes(bad), 0.0) == []
    assert r.counters.ignored == {"ns-not-ours": 1, "nd-hop-limit": 1}
    # An NS with an ARO but no SLLAO is silently discarded (RFC 6775 s6.5.1).
    no_sllao = nd.neighbour_solicitation(ADDR, ROUTER_LL, ROUTER_LL, nd.Aro(0, 5, EUI_A).encode())
    assert r.handle(no_sllao, 0.0) == [] and r.lookup(ADDR) is None
    assert r.handle(bytes(40), 0.0) is None  # not ND: the kernel's business


def pan_config() -> RadioPanConfig:
    return RadioPanConfig(
        pan="floor1",
        address="fd00:1:2:3::ff:fe00:1/64",
        short=1,
        medium="::1",
        names={"0011": "thing"},
        guest_stations=3,
    )


def test_router_port_answers_nd_on_the_air_and_routes_to_registrations() -> None:
    frames: list[bytes] = []
    kernel: list[bytes] = []
    port = RouterPort(pan_config(), frames.append, kernel.append)
    assert port.nd.config.capacity == 3
    host = Station(
        StationConfig(ext_addr=EUI_A, pan_id=0x0023, contexts=port.station.config.contexts)
    )
    options = nd.lladdr_option(1, EUI_A) + nd.Aro(0, 15, EUI_A).encode()
    for frame in host.send(
        nd.neighbour_solicitation(ADDR, ROUTER_LL, ROUTER_LL, options), ROUTER_SHORT
    ):
        port.receive_frame(frame, 0.0)
    assert kernel == []  # ND stays out of the kernel
    assert port.nd.lookup(ADDR) == EUI_A
    answers = [host.receive(f, 0.0) for f in frames]
    na = nd.parse(next(a for a in answers if a is not None))
    assert na is not None and na.aro is not None and na.aro.status == nd.STATUS_SUCCESS
    # A packet from the kernel for the registered address leaves for its EUI-64.
    frames.clear()
    echo = nd.icmpv6_packet(ROUTER, ADDR, bytes((128, 0, 0, 0, 0, 1, 0, 1)), hop_limit=64)
    assert port.send_packet(echo) == 1
    assert mac.decode(frames[0]).dst == EUI_A
    # Anything else is the kernel's.
    for frame in host.send(nd.icmpv6_packet(ADDR, ROUTER, echo[40:], hop_limit=64), ROUTER_SHORT):
        port.receive_frame(frame, 1.0)
    assert len(kernel) == 1
    # Periodic RAs go out as broadcast frames.
    frames.clear()
    port.tick(2.0)
    assert len(frames) == 1 and mac.decode(frames[0]).dst == BROADCAST


def test_things_keep_their_static_setup_and_ignore_router_advertisements() -> None:
    """A planned thing's kernel never sees the router's RAs (it would add a default route)."""
    thing_cfg = RadioPanConfig(
        pan="floor1",
        address="fd00:1:2:3::ff:fe00:11/64",
        short=0x11,
        medium="::1",
        router="fd00:1:2:3::ff:fe00:1",
    )
    kernel: list[bytes] = []
    thing = StationPort(thing_cfg, lambda frame: None, kernel.append)
    router_frames: list[bytes] = []
    port = RouterPort(pan_config(), router_frames.append, lambda packet: None)
    port.tick(0.0)  # the first (multicast) RA
    assert len(router_frames) == 1
    thing.receive_frame(router_frames[0], 0.0)
    assert kernel == [] and thing.packets_filtered["ra-received"] == 1
