"""An aiocoap context whose UDP socket reports every datagram it sends and receives.

Costs are measured where they arise: on the socket, after CoAP has added its header and its
retransmissions, so that what the testbed reports is what a radio would have to carry. The tap
is a subclass of aiocoap's udp6 transport; it wraps the asyncio transport to see ``sendmsg``
and hooks ``datagram_msg_received``. Nothing else of aiocoap changes.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

import aiocoap
from aiocoap.transports.oscore import TransportOSCORE
from aiocoap.transports.udp6 import MessageInterfaceUDP6

Direction = Literal["sent", "received"]

# The address a client context sends from. Unset, the kernel chooses (one address per node).
# A packed thing (testbed.node.packing) sets it for everything it runs: its packmates share
# the network namespace, and each must speak from its own PAN address, through its own station.
SOURCE_ADDRESS: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "coap_source_address", default=None
)
Peer = tuple[str, int]


class DatagramSink(Protocol):
    """Where the tap reports datagrams: UDP payload bytes, as they cross the socket."""

    def record(self, direction: Direction, peer: Peer, data: bytes) -> None: ...


class _TappedTransport:
    """Delegates to the real asyncio transport, reporting each ``sendmsg`` first."""

    def __init__(self, inner: Any, owner: RecordingUDP6) -> None:
        self._inner = inner
        self._owner = owner

    def sendmsg(self, data: bytes, ancdata: Any, flags: int, address: Any) -> None:
        if self._owner.sink is not None:
            self._owner.sink.record("sent", (address[0], address[1]), data)
        if self._owner.source is not None and not ancdata:
            ancdata = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, self._owner.source)]
        self._inner.sendmsg(data, ancdata, flags, address)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class RecordingUDP6(MessageInterfaceUDP6):  # type: ignore[misc]
    # Set right after the endpoint is created (aiocoap's factories take no extra arguments).
    sink: DatagramSink | None = None
    source: bytes | None = None  # in6_pktinfo to send from when aiocoap gives none (a group's)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(_TappedTransport(transport, self))

    def datagram_msg_received(self, data: bytes, ancdata: Any, flags: int, address: Any) -> None:
        if self.sink is not None:
            self.sink.record("received", (address[0], address[1]), data)
        super().datagram_msg_received(data, ancdata, flags, address)


async def create_context(
    *,
    site: Any = None,
    bind: tuple[str, int] | None = None,
    sink: DatagramSink | None = None,
    loggername: str = "coap",
    multicast: list[tuple[str, str]] | None = None,
) -> aiocoap.Context:
    """A context with exactly two transports: OSCORE over recording UDP.

    ``bind`` makes it a server on that address (port 0: any free port, see ``bound_port``);
    without it the socket takes an ephemeral port and serves as a client. ``multicast``
    ((group address, interface name), ...) makes a server socket join those groups. A socket
    bound to a unicast address (a packed thing's ``coap-bind``) never sees a datagram sent to a
    group, so then each group gets a socket of its own on the server's port, bound to the group
    address and feeding the same site; aiocoap sets SO_REUSEPORT, so every packmate binds it too,
    and Linux hands each such socket its own copy of a multicast datagram. This mirrors
    ``Context.create_server_context`` with ``transports=["oscore", "udp6"]``; the private
    ``_append_tokenmanaged_messagemanaged_transport`` is the only way to hand aiocoap another
    transport class, and aiocoap is pinned (==0.4.17) for that reason among others.
    """
    loop = asyncio.get_running_loop()
    source = SOURCE_ADDRESS.get()
    if bind is None and source is not None:
        bind = (source, 0)  # a server endpoint on an ephemeral port sends requests as well
    context = aiocoap.Context(loop=loop, serversite=site, loggername=loggername)
    # OSCORE first: it claims requests for which client credentials exist, UDP takes the rest.
    context.request_interfaces.append(TransportOSCORE(context, context))

    groups = list(multicast or [])
    unicast = (
        bind[0] if bind and not ipaddress.IPv6Address(bind[0] or "::").is_unspecified else None
    )  # the address of a server bound to one

    def endpoint(
        address: tuple[str, int] | None, joins: list[tuple[str, str]]
    ) -> Callable[[Any], Awaitable[RecordingUDP6]]:
        async def create(mman: Any) -> RecordingUDP6:
            if address is None:
                udp = await RecordingUDP6.create_client_transport_endpoint(
                    mman, log=context.log, loop=loop
                )
            else:
                udp = await RecordingUDP6.create_server_transport_endpoint(
                    mman, log=context.log, loop=loop, bind=address, multicast=joins
                )
            udp.sink = sink
            return udp  # type: ignore[no-any-return]

        return create

    await context._append_tokenmanaged_messagemanaged_transport(
        endpoint(bind, [] if unicast is not None else groups)
    )
    if unicast is not None and groups:
        port = bound_port(context)
        for group, interface in groups:
            await context._append_tokenmanaged_messagemanaged_transport(
                endpoint((group, port), [(group, interface)])
            )
        # An answer to a group request (an error to an unprotected one, say) leaves a socket
        # bound to the group without a source address: it is to be the server's, or the kernel
        # would pick any address of the TUN, a packmate's.
        pktinfo = ipaddress.IPv6Address(unicast).packed + bytes(4)  # in6_pktinfo, any ifindex
        for udp in _udp_endpoints(context)[1:]:
            udp.source = pktinfo
    return context


def _udp_endpoints(context: aiocoap.Context) -> list[RecordingUDP6]:
    out = []
    for interface in context.request_interfaces:
        udp = getattr(getattr(interface, "token_interface", None), "message_interface", None)
        if isinstance(udp, RecordingUDP6):
            out.append(udp)
    return out


def bound_port(context: aiocoap.Context) -> int:
    """The UDP port a context created by ``create_context`` listens on."""
    for udp in _udp_endpoints(context):
        port: int = udp.transport.get_extra_info("socket").getsockname()[1]
        return port
    raise LookupError("context has no recording UDP transport")
