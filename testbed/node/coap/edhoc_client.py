"""An EDHOC initiator that keeps its OSCORE context: one handshake for any number of requests.

aiocoap 0.4.17 runs EDHOC again for every request sent under ``edhoc-oscore`` credentials:
``TransportOSCORE._request`` tests ``secctx._established_context`` but stores the result on
``self._established_context`` (the transport), so the credential never learns its context.
This client sidesteps that path: ``establish()`` calls aiocoap's own
``EdhocCredentials.establish_context`` once and keeps the resulting OSCORE context; every
request is then addressed to that context explicitly (``OSCOREAddress``), so it is plain OSCORE
and can never leave unprotected, whatever the context's client credentials map holds.

With the combined mode of RFC 9668 (the default, as in aiocoap) message_3 rides on the first
OSCORE request. Until that request is answered the responder has no context, so the first
request runs alone; later ones may run concurrently.

A responder that verifies return routability answers message_1 with 4.01 and an Echo option
(RFC 9175; RFC 9528 names it for EDHOC). aiocoap 0.4.17 answers Echo only for OSCORE requests
(``transports/oscore.py``, RFC 8613 B.1.2), not for the plain message_1 its EDHOC initiator
sends, and raises on the 4.01. ``EchoAnsweringWire`` repeats such a request once with the
Echo value, as RFC 9175 Section 2.3 asks of a client.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiocoap
from aiocoap import error, oscore
from aiocoap.edhoc import EdhocCredentials
from aiocoap.message import UndecidedRemote
from aiocoap.transports.oscore import OSCOREAddress

from testbed.node.coap.credentials import KCCS, Credential, EdhocIdentity
from testbed.node.coap.errors import ChannelError, HandshakeRefused
from testbed.node.coap.transport import DatagramSink, create_context

log = logging.getLogger("testbed.coap.edhoc-client")

_SUITE_P256, _METHOD_STAT_STAT = 2, 3


class EdhocOscoreClient:
    def __init__(
        self,
        context: aiocoap.Context,
        identity: EdhocIdentity,
        server: Credential,
        uri: str,
        *,
        combined: bool = True,
        owns_context: bool = False,
    ) -> None:
        """``uri`` is the server's origin, e.g. ``coap://[fd00::1]``; paths go to ``request``."""
        self.context = context
        self.server = server
        remote = UndecidedRemote.from_pathless_uri(uri.rstrip("/"))
        self._remote = remote
        self.origin = f"{remote.scheme}://{remote.hostinfo}"
        self._edhoc = EdhocCredentials(
            suite=_SUITE_P256,
            method=_METHOD_STAT_STAT,
            own_cred_style="by-key-id",
            own_cred={KCCS: identity.credential.claims()},
            peer_cred={KCCS: server.claims()},
            private_key=identity.cose_key(),
            use_combined_edhoc=combined,
        )
        self._oscore: Any = None  # the EDHOC-derived OSCORE context, once established
        self._confirmed = False  # the responder has answered through that context
        self._gate = asyncio.Lock()
        self._owns_context = owns_context
        self.handshakes = 0

    @classmethod
    async def connect(
        cls,
        identity: EdhocIdentity,
        server: Credential,
        uri: str,
        *,
        sink: DatagramSink | None = None,
        combined: bool = True,
    ) -> EdhocOscoreClient:
        """A client with its own CoAP context (one UDP socket), optionally recording to sink."""
        context = await create_context(sink=sink, loggername="coap-client")
        return cls(context, identity, server, uri, combined=combined, owns_context=True)

    @property
    def established(self) -> bool:
        return self._oscore is not None

    async def establish(self) -> None:
        """Run EDHOC message_1/message_2 (and 3/4 when not combined) if not done yet."""
        async with self._gate:
            await self._establish_locked()

    async def _establish_locked(self) -> None:
        if self._oscore is not None:
            return
        self.handshakes += 1
        try:
            self._oscore = await self._edhoc.establish_context(
                wire=EchoAnsweringWire(self.context),
                underlying_address=self._remote,
                underlying_proxy_scheme=None,
                underlying_uri_host=None,
                logger=log,
            )
        except error.ResponseWrappingError as exc:
            code = exc.coapmessage.code.dotted
            raise HandshakeRefused(
                f"{self.origin} refused EDHOC with {code}",
                code,
                "check that the server runs an EDHOC responder with suite 2",
            ) from exc
        except ValueError as exc:  # lakers: message_2 did not verify against the expected CCS
            raise ChannelError(
                f"{self.origin} did not authenticate as kid {self.server.kid.hex()}: {exc}",
                "check the server CCS this node was given",
            ) from exc
        self._confirmed = False

    async def request(
        self, code: aiocoap.numbers.Code, path: str, payload: bytes = b"", **options: Any
    ) -> aiocoap.Message:
        """Send one request over OSCORE, running EDHOC first if there is no context yet.

        If the server has dropped our context (it evicts least recently used ones), it answers
        unprotected; then EDHOC runs again once and the request is repeated, which is safe
        because the server could not have processed the first copy.
        """
        for attempt in (1, 2):
            if not self._confirmed:
                async with self._gate:
                    if not self._confirmed:
                        await self._establish_locked()
                        response = await self._send(code, path, payload, options)
                        self._confirmed = True
                        return response
            try:
                return await self._send(code, path, payload, options)
            except HandshakeRefused:
                if attempt == 2:
                    raise
                log.info("%s no longer knows our OSCORE context; running EDHOC again", self.origin)
        raise AssertionError("unreachable")

    async def _send(
        self, code: aiocoap.numbers.Code, path: str, payload: bytes, options: dict[str, Any]
    ) -> aiocoap.Message:
        secctx = self._oscore
        if secctx is None:
            raise ChannelError(f"no OSCORE context for {self.origin}", "call establish() first")
        message = aiocoap.Message(code=code, uri=self.origin + path, payload=payload, **options)
        message.remote = OSCOREAddress(secctx, message.remote)
        try:
            response: aiocoap.Message = await self.context.request(message).response
        except oscore.NotAProtectedMessage as exc:
            # The server answered without OSCORE: it has no (or a failed) context for us.
            plain = exc.plain_message
            if self._oscore is secctx:  # a concurrent request may have replaced it already
                self._oscore, self._confirmed = None, False
            raise HandshakeRefused(
                f"{self.origin} answered {plain.code} without OSCORE: {plain.payload!r}",
                plain.code.dotted,
                "the server does not admit this node's credential, or dropped its context",
            ) from exc
        return response

    async def close(self) -> None:
        if self._owns_context:
            await self.context.shutdown()


class _Pending:
    """The part of aiocoap's request handle that its EDHOC initiator uses."""

    def __init__(self, response: Any) -> None:
        self._response = asyncio.ensure_future(response)

    @property
    def response(self) -> Any:
        return self._response

    @property
    async def response_raising(self) -> aiocoap.Message:
        response: aiocoap.Message = await self._response
        if not response.code.is_successful():
            raise error.ResponseWrappingError(response)
        return response


class EchoAnsweringWire:
    """A CoAP context for the EDHOC initiator: a 4.01 carrying Echo is answered once."""

    def __init__(self, context: aiocoap.Context) -> None:
        self.context = context
        self.echo_answers = 0

    def request(self, message: aiocoap.Message) -> _Pending:
        return _Pending(self._exchange(message))

    async def _exchange(self, message: aiocoap.Message) -> aiocoap.Message:
        response: aiocoap.Message = await self.context.request(message).response
        echo = response.opt.echo
        if response.code == aiocoap.UNAUTHORIZED and echo is not None:
            self.echo_answers += 1
            log.debug("%s asked for return routability; repeating with its Echo", message.remote)
            again = message.copy(echo=echo, mid=None, token=None)
            response = await self.context.request(again).response
        return response
