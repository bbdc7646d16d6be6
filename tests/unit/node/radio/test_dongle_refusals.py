"""Every refusal of a Spinel dongle is counted by cause and exported as
``testbed_radio_dongle_refused_total{pan,radio,cause}``: a small ot-rcp stand-in on the master
side of a pseudo-terminal answers the set-up as the firmware does, then sends what a broken or
confused dongle might (bad FCS, bad escapes, truncated and overlong HDLC, bad Spinel headers and
lengths, unexpected commands, unknown properties, frames heard on another channel) and refuses
a transmit; the bridge's own refusals (oversize frames, a line gone) and a dongle that cannot be
opened are counted too, and the PAN's medium runs on."""

from __future__ import annotations

import asyncio
import os
import pty
import struct

from prometheus_client import CollectorRegistry, generate_latest

from testbed.node.radio import spinel
from testbed.node.radio.attach import _Pan
from testbed.node.radio.metrics import RadioCollector, Samples
from testbed.node.radio.spinel import SpinelFrame
from tests.unit.node.radio.test_dongle import CHANNEL, frame, until
from tests.unit.node.radio.test_radios_topology import pan_config


class FakeRcp:
    """Answers the set-up like ot-rcp: a reset report, each set echoed as VALUE_IS; a transmit
    answered with LAST_STATUS ``tx_status``."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.decoder = spinel.HdlcDecoder()
        self.tx_status = 7  # not OK: the radio refused the transmit (e.g. channel access)
        self.transmits = 0
        self.silent = False
        asyncio.get_running_loop().add_reader(master, self._readable)

    def send(self, tid: int, command: int, prop: int | None, value: bytes = b"") -> None:
        os.write(self.master, spinel.hdlc_encode(SpinelFrame(tid, command, prop, value).encode()))

    def _readable(self) -> None:
        for payload in self.decoder.feed(os.read(self.master, 4096)):
            request = SpinelFrame.decode(payload)
            if request.command == spinel.CMD_RESET:
                self.send(0, spinel.CMD_PROP_VALUE_IS, spinel.PROP_LAST_STATUS, b"\x70")
            elif request.prop == spinel.PROP_STREAM_RAW:
                self.transmits += 1
                if self.silent:
                    continue
                status = bytes((self.tx_status,))
                self.send(request.tid, spinel.CMD_PROP_VALUE_IS, spinel.PROP_LAST_STATUS, status)
            else:
                self.send(request.tid, spinel.CMD_PROP_VALUE_IS, request.prop, request.value)

    def heard(self, air: bytes, channel: int) -> bytes:
        """A STREAM_RAW value as ot-rcp reports a received frame (RSSI, noise, flags, PHY)."""
        meta = struct.pack("<bbHHBBQ", -20, -128, 0, 10, channel, 255, 0)
        return struct.pack("<H", len(air)) + air + meta

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)


def exported(pan: _Pan) -> dict[tuple[str, str], float]:
    sample = pan.pan_sample()
    assert sample is not None
    collector = RadioCollector()
    collector.publish(Samples(pans=(sample,)))
    registry = CollectorRegistry()
    registry.register(collector)
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("testbed_radio_dongle_refused_total{"):
            labels = dict(
                kv.split("=", 1) for kv in line[line.index("{") + 1 : line.index("}")].split(",")
            )
            assert labels["pan"] == '"floor1"'
            out[labels["radio"].strip('"'), labels["cause"].strip('"')] = float(line.split()[-1])
    return out


def test_each_refusal_cause_is_counted_and_exported() -> None:
    master, slave = pty.openpty()

    async def main() -> None:
        rcp = FakeRcp(master)
        pan = _Pan("br1", pan_config(os.ttyname(slave)), 0, hub=True)
        assert pan.hub is not None
        await pan.hub.open(("::1", 0))
        heard: list[bytes] = []
        pan.hub.attach_local("br1", (b"\x00\x10",), lambda f, t, _sender: heard.append(f))
        try:
            await pan._start_bridges()
            [bridge] = pan.bridges
            dongle = bridge.dongle
            assert dongle.channel == CHANNEL
            good = frame(1, b"\x00\x22")
            is_ = spinel.CMD_PROP_VALUE_IS
            payload = SpinelFrame(0, is_, spinel.PROP_STREAM_RAW, rcp.heard(good, CHANNEL)).encode()
            line = spinel.hdlc_encode(payload)
            os.write(master, line[:-3] + bytes((line[-3] ^ 1,)) + line[-2:])  # hdlc-bad-fcs
            os.write(master, b"\x7e\x81\x7d\x41\x7e")  # hdlc-bad-escape
            os.write(master, b"\x7e\x81\x7e")  # hdlc-truncated
            os.write(master, b"\x7e" + b"\x81" * 5000 + b"\x7e")  # hdlc-overlong
            os.write(master, spinel.hdlc_encode(b"\x01\x06\x71"))  # spinel-bad-header
            short = SpinelFrame(0, is_, spinel.PROP_STREAM_RAW, b"\x40\x00abc").encode()
            os.write(master, spinel.hdlc_encode(short))  # spinel-bad-stream-length
            rcp.send(0, spinel.CMD_PROP_VALUE_GET, spinel.PROP_PHY_CHAN)  # unexpected-command
            rcp.send(0, is_, 0x1234, b"\x00")  # spinel-unknown-property
            rcp.send(0, is_, spinel.PROP_STREAM_RAW, rcp.heard(frame(2, b"\x00\x22"), 26))
            os.write(master, spinel.hdlc_encode(b"\x80\xff\xff\xff"))  # spinel-bad-uint
            rcp.send(0, is_, spinel.PROP_STREAM_RAW, b"\x05")  # spinel-truncated-stream
            rcp.send(0, is_, spinel.PROP_STREAM_RAW, rcp.heard(good, CHANNEL))  # accepted
            await until(lambda: heard)
            assert heard == [good] and dongle.frames_received == 1
            dongle.transmit(frame(3, b"\x00\x10") + bytes(200))  # oversize: no 15.4 frame
            dongle.transmit(frame(4, b"\x00\x10"))  # the radio answers status 7
            await until(lambda: dongle.tx_failed["status-7"] == 1)
            rcp.silent = True  # the radio stops answering transmits
            for seq in range(spinel_queue := 64 + 2):
                dongle.transmit(frame(seq % 256, b"\x00\x10"))
            assert dongle.tx_failed["queue-full"] == spinel_queue - 64
            await until(lambda: dongle.tx_failed["no-answer"] >= 1, timeout=10)
            dongle._tx.clear()  # the other 63 would wait 2 s each
            rcp.silent = False
            expected = {
                "hdlc-bad-fcs": 1, "hdlc-bad-escape": 1, "hdlc-truncated": 1,
                "hdlc-overlong": 1, "spinel-bad-header": 1, "spinel-bad-stream-length": 1,
                "spinel-unexpected-command": 1, "spinel-unknown-property": 1,
                "wrong-channel": 1, "oversize": 1, "status-7": 1, "spinel-bad-uint": 1,
                "spinel-truncated-stream": 1, "queue-full": 2,
            }  # fmt: skip
            metrics = exported(pan)
            mine = {c: int(n) for (r, c), n in metrics.items() if r == "dongle-1"}
            assert mine.pop("no-answer") >= 1  # one more if the next transmit's 2 s ran out
            assert mine == expected
            assert metrics["gone", "open-failed"] == 1  # the other dongle of pan_config
            # The dongle vanishes mid-run: counted, reported once, the medium runs on.
            rcp.close()
            await until(lambda: pan.lost_devices())
            assert pan.lost_devices() == [("dongle-1", bridge.lost)]
            dongle.transmit(frame(5, b"\x00\x10"))
            metrics = exported(pan)
            assert metrics["dongle-1", "line-lost"] == 1 and metrics["dongle-1", "closed"] == 1
            assert pan.snapshot()["radios"][0]["lost"]
            pan.hub.attach_local("other", (b"\x00\x11",), lambda f, t, _s: None)(
                frame(6, b"\x00\x11")
            )
            await until(lambda: len(heard) == 2)  # the medium still carries frames
        finally:
            for bridge in pan.bridges:
                bridge.close()
            pan.hub.close()

    try:
        asyncio.run(main())
    finally:
        os.close(slave)
