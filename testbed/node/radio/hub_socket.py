"""The hub's UDP socket on the event loop (frontend.MediumHub reads and writes it itself)."""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Callable
from typing import Any


class HubSocket:
    """The hub's UDP socket on the event loop, read when the hub says so (``reading``)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, readable: Callable[[], None]
    ) -> None:
        self._loop, self._sock, self._readable = loop, sock, readable
        self._reading = False
        self.reading(True)
        # waiting(0): whether another datagram waits, asked with a zero-timeout poll. A read
        # that fails with EAGAIN costs twice as much (it raises), and every wake-up would end so.
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        self.waiting: Callable[[float], list[tuple[int, int]]] = poller.poll

    def reading(self, on: bool) -> None:
        if on and not self._reading:
            self._loop.add_reader(self._sock.fileno(), self._readable)
        elif not on and self._reading:
            self._loop.remove_reader(self._sock.fileno())
        self._reading = on

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """As asyncio's transports answer it: "sockname" and "socket"."""
        if name == "sockname":
            return self._sock.getsockname()
        return self._sock if name == "socket" else default

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            self.reading(False)
            self._sock.close()
