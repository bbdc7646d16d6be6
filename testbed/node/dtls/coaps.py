"""CoAP over DTLS (RFC 7252 Section 9, "coaps"): one request at a time from the client, an
aiocoap ``Site`` rendering requests on the server.

DTLS does not retransmit application data, so confirmable messages carry CoAP's own
reliability (RFC 7252 4.2: ACK_TIMEOUT 2 s, ACK_RANDOM_FACTOR 1.5, MAX_RETRANSMIT 4). The server
answers piggybacked and keeps its recent answers per session by message ID, so that a
retransmitted request gets the same answer instead of a second enrollment.

Resources see the authenticated peer of the session as ``request.remote.authenticated_claims``
(the same place aiocoap puts an EDHOC peer), so the trust center's resources serve both.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import aiocoap
from aiocoap import error
from aiocoap.interfaces import EndpointAddress
from aiocoap.numbers.types import Type

from testbed.node.bootstrap.accounting import Peer
from testbed.node.dtls.endpoint import DtlsClient, DtlsServer, ServerSession

ACK_TIMEOUT_S = 2.0
ACK_RANDOM_FACTOR = 1.5
MAX_RETRANSMIT = 4
REMEMBERED_ANSWERS = 16


class CoapsTimeout(TimeoutError):
    """No answer after MAX_RETRANSMIT retransmissions."""


class ChannelClosed(ConnectionError):
    """The DTLS session ended (close_notify or alert) before the answer."""


class DtlsRemote(EndpointAddress):  # type: ignore[misc]
    """The remote of a request that came over a DTLS session."""

    scheme = "coaps"
    is_multicast = False
    is_multicast_locally = False

    def __init__(
        self, peer: Peer, local: Peer, claims: Sequence[Any], profile: str | None = None
    ) -> None:
        self.sockaddr = peer
        self.profile = profile  # the bootstrap profile the session is, for metric labels
        self._local = local
        self._claims = list(claims)

    @property
    def authenticated_claims(self) -> list[Any]:
        return self._claims

    @staticmethod
    def _hostinfo(address: Peer) -> str:
        return f"[{address[0]}]:{address[1]}"

    @property
    def hostinfo(self) -> str:
        return self._hostinfo(self.sockaddr)

    @property
    def hostinfo_local(self) -> str:
        return self._hostinfo(self._local)

    @property
    def blockwise_key(self) -> tuple[Peer, Peer]:
        return self.sockaddr, self._local

    @property
    def uri_base(self) -> str:
        return f"coaps://{self.hostinfo}"

    @property
    def uri_base_local(self) -> str:
        return f"coaps://{self.hostinfo_local}"


def _request(code: aiocoap.numbers.Code, path: str, payload: bytes, **options: Any) -> Any:
    path, _, query = path.partition("?")
    message = aiocoap.Message(code=code, payload=payload, **options)
    message.mtype = Type.CON
    message.opt.uri_path = tuple(unquote(p) for p in path.strip("/").split("/") if p)
    if query:
        message.opt.uri_query = tuple(unquote(q) for q in query.split("&"))
    return message


class CoapsClient:
    """Requests over an established ``DtlsClient`` session, one at a time."""

    def __init__(self, dtls: DtlsClient, *, rng: random.Random | None = None) -> None:
        self.dtls = dtls
        self.rng = rng or random.Random()
        self._mid = self.rng.randrange(1 << 16)
        self.retransmissions = 0

    async def request(
        self, code: aiocoap.numbers.Code, path: str, payload: bytes = b"", **options: Any
    ) -> aiocoap.Message:
        message = _request(code, path, payload, **options)
        self._mid = (self._mid + 1) & 0xFFFF
        message.mid = self._mid
        message.token = self.rng.randbytes(4)
        encoded = message.encode()
        timeout = ACK_TIMEOUT_S * self.rng.uniform(1.0, ACK_RANDOM_FACTOR)
        for attempt in range(MAX_RETRANSMIT + 1):
            if attempt:
                self.retransmissions += 1
            self.dtls.send(encoded)
            try:
                async with asyncio.timeout(timeout):
                    return await self._answer(message)
            except TimeoutError:
                timeout *= 2
        raise CoapsTimeout(f"no answer to {message.code} after {MAX_RETRANSMIT} retransmissions")

    async def _answer(self, request: Any) -> aiocoap.Message:
        while True:
            data = await self.dtls.receive()
            if data is None:
                raise ChannelClosed(self.dtls.session.error or "the server closed the session")
            try:
                answer = aiocoap.Message.decode(data)
            except error.UnparsableMessage:
                continue
            if answer.mtype is Type.RST and answer.mid == request.mid:
                raise ChannelClosed("the server reset the request")
            if answer.token != request.token or not answer.code.is_response():
                continue  # an empty ACK (separate response follows) or an old answer
            if answer.mtype is Type.CON:
                self.dtls.send(aiocoap.Message(mtype=Type.ACK, mid=answer.mid, code=0).encode())
            return answer


class CoapsSite:
    """Serves ``site`` on a ``DtlsServer``; sessions without an admitted peer get 4.01."""

    def __init__(self, server: DtlsServer, site: Any, local: Peer) -> None:
        self.server = server
        self.site = site
        self.local = local
        self._tasks: set[asyncio.Task[None]] = set()

    def on_data(self, session: ServerSession, data: bytes) -> None:
        try:
            request = aiocoap.Message.decode(data)
        except error.UnparsableMessage:
            return
        if not request.code.is_request() or request.mtype not in (Type.CON, Type.NON):
            return
        answers: OrderedDict[int, bytes | None] = _answers(session)
        if request.mid in answers:
            cached = answers[request.mid]
            if cached is not None:  # else: still rendering; the answer will go out once
                with contextlib.suppress(ConnectionError):
                    self.server.send(session, cached)
            return
        answers[request.mid] = None
        while len(answers) > REMEMBERED_ANSWERS:
            answers.popitem(last=False)
        task = asyncio.create_task(self._render(session, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _render(self, session: ServerSession, request: Any) -> None:
        claims = [] if session.admitted is None else [session.admitted]
        profile = "dtls-psk" if session.psk_identity else "dtls-cert"
        request.remote = DtlsRemote(session.peer, self.local, claims, profile)
        try:
            response = await self.site.render(request)
        except error.RenderableError as exc:
            response = exc.to_message()
        except Exception:  # a resource bug must not kill the session's other requests
            response = aiocoap.Message(code=aiocoap.INTERNAL_SERVER_ERROR)
        response.mtype = Type.ACK if request.mtype is Type.CON else Type.NON
        response.mid = request.mid
        response.token = request.token
        encoded = response.encode()
        _answers(session)[request.mid] = encoded
        with contextlib.suppress(ConnectionError):
            self.server.send(session, encoded)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _answers(session: ServerSession) -> OrderedDict[int, bytes | None]:
    found: OrderedDict[int, bytes | None] | None = getattr(session, "coap_answers", None)
    if found is None:
        found = OrderedDict()
        session.coap_answers = found  # type: ignore[attr-defined]
    return found
