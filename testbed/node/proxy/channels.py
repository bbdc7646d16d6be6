"""CoAP over DTLS with pre-shared keys for the hop-by-hop proxy: configurations of both ends
and the pool of sessions the proxy keeps to the things it forwards to.

RFC 7925 4.2: TLS_PSK_WITH_AES_128_CCM_8, DTLS 1.2 only. The identity is a node name (the
backend's towards the proxy, the router's towards a thing): it travels in clear in the
ClientKeyExchange and names the peer, never the key. One session per thing, set up at the
first request and kept while it works: the handshake is the expensive part on a PAN, and a
gateway that translates keeps its sessions (that is what a thing that moves loses).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import aiocoap
from mbedtls import tls

from testbed.node.bootstrap.accounting import Peer
from testbed.node.coap.transport import DatagramSink
from testbed.node.dtls import credentials as creds
from testbed.node.dtls.coaps import ChannelClosed, CoapsClient, CoapsTimeout
from testbed.node.dtls.endpoint import DtlsClient
from testbed.node.dtls.session import State

HANDSHAKE_TIMEOUT_S = 30.0
# How long one request may wait inside an established session before the session counts as
# dead (the peer restarted and forgot it: DTLS has no way to say so; its server drops records
# of sessions it does not have) and is replaced by a new handshake: CoAP's first
# retransmissions fit (2-3 s, then 4-6 s more).
REQUEST_TIMEOUT_S = 15.0
# RFC 6347 4.2.4 timer bounds for these handshakes (as the bootstrap profiles use).
HANDSHAKE_TIMERS = (1.0, 16.0)


def _common() -> dict[str, Any]:
    return {
        "lowest_supported_version": tls.DTLSVersion.DTLSv1_2,
        "highest_supported_version": tls.DTLSVersion.DTLSv1_2,
        "validate_certificates": False,
        "ciphers": (creds.CIPHER_PSK,),
        "handshake_timeout_min": HANDSHAKE_TIMERS[0],
        "handshake_timeout_max": HANDSHAKE_TIMERS[1],
    }


def client_configuration(identity: str, psk: bytes) -> tls.DTLSConfiguration:
    return tls.DTLSConfiguration(pre_shared_key=(identity, psk), **_common())


def server_configuration(psks: Mapping[str, bytes]) -> tls.DTLSConfiguration:
    """A PSK-only server: a peer with another identity or key fails the handshake."""
    return tls.DTLSConfiguration(pre_shared_key_store=dict(psks), **_common())


class Channel:
    """One established session and the CoAP client on it (one request at a time)."""

    def __init__(self, dtls: DtlsClient) -> None:
        self.dtls = dtls
        self.coaps = CoapsClient(dtls)
        self.lock = asyncio.Lock()

    @property
    def usable(self) -> bool:
        return self.dtls.session.state is State.ESTABLISHED

    async def request(self, message: aiocoap.Message) -> aiocoap.Message:
        path = "/".join(message.opt.uri_path)
        if message.opt.uri_query:
            path += "?" + "&".join(message.opt.uri_query)
        options: dict[str, Any] = {}
        if message.opt.content_format is not None:
            options["content_format"] = message.opt.content_format
        if message.opt.accept is not None:
            options["accept"] = message.opt.accept
        for name in ("proxy_scheme", "uri_host", "uri_port"):
            value = getattr(message.opt, name)
            if value is not None:
                options[name] = value
        async with self.lock:
            return await self.coaps.request(message.code, path, message.payload, **options)

    async def close(self) -> None:
        await self.dtls.close()


async def open_channel(
    server: Peer, identity: str, psk: bytes, *, sink: DatagramSink | None = None
) -> Channel:
    """A handshaken session to ``server``; TimeoutError or ConnectionError otherwise."""
    dtls = DtlsClient(client_configuration(identity, psk), server, sink=sink)
    try:
        await dtls.handshake(HANDSHAKE_TIMEOUT_S)
    except BaseException:
        await dtls.close()
        raise
    return Channel(dtls)


class ChannelPool:
    """Sessions by peer; a broken one is replaced and the request sent once more."""

    def __init__(
        self,
        identity: str,
        *,
        sink: DatagramSink | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.identity = identity
        self.sink = sink
        self.request_timeout_s = request_timeout_s
        self.channels: dict[Peer, Channel] = {}
        self.handshakes = 0
        self._locks: dict[Peer, asyncio.Lock] = {}

    async def _channel(self, peer: Peer, psk: bytes) -> Channel:
        async with self._locks.setdefault(peer, asyncio.Lock()):
            channel = self.channels.get(peer)
            if channel is not None and channel.usable:
                return channel
            if channel is not None:
                await channel.close()
            channel = await open_channel(peer, self.identity, psk, sink=self.sink)
            self.handshakes += 1
            self.channels[peer] = channel
            return channel

    async def request(self, peer: Peer, psk: bytes, message: aiocoap.Message) -> aiocoap.Message:
        for attempt in range(2):
            channel = await self._channel(peer, psk)
            try:
                async with asyncio.timeout(self.request_timeout_s):
                    return await channel.request(message)
            except (ChannelClosed, ConnectionError, CoapsTimeout, TimeoutError):
                await self.drop(peer)
                if attempt:
                    raise
            except BaseException:
                await self.drop(peer)  # cancelled mid-request: the session's state is unknown
                raise
        raise AssertionError("unreachable")

    async def drop(self, peer: Peer) -> None:
        channel = self.channels.pop(peer, None)
        if channel is not None:
            with contextlib.suppress(Exception):
                await channel.close()

    async def close(self) -> None:
        for peer in list(self.channels):
            await self.drop(peer)
