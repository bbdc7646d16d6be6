"""An aiocoap server that is an EDHOC responder and serves its resources over OSCORE.

EDHOC method 3 (static DH keys on both sides), cipher suite 2 (P-256), CCS credentials, the
responder's sent by key id. Which initiators are accepted is decided per handshake by a
``PeerLookup`` (kid -> CCS or None). Resources learn the authenticated peer of an OSCORE
request with ``authenticated_peer(request)``; ``ProtectedResource`` answers 4.01 to anything
that did not come through an EDHOC-derived context.

Built on aiocoap's ``OscoreSiteWrapper``: the OSCORE processing, replay window and EDHOC
option handling (RFC 9668 combined message_3) are aiocoap's; this module replaces the part that
picks connection identifiers and stores contexts (see ``sessions``) and ties the responder
identity to the server rather than to the URI the client happened to use.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

import aiocoap
import cbor2
import lakers
from aiocoap import error, resource
from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

from testbed.node.coap.credentials import Credential, EdhocIdentity, PeerLookup
from testbed.node.coap.handshake_gate import HandshakeGate, source_of
from testbed.node.coap.sessions import SessionTable
from testbed.node.coap.transport import DatagramSink, bound_port, create_context

log = logging.getLogger("testbed.coap.edhoc-server")


class EdhocOscoreSite(OscoreSiteWrapper):  # type: ignore[misc]
    """Wraps a site: /.well-known/edhoc runs the responder, OSCORE requests are unprotected
    with the session their kid (= C_R) names, plain requests pass through unchanged."""

    def __init__(
        self,
        inner_site: Any,
        identity: EdhocIdentity,
        peers: PeerLookup,
        *,
        max_sessions: int = 4096,
        max_pending: int = 256,
        pending_timeout: float = 60.0,
        gate: HandshakeGate | None = None,
        max_pending_per_source: int = 64,
    ) -> None:
        self.identity = identity
        self.gate = gate
        self.sessions = SessionTable(
            peers,
            log,
            max_sessions=max_sessions,
            max_pending=max_pending,
            pending_timeout=pending_timeout,
            max_pending_per_source=max_pending_per_source,
        )
        super().__init__(inner_site, self.sessions)

    def _process_edhoc_msg12(self, pipe: Any) -> None:
        # Return routability and rate limits first: no state, no cryptography before them.
        refusal = None if self.gate is None else self.gate.check(pipe.request)
        if refusal is not None:
            pipe.add_response(refusal, is_last=True)
            return
        responder = lakers.EdhocResponder(
            r=self.identity.d, cred_r=self.identity.credential.encoded
        )
        try:
            # The payload starts with CBOR true (0xf5), RFC 9528 Appendix A.2; checked upstream.
            c_i, ead_1 = responder.process_message_1(pipe.request.payload[1:])
        except ValueError as exc:
            # e.g. a cipher suite other than 2; an EDHOC error message would be nicer (TODO)
            raise error.BadRequest("EDHOC message_1 not acceptable") from exc
        if any(item.is_critical() for item in ead_1):
            raise error.BadRequest("critical EAD_1 not supported")
        session = self.sessions.open(responder, c_i, source_of(pipe.request.remote))
        message_2 = responder.prepare_message_2(
            lakers.CredentialTransfer.ByReference, session.recipient_id, None
        )
        pipe.add_response(aiocoap.Message(code=aiocoap.CHANGED, payload=message_2), is_last=True)

    def _process_edhoc_msg34(self, pipe: Any) -> None:
        # Only for initiators that do not combine message_3 with their first OSCORE request.
        payload = io.BytesIO(pipe.request.payload)
        try:
            c_r = cbor2.load(payload)
        except (cbor2.CBORDecodeError, ValueError) as exc:
            raise error.BadRequest("message_3 without C_R") from exc
        # A one-byte C_R whose value is a CBOR int travels as that int (RFC 9528 3.3.2).
        # (aiocoap 0.4.17 tests -24 <= C_R < 23, so C_R 23 ends in a broken log format: 5.00.)
        if isinstance(c_r, int) and not isinstance(c_r, bool) and -24 <= c_r <= 23:
            c_r = cbor2.dumps(c_r)
        session = self.sessions.session(c_r) if isinstance(c_r, bytes) else None
        if session is None:
            raise error.BadRequest("no EDHOC session for this C_R")
        message_4 = session._offer_message_3(payload.read())
        pipe.add_response(aiocoap.Message(code=aiocoap.CHANGED, payload=message_4), is_last=True)


def authenticated_peer(request: aiocoap.Message) -> Credential | None:
    """The EDHOC-authenticated initiator that sent this request over OSCORE, else None."""
    for claim in getattr(request.remote, "authenticated_claims", ()):
        if isinstance(claim, Credential):
            return claim
    return None


def require_peer(request: aiocoap.Message) -> Credential:
    """The authenticated peer, or 4.01 Unauthorized for unprotected requests."""
    peer = authenticated_peer(request)
    if peer is None:
        raise error.Unauthorized("OSCORE with an EDHOC-authenticated context required")
    return peer


class ProtectedResource(resource.Resource):  # type: ignore[misc]
    """A resource that only EDHOC-authenticated peers may use; call ``require_peer`` inside
    a handler to get the peer's credential."""

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        require_peer(request)
        response: aiocoap.Message = await super().render(request)
        return response


@dataclass
class EdhocServer:
    context: aiocoap.Context
    site: EdhocOscoreSite

    @property
    def port(self) -> int:
        return bound_port(self.context)

    @property
    def sessions(self) -> SessionTable:
        return self.site.sessions

    async def close(self) -> None:
        await self.context.shutdown()


async def start_edhoc_server(
    resources: Any,
    identity: EdhocIdentity,
    peers: PeerLookup,
    *,
    bind: tuple[str, int] = ("::", 5683),
    sink: DatagramSink | None = None,
    max_sessions: int = 4096,
    max_pending: int = 256,
    pending_timeout: float = 60.0,
    gate: HandshakeGate | None = None,
    max_pending_per_source: int = 64,
) -> EdhocServer:
    """Serve ``resources`` (an aiocoap Site) behind an EDHOC responder on ``bind``."""
    site = EdhocOscoreSite(
        resources,
        identity,
        peers,
        max_sessions=max_sessions,
        max_pending=max_pending,
        pending_timeout=pending_timeout,
        gate=gate,
        max_pending_per_source=max_pending_per_source,
    )
    context = await create_context(site=site, bind=bind, sink=sink, loggername="coap-server")
    return EdhocServer(context, site)
