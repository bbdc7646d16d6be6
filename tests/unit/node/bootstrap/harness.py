"""A real EDHOC responder on ::1 with an instrumented resource, for the channel tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiocoap
from aiocoap import resource

from testbed.node.bootstrap.accounting import Direction, Peer, WireLog
from testbed.node.coap.classify import CoapClassifier
from testbed.node.coap.credentials import EdhocIdentity, PeerLookup
from testbed.node.coap.edhoc_server import (
    EdhocServer,
    ProtectedResource,
    require_peer,
    start_edhoc_server,
)

# The key ids of RFC 9529 Section 3 (method 3 trace): initiator 0x2b, responder 0x32.
RFC9529_KID_I = b"\x2b"
RFC9529_KID_R = b"\x32"


@dataclass
class Capture:
    """A DatagramSink that keeps the raw datagrams (to inspect or replay them)."""

    datagrams: list[tuple[Direction, Peer, bytes]] = field(default_factory=list)

    def record(self, direction: Direction, peer: Peer, data: bytes) -> None:
        self.datagrams.append((direction, peer, data))


class Tee:
    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def record(self, direction: Direction, peer: Peer, data: bytes) -> None:
        for sink in self.sinks:
            sink.record(direction, peer, data)


class Echo(ProtectedResource):
    """POST /echo: answers with the authenticated peer's kid, remembers every call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[bytes, bytes]] = []

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        peer = require_peer(request)
        self.calls.append((peer.kid, request.payload))
        return aiocoap.Message(code=aiocoap.CHANGED, payload=b"kid=" + peer.kid.hex().encode())


@dataclass
class Harness:
    server: EdhocServer
    identity: EdhocIdentity
    echo: Echo
    wire: WireLog
    capture: Capture

    @property
    def uri(self) -> str:
        return f"coap://[::1]:{self.server.port}"

    def received(self, message: str) -> int:
        return sum(
            1 for r in self.wire.records if r.direction == "received" and r.message == message
        )


@asynccontextmanager
async def edhoc_server(
    peers: PeerLookup, identity: EdhocIdentity | None = None, **limits: Any
) -> AsyncIterator[Harness]:
    identity = identity or EdhocIdentity.generate(RFC9529_KID_R, "trust-center")
    site = resource.Site()
    echo = Echo()
    site.add_resource(["echo"], echo)
    wire, capture = WireLog(CoapClassifier()), Capture()
    server = await start_edhoc_server(
        site, identity, peers, bind=("::1", 0), sink=Tee(wire, capture), **limits
    )
    try:
        yield Harness(server, identity, echo, wire, capture)
    finally:
        await server.close()


class LossyRelay:
    """A UDP relay on ::1 between one client and a server that drops the client's first
    ``drop_first`` datagrams: a real lost datagram, so CoAP really retransmits."""

    def __init__(self, server_port: int, drop_first: int) -> None:
        self.server_port = server_port
        self.drop_first = drop_first
        self.from_client = 0
        self._client: Any = None
        self._down: Any = None
        self._up: Any = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        relay = self

        class Down(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                relay._client = addr
                relay.from_client += 1
                if relay.from_client > relay.drop_first:
                    relay._up.sendto(data)

        class Up(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                relay._down.sendto(data, relay._client)

        self._down, _ = await loop.create_datagram_endpoint(Down, local_addr=("::1", 0))
        self._up, _ = await loop.create_datagram_endpoint(Up, remote_addr=("::1", self.server_port))
        port: int = self._down.get_extra_info("sockname")[1]
        return port

    def close(self) -> None:
        for transport in (self._down, self._up):
            if transport is not None:
                transport.close()
