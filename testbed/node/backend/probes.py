"""The attacker's capabilities the security tests need, run from the backend host.

- ``probe_unprotected``: a plain CoAP GET to a thing's resource. A thing must answer 4.01.
- ``probe_replay``: one legitimate protected GET on a socket of its own whose every datagram
  is captured (the transport tap), then the exact request datagram sent again, unchanged,
  from a fresh UDP socket (a fresh port, so CoAP's duplicate detection, which works per peer
  address and message ID, does not answer it from its cache). The thing must refuse it in
  OSCORE replay protection: 4.01 "Replay detected", without any resource handler running.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import aiocoap
from aiocoap import error

from testbed.node.backend.peers import Reply, ThingPeer
from testbed.node.bootstrap.accounting import Direction, Peer
from testbed.node.coap.transport import create_context


@dataclass
class Capture:
    """A DatagramSink that keeps raw datagrams."""

    datagrams: list[tuple[Direction, Peer, bytes]] = field(default_factory=list)

    def record(self, direction: Direction, peer: Peer, data: bytes) -> None:
        self.datagrams.append((direction, peer, data))


async def probe_unprotected(coap: aiocoap.Context, uri: str, timeout: float) -> Reply:
    started = time.monotonic()
    request = aiocoap.Message(code=aiocoap.GET, uri=uri)
    response = await asyncio.wait_for(coap.request(request).response, timeout)
    return Reply(response.code.dotted, response.payload, False, time.monotonic() - started)


def _protected_request(data: bytes) -> bool:
    try:
        message = aiocoap.Message.decode(data)
    except error.UnparsableMessage:
        return False
    return bool(message.code.is_request() and message.opt.oscore is not None)


async def probe_replay(peer: ThingPeer, resource: str, timeout: float) -> dict[str, Any]:
    capture = Capture()
    coap = await create_context(sink=capture, loggername="backend-probe")
    try:
        original = await peer.request(coap, aiocoap.GET, resource, timeout=timeout)
    finally:
        await coap.shutdown()
    sent = [d for direction, _, d in capture.datagrams if direction == "sent"]
    requests = [d for d in sent if _protected_request(d)]
    if not requests:
        raise RuntimeError("the tap saw no protected request datagram")
    datagram = requests[0]
    replay = await resend(datagram, (peer.entry.address, peer.entry.port), timeout)
    return {
        "original": {"code": original.code, "protected": original.protected},
        "replay": replay,
        "datagram_bytes": len(datagram),
        "datagram_hex": datagram.hex(),
    }


async def resend(datagram: bytes, target: tuple[str, int], timeout: float) -> dict[str, Any]:
    """Send ``datagram`` from a fresh socket; the decoded answer (or a timeout)."""
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            answers.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(
        Receiver, remote_addr=target, family=socket.AF_INET6
    )
    request = aiocoap.Message.decode(datagram)
    started = time.monotonic()
    try:
        # Like CoAP: the same datagram again (same message ID) if nothing came back; the thing
        # answers such copies from its duplicate cache, so the count of handled copies is one.
        deadline = started + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            transport.sendto(datagram)
            with contextlib.suppress(TimeoutError):
                data = await asyncio.wait_for(answers.get(), min(2.0, remaining))
                answer = aiocoap.Message.decode(data)
                if answer.token == request.token and answer.code != aiocoap.EMPTY:
                    return {
                        "code": answer.code.dotted,
                        "diagnostic": answer.payload.decode("utf-8", "replace"),
                        "protected": answer.opt.oscore is not None,
                        "latency_s": time.monotonic() - started,
                    }
        return {"code": None, "diagnostic": "no answer", "protected": False, "latency_s": None}
    finally:
        transport.close()
