"""A TUN device for the PAN's IPv6 traffic: the kernel routes into it, the radio carries it.

Layer 3 only (IFF_TUN | IFF_NO_PI: every read and write is one bare IPv6 packet). A TUN device
is point-to-point and NOARP, so the kernel sends packets for on-link destinations (the PAN /64
of the address we add) and for routes via an on-link next hop straight into it, without
neighbour discovery: the radio front end resolves link-layer destinations from the addresses
themselves (radio.config). MTU 1280, the IPv6 minimum and RFC 4944's: the kernel fragments or
sends Packet Too Big above it, 6LoWPAN fragments below it. The address is added with ``nodad``
(nothing on the medium would answer DAD; it would only delay binding).

Reads come through the event loop (add_reader) and never block it. Writes are non-blocking;
should the kernel's queue refuse one (EAGAIN), packets wait in a bounded queue that drains when
the descriptor is writable again, and what does not fit is counted, not raised.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
from collections import deque
from collections.abc import Callable, Sequence

TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MTU = 1280
READ_SIZE = 65535
WRITE_QUEUE = 256  # packets waiting for a writable descriptor
IP_TIMEOUT = 5.0


class TunError(OSError):
    """The device cannot be created or configured (no CAP_NET_ADMIN, no /dev/net/tun)."""


async def ip(*args: str, command: Sequence[str] = ("ip",)) -> None:
    proc = await asyncio.create_subprocess_exec(
        *command, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), IP_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise TunError(f"ip {' '.join(args)}: timed out") from None
    if proc.returncode:
        raise TunError(f"ip {' '.join(args)}: {err.decode(errors='replace').strip()}")


class Tun:
    def __init__(self, name: str, on_packet: Callable[[bytes], None]) -> None:
        if not 0 < len(name) < 16:
            raise ValueError("interface names have 1..15 characters")
        self.name = name
        self._on_packet = on_packet
        self._fd: int | None = None
        self._pending: deque[bytes] = deque()
        self._writer = False
        self.packets_read = 0
        self.packets_written = 0
        self.write_dropped = 0

    async def open(self, address: str, mtu: int = MTU, link_local: str | None = None) -> None:
        """Create the device, bring it up with ``address`` (prefix length included). With
        ``link_local`` (``fe80::IID/64``) the kernel generates none of its own (a TUN has no
        link-layer address to derive one from: it would pick a stable-privacy IID that no
        6LoWPAN host can map to a link-layer address) and the device gets that one."""
        try:
            fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise TunError(f"cannot open {TUN_DEVICE}: {exc.strerror}") from exc
        try:
            ifr = struct.pack("16sH", self.name.encode(), IFF_TUN | IFF_NO_PI)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
            if link_local is not None:
                await ip("link", "set", "dev", self.name, "addrgenmode", "none")
            await ip("link", "set", "dev", self.name, "mtu", str(mtu), "up")
            await ip("-6", "addr", "replace", address, "dev", self.name, "nodad")
            if link_local is not None:
                await ip("-6", "addr", "replace", link_local, "dev", self.name, "nodad")
        except BaseException as exc:
            os.close(fd)
            if isinstance(exc, OSError) and not isinstance(exc, TunError):
                raise TunError(f"cannot create {self.name}: {exc.strerror}") from exc
            raise
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(fd)
        if self._writer:
            loop.remove_writer(fd)
        os.close(fd)  # the device goes with its last descriptor

    def write(self, packet: bytes) -> None:
        if self._fd is None:
            self.write_dropped += 1
            return
        if self._pending:
            self._enqueue(packet)
            return
        try:
            os.write(self._fd, packet)
            self.packets_written += 1
        except BlockingIOError:
            self._enqueue(packet)
        except OSError:
            self.write_dropped += 1  # e.g. EINVAL for a packet the kernel will not take

    def _enqueue(self, packet: bytes) -> None:
        if len(self._pending) >= WRITE_QUEUE:
            self.write_dropped += 1
            return
        self._pending.append(packet)
        if not self._writer and self._fd is not None:
            asyncio.get_running_loop().add_writer(self._fd, self._drain)
            self._writer = True

    def _drain(self) -> None:
        assert self._fd is not None
        while self._pending:
            try:
                os.write(self._fd, self._pending[0])
                self.packets_written += 1
            except BlockingIOError:
                return
            except OSError:
                self.write_dropped += 1
            self._pending.popleft()
        asyncio.get_running_loop().remove_writer(self._fd)
        self._writer = False

    def _readable(self) -> None:
        # A bounded batch per wakeup: a flood from the kernel cannot starve the loop.
        for _ in range(64):
            if self._fd is None:
                return
            try:
                packet = os.read(self._fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # device gone; close() will follow
            self.packets_read += 1
            self._on_packet(packet)
