"""The eavesdropper's analysis finds what travels in clear, in both capture formats the medium
writes, and nothing that does not."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from testbed.node.radio import mac, pcap, zep
from testbed.scenario.eavesdrop import analyse

VOCABULARY = {"thing_names": ["lamp-01", "thermostat-01"], "resources": ["temperature"]}


def _capture(path: Path, payloads: list[bytes], linktype: int) -> None:
    stream = io.BytesIO()
    writer = pcap.PcapWriter(stream, linktype)
    for i, payload in enumerate(payloads):
        frame = mac.encode_data(
            seq=i, pan_id=0xABCD, src=bytes([0, 0x10 + i]), dst=b"\x00\x01", payload=payload
        )
        if linktype == pcap.LINKTYPE_RAW:
            record = pcap.zep_udp(bytes(16), bytes(15) + b"\x01", zep.encode_data(frame))
        else:
            record = frame
        writer.write(record, 1000.0 + i)
    path.write_bytes(stream.getvalue())


@pytest.mark.parametrize("linktype", [pcap.LINKTYPE_RAW, pcap.LINKTYPE_IEEE802_15_4_WITHFCS])
def test_names_in_clear_are_found_and_ciphertext_is_not(tmp_path: Path, linktype: int) -> None:
    path = tmp_path / "air.pcap"
    _capture(
        path, [b"\x41\x60GET lamp-01 temperature urn:dev:sn:00a1b2c3", bytes(range(90))], linktype
    )
    seen = analyse(path, None, VOCABULARY)
    assert seen["frames"] == 2
    assert seen["clear"]["link_addresses"] == ["00:10", "00:11"]
    assert seen["clear"]["thing_names"] == ["lamp-01"]
    assert seen["clear"]["resources"] == ["temperature"]
    assert seen["clear"]["identifiers"] == ["urn:dev:sn:00a1b2c3"]

    _capture(path, [bytes(range(256))[i : i + 90] for i in (0, 90)], linktype)
    quiet = analyse(path, None, VOCABULARY)
    assert quiet["clear"]["thing_names"] == [] and quiet["clear"]["identifiers"] == []
