"""The backend's requests through a border router's CoAP proxy (testbed.node.proxy).

End to end (RFC 8613 4.1 and 8.1): the backend protects the request with the thing's OSCORE
context itself and puts only the Class U options a proxy needs into the outer message:
Proxy-Scheme ``coap``, Uri-Host (the thing's address) and Uri-Port. Uri-Path, the method,
Content-Format and the value travel inside the ciphertext. The answer is unprotected with the
same context and request ID (an Echo challenge, RFC 8613 B.1.2, is answered once, as aiocoap's
own client does). aiocoap's client keeps only Uri-Host outside when it protects, so the outer
message is built here from ``secctx.protect`` rather than through aiocoap's OSCORE transport.

Hop by hop: the backend opens a DTLS (PSK) session to the proxy (the PSK it shares with that
router, ``proxies/<router>.psk``) and sends a plain CoAP request with Proxy-Scheme ``coaps``:
the proxy reads it, and a second session from the proxy to the thing carries it on.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiocoap
from aiocoap import oscore
from aiocoap.message import UndecidedRemote
from aiocoap.numbers import codes

from testbed.contracts.proxy import ProxyRoute, hostport, router_psk
from testbed.node.backend.peers import Reply
from testbed.node.dtls import credentials as creds
from testbed.node.proxy import channels

VIA_PROXY = "proxy"  # end to end: OSCORE through the proxy
VIA_PROXY_DTLS = "proxy-dtls"  # hop by hop: DTLS to the proxy, DTLS from it to the thing
VIAS = ("direct", VIA_PROXY, VIA_PROXY_DTLS)


class IntegrityFailure(Exception):
    """The answer did not unprotect under the thing's context (altered, or not the thing's)."""


def _thing_host(address: str) -> str:
    return f"[{address}]"


async def oscore_via_proxy(
    coap: aiocoap.Context,
    secctx: Any,
    proxy: str,
    thing: tuple[str, int],
    code: aiocoap.numbers.Code,
    resource: str,
    payload: bytes = b"",
    timeout: float = 10.0,
    **options: Any,
) -> Reply:
    """One OSCORE request to ``thing`` through the forward proxy at ``proxy`` ('[a]:p')."""
    inner = aiocoap.Message(code=code, payload=payload, **options)
    inner.opt.uri_path = tuple(p for p in resource.strip("/").split("/") if p)
    started = time.monotonic()

    async def exchange(echo: bytes | None) -> tuple[aiocoap.Message, Any]:
        message = inner if echo is None else inner.copy(echo=echo)
        outer, request_id = secctx.protect(message)
        # RFC 8613 4.1.3.3: Proxy-Scheme, Uri-Host and Uri-Port are Class U (outer only).
        outer.opt.proxy_scheme = "coap"
        outer.opt.uri_host = _thing_host(thing[0])
        outer.opt.uri_port = thing[1]
        outer.remote = UndecidedRemote("coap", proxy)
        response = await asyncio.wait_for(coap.request(outer).response, timeout)
        return response, request_id

    response, request_id = await exchange(None)
    try:
        oscore.verify_start(response)
    except oscore.NotAProtectedMessage:
        return Reply(response.code.dotted, response.payload, False, time.monotonic() - started)
    try:
        plain, _ = secctx.unprotect(response, request_id)
        if plain.code == codes.UNAUTHORIZED and plain.opt.echo is not None:
            response, request_id = await exchange(plain.opt.echo)
            plain, _ = secctx.unprotect(response, request_id)
    except (oscore.ProtectionInvalid, oscore.NotAProtectedMessage, ValueError) as exc:
        raise IntegrityFailure(f"response does not unprotect: {exc}") from exc
    return Reply(plain.code.dotted, plain.payload, True, time.monotonic() - started)


class DtlsProxyClient:
    """The backend's DTLS sessions to the hop-by-hop proxies, one per router."""

    def __init__(self, name: str, material_root: Path) -> None:
        self.name = name  # the PSK identity the proxies know us by
        self.material_root = material_root
        self.pool = channels.ChannelPool(name)

    def psk(self, route: ProxyRoute) -> bytes:
        return creds.read_psk(self.material_root / router_psk(route.router))

    async def request(
        self,
        route: ProxyRoute,
        thing: tuple[str, int],
        code: aiocoap.numbers.Code,
        resource: str,
        payload: bytes = b"",
        timeout: float = 10.0,
        **options: Any,
    ) -> Reply:
        assert route.coaps is not None
        message = aiocoap.Message(code=code, payload=payload, **options)
        message.opt.uri_path = tuple(p for p in resource.strip("/").split("/") if p)
        message.opt.proxy_scheme = "coaps"
        message.opt.uri_host = _thing_host(thing[0])
        message.opt.uri_port = thing[1]
        started = time.monotonic()
        response = await asyncio.wait_for(
            self.pool.request(hostport(route.coaps), self.psk(route), message), timeout
        )
        return Reply(response.code.dotted, response.payload, False, time.monotonic() - started)

    async def close(self) -> None:
        await self.pool.close()
