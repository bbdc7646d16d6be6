"""6LoWPAN-ND encodings (nd.py) against the RFCs' formats, scapy's ICMPv6 ND layers and tshark.

The expected bytes are written out field by field from the option diagrams of RFC 4861 s4.6,
RFC 4944 s8, RFC 6775 s4.1-4.3 and RFC 8505 s4.1, not produced by the code under test.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed.node.radio import nd
from testbed.node.radio.errors import MalformedError
from testbed.node.radio.pcap import LINKTYPE_RAW, PcapWriter
from tests.unit.node.radio.packets import ip6

PREFIX = ipaddress.IPv6Network("fd00:1:2:3::/64")
ROUTER_LL = ip6("fe80::ff:fe00:1")
ROUTER = ip6("fd00:1:2:3::ff:fe00:1")
HOST_EUI = bytes.fromhex("e6d9e603f87d6da7")
HOST = ip6("fd00:1:2:3:e4d9:e603:f87d:6da7")


def test_lladdr_options_rfc4944_s8() -> None:
    # Short address: type, length 1, 2 address bytes, 4 bytes of zero padding.
    assert nd.lladdr_option(nd.OPT_SLLAO, b"\x12\x34") == bytes.fromhex("0101123400000000")
    # EUI-64: type, length 2, 8 address bytes, 6 bytes of zero padding.
    assert nd.lladdr_option(nd.OPT_TLLAO, HOST_EUI) == (bytes.fromhex("0202") + HOST_EUI + bytes(6))
    assert nd.lladdr_from_option(nd.lladdr_option(1, HOST_EUI)[2:]) == HOST_EUI
    assert nd.lladdr_from_option(nd.lladdr_option(1, b"\xab\xcd")[2:]) == b"\xab\xcd"
    with pytest.raises(MalformedError):
        nd.lladdr_from_option(bytes(22))


def test_pio_rfc4861_s4_6_2() -> None:
    opt = nd.pio(PREFIX, 86400, 14400, on_link=False)
    assert opt == (
        bytes((3, 4, 64, 0x40))  # type, length, prefix length, L=0 A=1
        + (86400).to_bytes(4, "big")
        + (14400).to_bytes(4, "big")
        + bytes(4)  # reserved
        + PREFIX.network_address.packed
    )
    assert nd.pio(PREFIX, 1, 1, on_link=True)[3] == 0xC0


def test_6co_rfc6775_s4_2() -> None:
    # type 34, length 2, context length 64, res|C=1|CID=0, reserved (16), lifetime (16), 64 bits.
    assert nd.sixco(PREFIX, 0, 60) == bytes.fromhex("220240100000003c") + bytes.fromhex(
        "fd00000100020003"
    )
    assert nd.sixco(PREFIX, 5, 1, compress=False)[3] == 0x05
    # A prefix longer than 64 bits takes 128 bits and length 3.
    long = nd.sixco(ipaddress.IPv6Network("fd00:1:2:3:4::/80"), 1, 1)
    assert long[1] == 3 and len(long) == 24 and long[2] == 80
    with pytest.raises(ValueError):
        nd.sixco(PREFIX, 16, 1)


def test_abro_rfc6775_s4_3() -> None:
    opt = nd.abro(ROUTER, 0x00020001, 10000)
    # type 35, length 3, version low, version high, valid lifetime, 6LBR address.
    assert opt == bytes.fromhex("2303000100022710") + ROUTER


def test_aro_rfc6775_and_earo_rfc8505() -> None:
    aro = nd.Aro(nd.STATUS_SUCCESS, 15, HOST_EUI)
    # type 33, length 2, status, reserved (8), reserved (16), lifetime (16), EUI-64.
    assert aro.encode() == bytes.fromhex("210200000000000f") + HOST_EUI
    earo = nd.Aro(nd.STATUS_DUPLICATE, 30, HOST_EUI, tid=7, flags=nd.EARO_R, opaque=9)
    # type 33, length 2, status, opaque, rsvd|I=0|R=1|T=1, TID, lifetime, ROVR.
    assert earo.encode() == bytes.fromhex("210201090307001e") + HOST_EUI
    assert nd.Aro.decode(earo.encode()[2:]) == earo
    assert nd.Aro.decode(aro.encode()[2:]) == aro


def test_option_chain_rules_rfc4861() -> None:
    with pytest.raises(MalformedError, match="zero"):
        nd.parse_options(bytes.fromhex("0100") + bytes(6))
    with pytest.raises(MalformedError, match="truncated"):
        nd.parse_options(bytes.fromhex("0102") + bytes(6))
    assert nd.parse_options(b"") == []


def registration_ns(src: bytes = HOST, lifetime: int = 15, tid: int | None = None) -> bytes:
    options = nd.lladdr_option(nd.OPT_SLLAO, HOST_EUI) + nd.Aro(0, lifetime, HOST_EUI, tid).encode()
    target = ROUTER_LL if tid is None else src
    return nd.neighbour_solicitation(src, ROUTER_LL, target, options)


def test_parse_round_trip_and_validation() -> None:
    msg = nd.parse(registration_ns())
    assert msg is not None and msg.kind == nd.NS
    assert msg.src == HOST and msg.target == ROUTER_LL and msg.sllao == HOST_EUI
    assert msg.aro == nd.Aro(0, 15, HOST_EUI)
    packet = bytearray(registration_ns())
    packet[7] = 64  # RFC 4861 s7.1.1: hop limit must be 255
    with pytest.raises(MalformedError, match="hop-limit"):
        nd.parse(bytes(packet))
    packet = bytearray(registration_ns())
    packet[-1] ^= 1
    with pytest.raises(MalformedError, match="checksum"):
        nd.parse(bytes(packet))
    # Not ND at all: echo request; not even ICMPv6.
    echo = nd.icmpv6_packet(HOST, ROUTER, bytes((128, 0, 0, 0, 0, 1, 0, 1)), hop_limit=64)
    assert nd.parse(echo) is None
    assert nd.parse(bytes(40)) is None


def router_advertisement() -> bytes:
    options = (
        nd.lladdr_option(nd.OPT_SLLAO, b"\x00\x01")
        + nd.pio(PREFIX, 86400, 14400)
        + nd.sixco(PREFIX, 0, 60)
        + nd.abro(ROUTER, 1, 10000)
    )
    return nd.router_advertisement(ROUTER_LL, HOST, options, 1800)


# ------------------------------------------------------------------ scapy

inet6 = pytest.importorskip("scapy.layers.inet6")


def test_scapy_reads_our_router_advertisement() -> None:
    pkt = inet6.IPv6(router_advertisement())
    ra = pkt[inet6.ICMPv6ND_RA]
    assert pkt.hlim == 255 and ra.routerlifetime == 1800 and ra.chlim == 64
    # scapy recomputes the checksum of a rebuilt copy: ours must equal it.
    assert ra.cksum == inet6.IPv6(bytes(pkt.copy().__class__(bytes(pkt)))).cksum
    fresh = inet6.IPv6(router_advertisement())
    del fresh[inet6.ICMPv6ND_RA].cksum
    assert inet6.IPv6(bytes(fresh))[inet6.ICMPv6ND_RA].cksum == ra.cksum
    pio = pkt[inet6.ICMPv6NDOptPrefixInfo]
    assert (pio.prefix, pio.prefixlen, pio.L, pio.A) == ("fd00:1:2:3::", 64, 0, 1)
    assert (pio.validlifetime, pio.preferredlifetime) == (86400, 14400)
    # scapy knows no 6LoWPAN-ND options: they must still delimit as unknown options with the
    # RFC's types and lengths (the chain is well formed).
    unknown = [
        (o.type, o.len) for o in pkt.iterpayloads() if isinstance(o, inet6.ICMPv6NDOptUnknown)
    ]
    assert unknown == [(34, 2), (35, 3)]


def test_scapy_builds_what_we_parse() -> None:
    aro = nd.Aro(0, 20, HOST_EUI).encode()
    built = inet6.IPv6(src="fd00:1:2:3:e4d9:e603:f87d:6da7", dst="fe80::ff:fe00:1", hlim=255)
    built /= inet6.ICMPv6ND_NS(tgt="fe80::ff:fe00:1")
    built /= inet6.ICMPv6NDOptUnknown(type=1, len=2, data=HOST_EUI + bytes(6))
    built /= inet6.ICMPv6NDOptUnknown(type=33, len=2, data=aro[2:])
    msg = nd.parse(bytes(built))
    assert msg is not None and msg.kind == nd.NS and msg.sllao == HOST_EUI
    assert msg.aro == nd.Aro(0, 20, HOST_EUI)


def test_scapy_reads_our_neighbour_advertisement() -> None:
    flags = nd.NA_ROUTER | nd.NA_SOLICITED
    na = nd.neighbour_advertisement(
        ROUTER_LL, HOST, ROUTER_LL, flags, nd.Aro(1, 15, HOST_EUI).encode()
    )
    pkt = inet6.IPv6(na)[inet6.ICMPv6ND_NA]
    assert (pkt.R, pkt.S, pkt.O, pkt.tgt) == (1, 1, 0, "fe80::ff:fe00:1")


# ------------------------------------------------------------------ tshark

TSHARK = shutil.which("tshark")
ND_FIELDS = [
    "_ws.malformed", "icmpv6.checksum.status", "icmpv6.type",
    "icmpv6.opt.prefix", "icmpv6.opt.prefix.flag.l", "icmpv6.opt.prefix.flag.a",
    "icmpv6.opt.6co.context_length", "icmpv6.opt.6co.flag.c", "icmpv6.opt.6co.flag.cid",
    "icmpv6.opt.6co.valid_lifetime", "icmpv6.opt.6co.context_prefix",
    "icmpv6.opt.abro.version_low", "icmpv6.opt.abro.valid_lifetime", "icmpv6.opt.abro.6lbr_address",
    "icmpv6.opt.aro.status", "icmpv6.opt.aro.registration_lifetime", "icmpv6.opt.aro.eui64",
]  # fmt: skip


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_tshark_decodes_6lowpan_nd(tmp_path: Path) -> None:
    assert TSHARK is not None
    path = tmp_path / "nd.pcap"
    with path.open("wb") as fh:
        w = PcapWriter(fh, LINKTYPE_RAW)
        w.write(router_advertisement(), 1.0)
        w.write(registration_ns(), 2.0)
        na = nd.neighbour_advertisement(
            ROUTER_LL, HOST, ROUTER_LL, nd.NA_SOLICITED, nd.Aro(2, 15, HOST_EUI).encode()
        )
        w.write(na, 3.0)
    cmd = [TSHARK, "-r", str(path), "-n", "-T", "fields", "-E", "separator=\t"]
    for f in ND_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    rows = [dict(zip(ND_FIELDS, line.split("\t"), strict=True)) for line in out.splitlines()]
    assert len(rows) == 3
    assert all(r["_ws.malformed"] == "" and r["icmpv6.checksum.status"] == "1" for r in rows)
    ra, ns, na_row = rows
    assert ra["icmpv6.type"] == "134" and ip6(ra["icmpv6.opt.prefix"]) == ip6("fd00:1:2:3::")
    assert (ra["icmpv6.opt.prefix.flag.l"], ra["icmpv6.opt.prefix.flag.a"]) == ("0", "1")
    assert ra["icmpv6.opt.6co.context_length"] == "64"
    assert ra["icmpv6.opt.6co.flag.c"] == "1" and ra["icmpv6.opt.6co.flag.cid"] == "0"
    assert ra["icmpv6.opt.6co.valid_lifetime"] == "60"
    assert ra["icmpv6.opt.6co.context_prefix"].startswith("fd00:1:2:3::")
    assert ra["icmpv6.opt.abro.version_low"] == "1"
    assert ra["icmpv6.opt.abro.valid_lifetime"] == "10000"
    assert ip6(ra["icmpv6.opt.abro.6lbr_address"]) == ROUTER
    assert ns["icmpv6.type"] == "135" and ns["icmpv6.opt.aro.status"] == "0"
    assert ns["icmpv6.opt.aro.registration_lifetime"] == "15"
    assert ns["icmpv6.opt.aro.eui64"].replace(":", "") == HOST_EUI.hex()
    assert na_row["icmpv6.type"] == "136" and na_row["icmpv6.opt.aro.status"] == "2"
