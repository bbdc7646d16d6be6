"""The dongle driver and the radio bridge against OpenThread's ``ot-rcp`` firmware (simulation
build, tests/fixtures/interop/openthread/) behind a pseudo-terminal, its air being UDP multicast
on loopback: frames both ways between the simulated air and the dongle and through the bridge
into the emulated medium and back; garbled HDLC and an unplugged dongle are counted, never
raised out of the reader."""

from __future__ import annotations

import asyncio
import os
import platform
import pty
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbed.contracts.radio import RadioPanConfig
from testbed.node.radio import mac, spinel
from testbed.node.radio.bridge import RadioBridge
from testbed.node.radio.dongle import Dongle, DongleError
from testbed.node.radio.frontend import MediumHub

OT_RCP = Path(__file__).parents[3] / "fixtures" / "interop" / "openthread" / "ot-rcp-simulation"
GROUP = "224.0.0.116"
CHANNEL, PAN_ID = 15, 0xABCD
needs_rcp = pytest.mark.skipif(
    platform.machine() != "x86_64" or not OT_RCP.exists(), reason="ot-rcp simulation is x86-64"
)


class Air:
    """One simulation's air (PORT_OFFSET): we are node 2, the dongle is node 1."""

    def __init__(self, offset: int) -> None:
        self.base = 9000 + offset * 34
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tx.bind(("127.0.0.1", self.base + 2))
        self.tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.rx.bind((GROUP, self.base))
        membership = socket.inet_aton(GROUP) + socket.inet_aton("127.0.0.1")
        self.rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        self.rx.setblocking(False)

    def send(self, frame: bytes, channel: int = CHANNEL) -> None:
        self.tx.sendto(bytes((channel,)) + frame, (GROUP, self.base))

    async def from_dongle(self, timeout: float = 5.0) -> bytes:
        """The next frame node 1 (the dongle) put on the air, FCS included."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    data, (_, port) = self.rx.recvfrom(300)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                    continue
                if port == self.base + 1:
                    return data[1:]

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


def _free_offset() -> int:
    """A PORT_OFFSET whose ports are free. Offsets stay below 700 so that the simulation's
    ports (BASE + 1, BASE + 2) stay under the kernel's ephemeral range (32768 up), where any
    outgoing connection on a busy machine may hold them; the firmware exits when its bind fails,
    and a closed pty then answers EIO."""
    for attempt in range(50):
        offset = 200 + (os.getpid() + 37 * attempt) % 480
        probes = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        try:
            for node, probe in enumerate(probes, start=1):
                probe.bind(("127.0.0.1", 9000 + offset * 34 + node))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return offset
    raise AssertionError("no free PORT_OFFSET for the ot-rcp simulation among 50 tried")


@pytest.fixture
def rcp() -> Iterator[tuple[str, Air, subprocess.Popen[bytes]]]:
    offset = _free_offset()  # its own air: simulations with one offset share one
    master, slave = pty.openpty()
    name = os.ttyname(slave)  # before the firmware owns the master side
    proc = subprocess.Popen(
        [str(OT_RCP), "1"], stdin=master, stdout=master, stderr=subprocess.DEVNULL,
        env={**os.environ, "PORT_OFFSET": str(offset)}, close_fds=True,
    )  # fmt: skip
    os.close(master)  # the firmware holds the master side: when it exits, the line ends
    air = Air(offset)
    try:
        yield name, air, proc
    finally:
        proc.kill()
        proc.wait()
        air.close()
        os.close(slave)


async def until(check: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def frame(seq: int, src: bytes, dst: bytes = b"\xff\xff") -> bytes:
    return mac.encode_data(seq=seq, pan_id=PAN_ID, src=src, dst=dst, payload=b"\x41hello")


@needs_rcp
def test_frames_cross_between_the_air_and_the_dongle(
    rcp: tuple[str, Air, subprocess.Popen[bytes]],
) -> None:
    path, air, proc = rcp

    async def main() -> None:
        got: list[bytes] = []
        lost: list[str] = []
        dongle = Dongle(path, got.append, lost.append)
        dongle.open()
        await dongle.start(CHANNEL, PAN_ID)
        assert dongle.channel == CHANNEL
        air.send(frame(1, b"\x00\x22"))
        air.send(frame(2, b"\x00\x22"), channel=CHANNEL + 1)  # another channel: not heard
        await until(lambda: got)
        assert got == [frame(1, b"\x00\x22")]
        dongle.transmit(frame(3, b"\x00\x10"))
        assert await air.from_dongle() == frame(3, b"\x00\x10")
        await until(lambda: dongle.frames_sent == 1)
        # A channel change is applied: the old channel is no longer heard, the new one is.
        await dongle.set_channel(CHANNEL + 1)
        air.send(frame(4, b"\x00\x22"))
        air.send(frame(5, b"\x00\x22"), channel=CHANNEL + 1)
        await until(lambda: len(got) == 2)
        assert got[1] == frame(5, b"\x00\x22")
        with pytest.raises(DongleError, match=r"not a 2\.4 GHz channel"):
            await dongle.set_channel(27)
        # Unplugged: the firmware goes, the line ends; reported once, transmits refused.
        proc.kill()
        await until(lambda: lost)
        assert dongle.lost is not None and dongle.refused["line-lost"] == 1
        dongle.transmit(frame(6, b"\x00\x10"))
        assert dongle.tx_failed["closed"] == 1

    asyncio.run(main())


def test_garbled_hdlc_and_a_closed_line_are_counted() -> None:
    """We play the dongle on the master side of a pseudo-terminal."""
    master, slave = pty.openpty()

    async def main() -> None:
        got: list[bytes] = []
        lost: list[str] = []
        dongle = Dongle(os.ttyname(slave), got.append, lost.append)
        dongle.open()
        raw = spinel.raw_transmit(frame(7, b"\x00\x22"), CHANNEL)[:-1]  # length + frame
        good = spinel.hdlc_encode(
            spinel.SpinelFrame(0, spinel.CMD_PROP_VALUE_IS, spinel.PROP_STREAM_RAW, raw).encode()
        )
        os.write(master, b"\x7e\x81\x02\x02\x00\x00\x7e" + b"\x7e\x01\x02\x7e" + good)
        await until(lambda: got)
        assert got == [frame(7, b"\x00\x22")]
        assert dongle.refused["hdlc-bad-fcs"] == 1
        os.close(master)
        await until(lambda: lost)
        assert dongle.lost is not None

    try:
        asyncio.run(main())
    finally:
        os.close(slave)


@needs_rcp
def test_the_bridge_joins_the_air_to_the_emulated_pan(
    rcp: tuple[str, Air, subprocess.Popen[bytes]],
) -> None:
    path, air, _ = rcp

    async def main() -> None:
        cfg = RadioPanConfig(
            pan="floor1", address="fd00:0:0:1::ff:fe00:10/64", short=0x10, medium="::1",
            channel=CHANNEL, pan_id=PAN_ID, names={"0010": "br"},
        )  # fmt: skip
        hub = MediumHub(cfg)
        await hub.open(("::1", 0))
        heard: list[bytes] = []
        transmit = hub.attach_local("br", (b"\x00\x10",), lambda f, t, _sender: heard.append(f))
        bridge = RadioBridge(hub, "radio-0", path)
        await bridge.start()
        try:
            # Air -> emulated PAN: a broadcast, and a unicast for the router (the medium
            # learns the air node's address from its frames).
            air.send(frame(1, b"\x00\x22"))
            air.send(frame(2, b"\x00\x22", dst=b"\x00\x10"))
            await until(lambda: len(heard) >= 2)
            assert frame(1, b"\x00\x22") in heard and frame(2, b"\x00\x22", b"\x00\x10") in heard
            assert hub.medium.owner(b"\x00\x22") == "radio-0"
            # Emulated PAN -> air: a frame for the air node leaves through the dongle.
            transmit(frame(3, b"\x00\x10", dst=b"\x00\x22"))
            assert await air.from_dongle() == frame(3, b"\x00\x10", b"\x00\x22")
            assert bridge.dropped["ack-to-air"] >= 1  # the medium's modelled ACK stayed here
        finally:
            bridge.close()
            hub.close()

    asyncio.run(main())
