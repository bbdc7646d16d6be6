"""The forwarding itself: aiocoap's ``ForwardProxy`` with the testbed's checks and outgoing side.

aiocoap's proxy (aiocoap.proxy.server) takes the request apart (Proxy-Scheme, Uri-Host,
Uri-Port; options it does not know and that are unsafe to forward refuse the request with
4.02), sends it on through an "outgoing context" and strips the response for the way back.
What the testbed adds:

- it is no open relay: the scheme must be the one of the leg (``coap`` end to end, ``coaps``
  hop by hop), the destination an address of one of the router's PANs (4.03 otherwise), and
  end to end only the building's backends may use it (4.03);
- the outgoing side is ``Outgoing``: end to end an aiocoap context (the OSCORE message goes on
  as it came, option and ciphertext untouched unless the proxy is compromised); hop by hop a
  DTLS session per thing (``channels.ChannelPool``) with the PSK the thing shares with its
  router;
- every request and response passes the ``Inspector`` (what it sees, counts, tampers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiocoap
from aiocoap import error
from aiocoap.numbers import codes
from aiocoap.proxy.server import CanNotRedirect, ForwardProxy

from testbed.contracts.proxy import END_TO_END, ProxyConfig, hostport
from testbed.node.proxy.inspect import REQUEST, RESPONSE, Inspector

FORWARD_TIMEOUT_S = 60.0  # a DTLS handshake (at most 30 s) and two request attempts
SCHEME = {END_TO_END: "coap"}  # hop by hop: coaps


class Forbidden(CanNotRedirect):  # type: ignore[misc]
    code = codes.FORBIDDEN
    message = "This proxy forwards only to the things of its PANs"


class WrongScheme(CanNotRedirect):  # type: ignore[misc]
    code = codes.PROXYING_NOT_SUPPORTED
    message = "Proxy-Scheme not served on this port"


class NotProxied(CanNotRedirect):  # type: ignore[misc]
    code = codes.PROXYING_NOT_SUPPORTED
    message = "Send Proxy-Scheme and Uri-Host: this endpoint is a forward proxy only"


class _Pending:
    """What aiocoap's Proxy awaits: an object with a ``response`` awaitable."""

    def __init__(self, response: Awaitable[aiocoap.Message]) -> None:
        self.response = asyncio.ensure_future(response)


Send = Callable[[aiocoap.Message], Awaitable[aiocoap.Message]]


class Outgoing:
    """The outgoing context of one leg: inspect, send with ``send``, inspect the answer."""

    def __init__(self, mode: str, send: Send, inspector: Inspector) -> None:
        self.mode = mode
        self.send = send
        self.inspector = inspector

    def request(self, request: aiocoap.Message, handle_blockwise: bool = False) -> _Pending:
        return _Pending(self._forward(request))

    async def _forward(self, request: aiocoap.Message) -> aiocoap.Message:
        request = self.inspector.message(self.mode, REQUEST, request)
        try:
            async with asyncio.timeout(FORWARD_TIMEOUT_S):
                response = await self.send(request)
        except CanNotRedirect as refused:  # no PSK with whatever sits at that address
            self.inspector.forwarded(self.mode, "refused")
            return refused.to_message()
        except (TimeoutError, error.TimeoutError):
            self.inspector.forwarded(self.mode, "timeout")
            raise error.TimeoutError("no answer from the thing") from None
        except (OSError, ConnectionError, error.Error):
            self.inspector.forwarded(self.mode, "unreachable")
            return aiocoap.Message(code=codes.BAD_GATEWAY)
        self.inspector.forwarded(self.mode, "answered")
        return self.inspector.message(self.mode, RESPONSE, response)


class ThingProxy(ForwardProxy):  # type: ignore[misc]
    """A forward proxy for one leg (``mode``) that forwards only to the router's PANs."""

    def __init__(
        self, outgoing: Outgoing, config: ProxyConfig, *, check_source: bool = False
    ) -> None:
        super().__init__(outgoing)
        self.mode = outgoing.mode
        self.config = config
        self.inspector = outgoing.inspector
        self.check_source = check_source
        self.scheme = SCHEME.get(self.mode, "coaps")

    def apply_redirection(self, request: aiocoap.Message) -> Any:
        try:
            if request.opt.proxy_scheme is None:
                raise NotProxied()
            if request.opt.proxy_scheme != self.scheme:
                raise WrongScheme()
            if not request.opt.uri_host or not self.config.forwards_to(request.opt.uri_host):
                raise Forbidden()
            return super().apply_redirection(request)
        except CanNotRedirect:
            self.inspector.forwarded(self.mode, "refused")
            raise

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        if self.check_source and self.config.allowed_sources:
            source = _source(request)
            if source not in self.config.allowed_sources:
                self.inspector.forwarded(self.mode, "refused")
                return aiocoap.Message(code=codes.FORBIDDEN, payload=b"not a backend")
        response: aiocoap.Message = await super().render(request)
        return response


def _source(request: aiocoap.Message) -> str | None:
    sockaddr = getattr(request.remote, "sockaddr", None)
    if not sockaddr:
        return None
    return str(sockaddr[0]).split("%")[0].removeprefix("::ffff:")


def destination(request: aiocoap.Message) -> tuple[str, int]:
    """The (address, port) aiocoap's redirection put on the request."""
    return hostport(request.remote.hostinfo)
