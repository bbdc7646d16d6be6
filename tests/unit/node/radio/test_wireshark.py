"""Wireshark (tshark) as an independent decoder: it must read our ZEP, 802.15.4, 6LoWPAN
(IPHC with the traffic-class rotation, contexts, multicast, UDP NHC, RFC 4944 reassembly) back
into the IPv6 packets we sent, with valid UDP checksums and no malformed packet. Skipped where
tshark is not installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from testbed.node.radio import zep
from testbed.node.radio.pcap import LINKTYPE_IEEE802_15_4_WITHFCS, LINKTYPE_RAW, PcapWriter, zep_udp
from tests.unit.node.radio.packets import ip6
from tests.unit.node.radio.test_frag import make_packet, stations

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

FIELDS = [
    "frame.number", "_ws.malformed", "wpan.fcs_ok", "6lowpan.reassembled.length",
    "ipv6.src", "ipv6.dst", "ipv6.tclass", "ipv6.flow", "ipv6.hlim", "ipv6.plen",
    "udp.srcport", "udp.dstport", "udp.checksum.status",
]  # fmt: skip


def tshark(path: Path, *extra: str) -> list[dict[str, str]]:
    assert TSHARK is not None
    cmd = [TSHARK, "-r", str(path), "-n", "-o", "6lowpan.context0:fd00:0:0:1::/64"]
    # Filler payloads are neither CoAP nor RTCP: keep those dissectors from calling them
    # malformed (the radio layers are what is under test).
    cmd += ["--disable-protocol", "coap", "--disable-protocol", "rtcp"]
    cmd += ["-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=\t"]
    for f in FIELDS + list(extra):
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    return [
        dict(zip(FIELDS + list(extra), line.split("\t"), strict=True)) for line in out.splitlines()
    ]


def expected(pkt: bytes) -> dict[str, str]:
    word = int.from_bytes(pkt[:4], "big")
    fields = {
        "ipv6.src": str(ip6_text(pkt[8:24])),
        "ipv6.dst": str(ip6_text(pkt[24:40])),
        "ipv6.tclass": f"0x{(word >> 20) & 0xFF:02x}",
        "ipv6.flow": f"0x{word & 0xFFFFF:05x}",
        "ipv6.hlim": str(pkt[7]),
        "ipv6.plen": str(len(pkt) - 40),
    }
    if pkt[6] == 17:
        fields["udp.srcport"] = str(int.from_bytes(pkt[40:42], "big"))
        fields["udp.dstport"] = str(int.from_bytes(pkt[42:44], "big"))
        fields["udp.checksum.status"] = "1"  # Good
    return fields


def ip6_text(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.IPv6Address(raw))


def test_tshark_reassembles_and_decodes_our_frames(tmp_path: Path) -> None:
    a, b = stations()
    packets = [make_packet(size, kind, seed=size) for kind in range(60) for size in (60, 300)]
    packets += [make_packet(1280, 0), make_packet(1200, 2, seed=3), make_packet(41, 7)]
    path = tmp_path / "wpan.pcap"
    last_frame: list[int] = []
    n = 0
    with path.open("wb") as fh:
        w = PcapWriter(fh, LINKTYPE_IEEE802_15_4_WITHFCS)
        for i, pkt in enumerate(packets):
            dst = b"\xff\xff" if pkt[24] == 0xFF else b.lladdr
            for f in a.send(pkt, dst):
                n += 1
                w.write(f, 1000.0 + i)
            last_frame.append(n)
    rows = {int(r["frame.number"]): r for r in tshark(path)}
    assert len(rows) == n
    assert all(r["_ws.malformed"] == "" for r in rows.values())
    assert all(r["wpan.fcs_ok"] in ("1", "True") for r in rows.values())
    for pkt, frame_no in zip(packets, last_frame, strict=True):
        row = rows[frame_no]
        for key, value in expected(pkt).items():
            got = row[key]
            if key == "ipv6.tclass":
                got = f"0x{int(got, 16):02x}"
            elif key == "ipv6.flow":
                got = f"0x{int(got, 16):05x}"
            assert got == value, (len(pkt), key, got, value)


def test_tshark_decodes_zep_over_udp(tmp_path: Path) -> None:
    a, b = stations()
    pkt = make_packet(600, 0)
    path = tmp_path / "zep.pcap"
    medium, node = ip6("fd99::1"), ip6("fd99::2")
    frames = a.send(pkt, b.lladdr)
    with path.open("wb") as fh:
        w = PcapWriter(fh, LINKTYPE_RAW)
        for i, f in enumerate(frames):
            ts = zep.ntp_timestamp(1000.0 + i)
            dgram = zep.encode_data(f, channel=26, device_id=7, seq=i, timestamp=ts)
            w.write(zep_udp(medium, node, dgram), 1000.0 + i)
    extra = ["zep.version", "zep.channel_id", "zep.device_id", "zep.seqno", "zep.length"]
    rows = tshark(path, *extra)
    assert len(rows) == len(frames)
    for i, (row, f) in enumerate(zip(rows, frames, strict=True)):
        assert row["_ws.malformed"] == ""
        assert row["wpan.fcs_ok"] in ("1", "True")
        zep_fields = [row[k] for k in extra]
        assert zep_fields == ["2", "26", "7", str(i), str(len(f))]
    last = rows[-1]
    assert last["udp.checksum.status"].split(",")[-1] == "1"
    assert last["ipv6.src"].split(",")[-1] == ip6_text(pkt[8:24])
    assert last["6lowpan.reassembled.length"] == "600"
