"""A real border router board on a serial line as a routed uplink of the border router: the
board speaks SLIP (slip.py) as Contiki-NG's ``tunslip6`` and RIOT's ``slipdev`` expect, and the
testbed plays tunslip6's part.

    board (RIOT gnrc_border_router, Contiki-NG rpl-border-router, or a plain SLIP host)
      <-- SLIP over the serial line -->  SlipUplink  <-->  TUN slip<i> (prefix::1/64)
                                                          <-->  the router's kernel: routes,
                                                                the cross-domain policy

The uplink has a /64 of its own from the plan (the routed prefix): the TUN carries its first
address (and ``fe80::1``, a next hop a board can be told by hand), so the kernel routes
the whole /64 to the board and every other node routes it through this border router, like a
PAN of the router. The line runs at 115200 baud, 8N1, raw (tunslip6's default). The board
asks for its prefix with ``?P`` and gets ``!P`` + the 8 prefix bytes (tunslip6's answer); its
6LoWPAN nodes take addresses in it.
Packets from the line must come from that prefix (or be link-local): the rest is refused
as ``foreign-source`` before the kernel sees it (the router's anti-spoofing guard would drop
them too, but here the cause is the board's).

Nothing read from the line raises: garbled frames are refused and counted by cause
(``refused``, the dongle refusal metric); a line that ends (the board unplugged, the
pseudo-terminal closed) is reported once to ``on_lost`` and counted as ``line-lost``; packets
for the board from then on are counted as ``closed``. The TUN stays, so the routes and the
policy stay as planned and the rest of the router runs on; the line is opened again when the
device is back (``retry``: the board plugged in again under its /dev/serial/by-id name).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import termios
from collections import Counter
from collections.abc import Callable

from testbed.node.radio import serial_line, slip
from testbed.node.radio.tun import Tun

BAUDRATE = termios.B115200  # tunslip6's default, and RIOT's and Contiki-NG's SLIP UART's
LINK_LOCAL = "fe80::1/64"  # the router on the uplink, for a board's default route
RETRY_INTERVAL = 2.0  # seconds between attempts to open a line that is gone
LINE_BUFFER = 64 * 1024  # bytes waiting for the serial line; beyond it packets are refused
DEBUG_LINES = 20  # the board's last debug lines kept for the state


class SlipUplink:
    def __init__(
        self,
        name: str,
        path: str,
        prefix: str,
        tun_name: str,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.prefix = ipaddress.IPv6Network(prefix)
        if self.prefix.prefixlen != 64:
            raise ValueError(f"SLIP uplink {name}: the routed prefix must be a /64")
        self.tun = Tun(tun_name, self._from_kernel)
        self.on_lost = on_lost
        self.decoder = slip.SlipDecoder()
        self._fd: int | None = None
        self._out = bytearray()
        self._writing = False
        self.lost: str | None = None
        self._refused: Counter[str] = Counter()
        self.packets_from_line = 0
        self.packets_to_line = 0
        self.prefix_requests = 0
        self.commands = 0
        self.debug: list[str] = []
        self._next_retry = 0.0

    @property
    def address(self) -> str:
        """The router's address on the uplink: tunslip6's ``-a`` (the prefix's first one)."""
        return f"{self.prefix.network_address + 1}/64"

    async def start(self) -> None:
        """The TUN (the routed prefix) first, then the line; raises OSError if the line
        cannot be opened (the TUN stays: the caller decides)."""
        await self.tun.open(self.address, link_local=LINK_LOCAL)
        self.open_line()

    def open_line(self) -> None:
        fd = serial_line.open_raw(self.path, BAUDRATE)
        self._fd = fd
        self.lost = None
        self.decoder.reset()  # a frame cut off by an earlier loss is not continued
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def retry(self, now: float) -> bool:
        """Open the line again if it is gone (a board plugged in again, or one that was not
        there at start), at most every ``RETRY_INTERVAL`` s; True when it came back."""
        if self._fd is not None or now < self._next_retry:
            return False
        self._next_retry = now + RETRY_INTERVAL
        try:
            self.open_line()
        except OSError:
            return False
        return True

    def close(self) -> None:
        self._close_line()
        with contextlib.suppress(Exception):
            self.tun.close()

    def _close_line(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(fd)
        if self._writing:
            loop.remove_writer(fd)
            self._writing = False
        self._out.clear()
        os.close(fd)

    def _lose(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
            self._refused["line-lost"] += 1
            self._close_line()
            if self.on_lost is not None:
                self.on_lost(reason)

    @property
    def refused(self) -> Counter[str]:
        """What was refused, by cause: from the line (garbled SLIP included) and for it."""
        return self._refused + self.decoder.refused

    # ------------------------------------------------------------ line -> kernel

    def _readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = serial_line.read_available(self._fd, self.path)
        except serial_line.LineGone as gone:
            self._lose(str(gone))
            return
        for frame in self.decoder.feed(data):
            self._frame(frame)

    def _frame(self, raw: bytes) -> None:
        try:
            frame = slip.classify(raw)
        except slip.SlipRefusal as exc:
            self._refused[exc.cause] += 1
            return
        if frame.kind == "ipv6":
            source = ipaddress.IPv6Address(frame.data[8:24])
            if source not in self.prefix and not source.is_link_local:
                self._refused["foreign-source"] += 1
                return
            self.packets_from_line += 1
            self.tun.write(frame.data)
        elif frame.kind == "prefix-request":
            self.prefix_requests += 1
            self._send(slip.prefix_answer(self.prefix.network_address.packed))
        elif frame.kind == "command":
            self.commands += 1  # !M (its MAC), ...: nothing the routed uplink needs
        else:
            self.debug = [*self.debug[-(DEBUG_LINES - 1) :], frame.data.decode(errors="replace")]

    # ------------------------------------------------------------ kernel -> line

    def _from_kernel(self, packet: bytes) -> None:
        if self._fd is None:
            self._refused["closed"] += 1
            return
        if len(packet) > slip.MAX_FRAME:
            self._refused["oversize"] += 1  # the TUN's MTU (1280) keeps packets below it
            return
        if self._send(slip.encode(packet)):
            self.packets_to_line += 1

    def _send(self, data: bytes) -> bool:
        if self._fd is None:
            return False
        if len(self._out) + len(data) > LINE_BUFFER:
            self._refused["line-full"] += 1
            return False
        self._out += data
        self._flush()
        return True

    def _flush(self) -> None:
        if self._fd is None:
            return
        try:
            while self._out:
                n = os.write(self._fd, self._out)
                del self._out[:n]
        except BlockingIOError:
            pass
        except OSError as exc:
            self._lose(f"{self.path}: {exc.strerror}")
            return
        loop = asyncio.get_running_loop()
        if self._out and not self._writing:
            loop.add_writer(self._fd, self._flush)
            self._writing = True
        elif not self._out and self._writing:
            loop.remove_writer(self._fd)
            self._writing = False

    def snapshot(self) -> dict[str, object]:
        return {
            "station": self.name,
            "protocol": "slip",
            "path": self.path,
            "prefix": str(self.prefix),
            "tun": self.tun.name,
            "lost": self.lost,
            "packets_from_line": self.packets_from_line,
            "packets_to_line": self.packets_to_line,
            "prefix_requests": self.prefix_requests,
            "commands": self.commands,
            "refused": dict(self.refused),
            "debug": list(self.debug),
        }
