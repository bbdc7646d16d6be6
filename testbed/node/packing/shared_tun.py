"""One TUN device for all packed things of a thing host, dispatched by source address.

A thing host's things share one network namespace. Each still needs its own PAN address and
its own radio station, so the host makes one TUN (``lowpan0``) that carries every packed
thing's PAN address and link-local address, and hands each packet the kernel writes into it to
the station of the thing whose address is the packet's source: every thing binds its sockets
to its own address (its CoAP server by ``coap-bind``, its clients through
``testbed.node.coap.transport.SOURCE_ADDRESS``), so the source says which thing sent it.
Packets from a station go back into the one TUN; the kernel delivers each to the socket bound
to its destination.

Why one TUN with K addresses rather than K TUNs: with one /64 on K devices the kernel routes by
destination, not by source, so every thing's packets would leave through whichever device the
route names; keeping them apart would take a policy-routing table per thing. One device and a
dictionary lookup per packet costs nothing of that.

A broadcast frame reaches every station of the pack; its packet is written into the TUN once
(by the pack's first station), since the kernel hands a multicast packet to every socket that
joined the group anyway. Packets between packmates never leave the kernel (both addresses are
local): they cross no radio, as two processes on one device would not.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from collections.abc import Callable

from testbed.node.radio.tun import IP_TIMEOUT, MTU, Tun, TunError

SHARED_TUN = "lowpan0"
NO_STATION = "no-station"  # a packet from an address no packed thing holds


class SharedTun:
    """The host's TUN and the views its things' radio attachments use as their TUN."""

    def __init__(self, name: str = SHARED_TUN) -> None:
        self.tun = Tun(name, self._dispatch)
        self.views: dict[bytes, TunView] = {}  # source address (16 bytes) -> its thing's view
        self.dropped: Counter[str] = Counter()
        self.first: TunView | None = None

    async def open(self, addresses: list[tuple[str, str]]) -> None:
        """Create the device with every (PAN address/64, fe80::IID/64) pair of the pack."""
        if not addresses:
            raise ValueError("a thing host needs at least one packed thing")
        (address, link_local), *rest = addresses
        await self.tun.open(address, MTU, link_local=link_local)
        lines = [f"addr replace {a} dev {self.tun.name} nodad" for pair in rest for a in pair]
        if lines:
            await _ip_batch(lines)

    def close(self) -> None:
        self.tun.close()

    def view(self, address: str, link_local: str) -> Callable[[str, Callable[[bytes], None]], Tun]:
        """The TUN factory for the thing that holds ``address`` and ``link_local`` (with or
        without prefix length): what its RadioAttachment builds instead of a device."""

        def make(name: str, on_packet: Callable[[bytes], None]) -> Tun:
            view = TunView(self, on_packet)
            for a in (address, link_local):
                self.views[ipaddress.IPv6Interface(a).ip.packed] = view
            if self.first is None:
                self.first = view
            return view

        return make

    def _dispatch(self, packet: bytes) -> None:
        view = self.views.get(packet[8:24]) if len(packet) >= 40 else None
        if view is None:
            self.dropped[NO_STATION] += 1
            return
        view.packets_read += 1
        view.on_packet(packet)

    def write_from(self, view: TunView, packet: bytes) -> None:
        if len(packet) >= 40 and packet[24] == 0xFF and view is not self.first:
            view.multicast_skipped += 1  # the first station of the pack writes it
            return
        before = self.tun.write_dropped
        self.tun.write(packet)
        if self.tun.write_dropped != before:
            view.write_dropped += 1
        else:
            view.packets_written += 1


class TunView(Tun):
    """A packed thing's TUN as its station sees it: reads are the packets from its addresses,
    writes go into the shared device. Opening and closing it touch no device."""

    def __init__(self, shared: SharedTun, on_packet: Callable[[bytes], None]) -> None:
        super().__init__(shared.tun.name, on_packet)
        self.shared = shared
        self.on_packet = on_packet
        self.multicast_skipped = 0

    async def open(self, address: str, mtu: int = MTU, link_local: str | None = None) -> None:
        return None  # the host opened the device with this thing's addresses

    def close(self) -> None:
        return None

    def write(self, packet: bytes) -> None:
        self.shared.write_from(self, packet)


async def _ip_batch(lines: list[str]) -> None:
    """``ip -batch -``: one process for all addresses of the pack, not two per thing."""
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "-6",
        "-batch",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(
            proc.communicate(("\n".join(lines) + "\n").encode()), IP_TIMEOUT * 4
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise TunError("ip -batch: timed out") from None
    if proc.returncode:
        raise TunError(f"ip -batch: {err.decode(errors='replace').strip()}")
