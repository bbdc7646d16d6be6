"""A USB 802.15.4 dongle running OpenThread's radio co-processor firmware (``ot-rcp``), driven
in raw-radio mode over its serial line (Spinel over HDLC-lite, spinel.py).

``Dongle`` opens the serial device (a tty or a pseudo-terminal: raw mode, non-blocking, read
through the event loop), resets the radio, then sets it up in the order the firmware needs:
``PHY_ENABLED`` (without it transmits fail), channel, PAN id, ``MAC_RAW_STREAM_ENABLED``
(without it the radio sleeps). Every frame the radio receives from the air comes as an
unsolicited ``STREAM_RAW`` and goes to ``on_frame``; ``transmit`` queues frames for the air and
sends them one at a time (the firmware keeps one transmission: a second overwrites the first),
each answered by ``LAST_STATUS`` with its transaction id. The radio does its own ACKs and
retries on the air.

Nothing read from the line raises out of the reader: garbled HDLC frames, undecodable Spinel
frames, unexpected commands, unknown properties and frames heard on another channel than the
PAN's are dropped and counted by reason (``refused``); a line that ends (the dongle unplugged,
the pseudo-terminal closed) is reported once to ``on_lost`` with the reason, and transmits are
refused from then on (counted as ``closed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections import Counter, deque
from collections.abc import Callable

from testbed.node.radio import serial_line, spinel
from testbed.node.radio.errors import MalformedError, RadioError
from testbed.node.radio.spinel import SpinelFrame

REQUEST_TIMEOUT = 2.0
RESET_TIMEOUT = 5.0
TX_QUEUE = 64


class DongleError(RadioError):
    """The dongle cannot be opened, does not answer, or refused its set-up."""


class Dongle:
    def __init__(
        self,
        path: str,
        on_frame: Callable[[bytes], None],
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.on_frame = on_frame
        self.on_lost = on_lost
        self.channel = 0
        self._fd: int | None = None
        self._decoder = spinel.HdlcDecoder()
        self._pending: dict[int, asyncio.Future[SpinelFrame]] = {}
        self._next_tid = 1
        self._status: asyncio.Queue[int] = asyncio.Queue()  # unsolicited LAST_STATUS values
        self._tx: deque[bytes] = deque()
        self._tx_task: asyncio.Task[None] | None = None
        self.lost: str | None = None
        self.frames_received = 0
        self.frames_sent = 0
        self._refused: Counter[str] = Counter()  # from the line, by reason (+ HDLC's)
        self.tx_failed: Counter[str] = Counter()  # transmits, by Spinel status or reason

    # ------------------------------------------------------------ line

    def open(self) -> None:
        try:
            fd = serial_line.open_raw(self.path)
        except OSError as exc:
            raise DongleError(str(exc.strerror)) from exc
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
        if self._tx_task is not None:
            self._tx_task.cancel()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(DongleError(f"{self.path} closed"))

    def _lose(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
            self._refused["line-lost"] += 1
            self.close()
            if self.on_lost is not None:
                self.on_lost(reason)

    def _readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = serial_line.read_available(self._fd, self.path)
        except serial_line.LineGone as gone:
            self._lose(str(gone))
            return
        for payload in self._decoder.feed(data):
            self._payload(payload)

    @property
    def refused(self) -> Counter[str]:
        """What came from the line and was dropped, by reason (garbled HDLC included)."""
        return self._refused + self._decoder.garbled

    def _payload(self, payload: bytes) -> None:
        try:
            frame = SpinelFrame.decode(payload)
        except MalformedError as exc:
            self._refused[exc.reason] += 1
            return
        fut = self._pending.pop(frame.tid, None) if frame.tid else None
        if fut is not None and not fut.done():
            fut.set_result(frame)
            return
        if frame.command != spinel.CMD_PROP_VALUE_IS:
            self._refused["spinel-unexpected-command"] += 1
            return
        if frame.prop == spinel.PROP_STREAM_RAW:
            try:
                air = spinel.raw_frame(frame.value)
            except MalformedError as exc:
                self._refused[exc.reason] += 1
                return
            heard_on = spinel.raw_channel(frame.value)
            if self.channel and heard_on is not None and heard_on != self.channel:
                self._refused["wrong-channel"] += 1  # not the PAN's: it must not enter it
                return
            self.frames_received += 1
            self.on_frame(air)
        elif frame.prop == spinel.PROP_LAST_STATUS:
            with contextlib.suppress(MalformedError):
                self._status.put_nowait(spinel.unpack_uint(frame.value)[0])
        else:
            self._refused["spinel-unknown-property"] += 1

    def _write(self, frame: SpinelFrame) -> None:
        if self._fd is None:
            raise DongleError(f"{self.path} is not open" + (f": {self.lost}" if self.lost else ""))
        try:
            os.write(self._fd, spinel.hdlc_encode(frame.encode()))
        except OSError as exc:
            self._lose(f"{self.path}: {exc.strerror}")
            raise DongleError(f"{self.path}: {exc.strerror}") from exc

    # ------------------------------------------------------------ requests

    async def request(self, command: int, prop: int, value: bytes = b"") -> SpinelFrame:
        tid = self._next_tid
        self._next_tid = self._next_tid % 15 + 1  # 1..15: with 0 no answer comes
        fut: asyncio.Future[SpinelFrame] = asyncio.get_running_loop().create_future()
        self._pending[tid] = fut
        self._write(SpinelFrame(tid, command, prop, value))
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await fut
        except TimeoutError:
            raise DongleError(f"{self.path}: no answer to property 0x{prop:x}") from None
        finally:
            self._pending.pop(tid, None)

    async def set_prop(self, prop: int, value: bytes) -> None:
        answer = await self.request(spinel.CMD_PROP_VALUE_SET, prop, value)
        if answer.prop == spinel.PROP_LAST_STATUS and prop != spinel.PROP_LAST_STATUS:
            status = spinel.unpack_uint(answer.value)[0]
            raise DongleError(f"{self.path}: property 0x{prop:x} refused (status {status})")

    async def start(self, channel: int, pan_id: int, promiscuous: bool = False) -> None:
        """Reset the radio and put it on ``channel``/``pan_id`` in raw-radio mode; promiscuous:
        hand over every frame on the channel, not only those addressed to the radio."""
        self._write(SpinelFrame(0, spinel.CMD_RESET, None, bytes((spinel.RESET_STACK,))))
        try:
            async with asyncio.timeout(RESET_TIMEOUT):
                while await self._status.get() != spinel.STATUS_RESET_POWER_ON:
                    pass
        except TimeoutError:
            raise DongleError(f"{self.path}: no reset report (is it ot-rcp firmware?)") from None
        await self.set_prop(spinel.PROP_PHY_ENABLED, b"\x01")
        await self.set_channel(channel)
        await self.set_prop(spinel.PROP_MAC_15_4_PANID, struct.pack("<H", pan_id))
        await self.set_prop(spinel.PROP_MAC_PROMISCUOUS_MODE, b"\x02" if promiscuous else b"\x00")
        await self.set_prop(spinel.PROP_MAC_RAW_STREAM_ENABLED, b"\x01")

    async def set_channel(self, channel: int) -> None:
        if not 11 <= channel <= 26:
            raise DongleError(f"channel {channel} is not a 2.4 GHz channel (11..26)")
        await self.set_prop(spinel.PROP_PHY_CHAN, bytes((channel,)))
        self.channel = channel

    # ------------------------------------------------------------ air

    def transmit(self, frame: bytes) -> None:
        """Queue one 802.15.4 frame (FCS included) for the air."""
        if self._fd is None:
            self.tx_failed["closed"] += 1
            return
        if len(self._tx) >= TX_QUEUE:
            self.tx_failed["queue-full"] += 1
            return
        self._tx.append(frame)
        if self._tx_task is None or self._tx_task.done():
            self._tx_task = asyncio.get_running_loop().create_task(self._send_queue())

    async def _send_queue(self) -> None:
        while self._tx and self._fd is not None:
            frame = self._tx.popleft()
            try:
                answer = await self.request(
                    spinel.CMD_PROP_VALUE_SET,
                    spinel.PROP_STREAM_RAW,
                    spinel.raw_transmit(frame, self.channel),
                )
            except ValueError:
                self.tx_failed["oversize"] += 1  # more than 127 B: no 802.15.4 frame
                continue
            except DongleError:
                self.tx_failed["no-answer" if self._fd is not None else "closed"] += 1
                continue
            status = spinel.unpack_uint(answer.value)[0] if answer.value else -1
            if answer.prop == spinel.PROP_LAST_STATUS and status == spinel.STATUS_OK:
                self.frames_sent += 1
            else:
                self.tx_failed[f"status-{status}"] += 1

    def snapshot(self) -> dict[str, object]:
        return {
            "path": self.path,
            "channel": self.channel,
            "lost": self.lost,
            "frames_received": self.frames_received,
            "frames_sent": self.frames_sent,
            "refused": dict(self.refused),
            "tx_failed": dict(self.tx_failed),
        }
