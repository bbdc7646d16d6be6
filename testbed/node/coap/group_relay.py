"""The border router's group relay: one datagram in, one multicast datagram out on a PAN.

A backend on the Internet side sends a group command once, as a UDP datagram to the border
router's address *on the target PAN*, port ``GROUP_RELAY_PORT`` (one socket per PAN address,
nothing on a wildcard address); the relay sends the same bytes to All CoAP Nodes
(``ff05::fd``, port 5683) out of the interface that holds that address (the PAN's
``lowpan<i>`` TUN on a radio PAN: 6LoWPAN turns it into broadcast frames), with hop limit 1 so
it goes no further. It reads nothing: Group OSCORE protects the command end to end, and the
relay forwards only datagrams that look like Group OSCORE group-mode requests (a CoAP request
with an OSCORE option whose flags carry the group bit), so it cannot be used to put arbitrary
traffic on a PAN.

It stands in for IPv6 multicast routing: Linux forwards a multicast datagram between
interfaces only with a multicast routing daemon (MRT6 socket, e.g. smcroute or pim6sd)
installing (S,G) routes, and the backend would have to send to a site-scope group across the
Internet link. One relay socket per router does the same job for one group and is counted.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from testbed.node.coap.group import ALL_COAP_NODES_SITE, interface_holding
from testbed.node.logs import EventLog

GROUP_RELAY_PORT = 5690
COAP_PORT = 5683
OSCORE_OPTION = 9
GROUP_FLAG = 0x20  # the OSCORE option's Group Flag (draft-ietf-core-oscore-groupcomm)
MAX_DATAGRAM = 1280


def group_request(data: bytes) -> bool:
    """A CoAP request (codes 0.01-0.31) with an OSCORE option that has the group flag."""
    if len(data) < 4 or data[0] >> 6 != 1 or not 1 <= data[1] <= 31:
        return False
    pos, number = 4 + (data[0] & 0x0F), 0
    while pos < len(data) and data[pos] != 0xFF:
        delta, length = data[pos] >> 4, data[pos] & 0x0F
        pos += 1
        ext: list[int] = []
        for nibble in (delta, length):
            if nibble == 13:
                ext.append(data[pos] + 13 if pos < len(data) else -1)
                pos += 1
            elif nibble == 14:
                ext.append(int.from_bytes(data[pos : pos + 2], "big") + 269)
                pos += 2
            elif nibble == 15:
                return False
            else:
                ext.append(nibble)
        number += ext[0]
        if number == OSCORE_OPTION:
            return ext[1] > 0 and pos < len(data) and bool(data[pos] & GROUP_FLAG)
        if number > OSCORE_OPTION:
            return False
        pos += ext[1]
    return False


@dataclass
class RelayCounts:
    relayed: dict[str, int] = field(default_factory=dict)  # by interface
    refused: dict[str, int] = field(default_factory=dict)  # by reason


class GroupRelay:
    """One socket per PAN address of the router, [addr]:GROUP_RELAY_PORT; each relays to
    ff05::fd on the interface that holds its address."""

    def __init__(self, pans: dict[str, str], log: EventLog, port: int = GROUP_RELAY_PORT) -> None:
        self.pans = dict(pans)  # this router's address on a PAN -> PAN name
        self.log = log
        self.port = port
        self.counts = RelayCounts()
        self._sockets: dict[str, tuple[socket.socket, int]] = {}  # PAN -> (socket, ifindex)
        self._out: socket.socket | None = None
        self.unbound: dict[str, str] = {}  # PAN -> why it has no relay socket

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for address, pan in sorted(self.pans.items(), key=lambda item: item[1]):
            interface = interface_holding(address)
            if interface is None:
                self.unbound[pan] = f"{address} is not an address of this node"
                continue
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            try:
                sock.bind((address, self.port))
            except OSError as exc:
                sock.close()
                self.unbound[pan] = f"cannot bind [{address}]:{self.port}: {exc.strerror or exc}"
                continue
            sock.setblocking(False)
            self._sockets[pan] = (sock, socket.if_nametoindex(interface))
            loop.add_reader(sock.fileno(), self._readable, pan)
        if self._sockets:
            out = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            out.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
            out.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            self._out = out
        for pan, why in self.unbound.items():
            self.log.warning("group_relay.unbound", pan=pan, reason=why)
        self.log.info("group_relay.listening", port=self.port, pans=sorted(self._sockets))

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sock, _ in self._sockets.values():
            loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets.clear()
        if self._out is not None:
            self._out.close()
            self._out = None

    def _readable(self, pan: str) -> None:
        sock, ifindex = self._sockets[pan]
        while True:
            try:
                data, source = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log.warning("group_relay.receive_failed", pan=pan, error=str(exc))
                return
            self._relay(pan, ifindex, data, source)

    def _relay(self, pan: str, ifindex: int, data: bytes, source: Any) -> None:
        if not group_request(data):
            return self._refuse("not-group-oscore", pan, source)
        assert self._out is not None
        try:
            self._out.setsockopt(
                socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, struct.pack("@I", ifindex)
            )
            self._out.sendto(data, (ALL_COAP_NODES_SITE, COAP_PORT, 0, ifindex))
        except OSError as exc:
            return self._refuse("send-failed", pan, source, str(exc))
        self.counts.relayed[pan] = self.counts.relayed.get(pan, 0) + 1
        self.log.info("group_relay.relayed", pan=pan, source=source[0], size=len(data))

    def _refuse(self, reason: str, pan: str, source: Any, detail: str = "") -> None:
        self.counts.refused[reason] = self.counts.refused.get(reason, 0) + 1
        self.log.warning(
            "group_relay.refused", reason=reason, pan=pan, source=source[0], detail=detail
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "listening": sorted(self._sockets),
            "unbound": dict(sorted(self.unbound.items())),
            "relayed": self.counts.relayed,
            "refused": self.counts.refused,
        }
