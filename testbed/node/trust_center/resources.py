"""The aiocoap resources of the trust center API (testbed.node.enrollment_api).

Thin adapters: find the authenticated peer and its address, parse the few options, call
``enrollment.Enrollment``, and turn a ``Refused`` into 4.03 with the CBOR refusal body. The
enrollment resources also tell the bootstrap tracker what they answered, so that the response
datagram closes the bootstrap's cost record.

A broken registry (sqlite3.Error: disk full, volume gone) is fatal for the node: a trust center
that keeps answering without recording would make the experiment's numbers lie.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import aiocoap
import cbor2
from aiocoap import error, resource
from cryptography.hazmat.primitives.serialization import Encoding

from testbed.node.bootstrap.accounting import Peer
from testbed.node.coap.credentials import Credential
from testbed.node.coap.edhoc_server import ProtectedResource, authenticated_peer, require_peer
from testbed.node.coap.sessions import ResponderSession
from testbed.node.enrollment_api import (
    CF_CBOR,
    CF_PKIX_CERT,
    CRL,
    EST_CA_CERTS,
    EST_SIMPLE_ENROLL,
    EST_SIMPLE_REENROLL,
    K_CONTEXTS,
    K_DETAIL,
    K_REASON,
    OSCORE_CONFIG,
    Q_DEVICE_CLASS,
    Q_NAME,
    Q_PORT,
    THINGS,
)
from testbed.node.trust_center.admission import Refused
from testbed.node.trust_center.bootstraps import Answer, BootstrapTracker
from testbed.node.trust_center.devices import DeviceRecord
from testbed.node.trust_center.enrollment import Enrollment, Reported
from testbed.node.trust_center.metrics import PROFILE, UNKNOWN
from testbed.node.trust_center.registry import Issued

MAX_DETAIL = 120  # refusal detail on the wire; the registry keeps the full text
MAX_REPORTED = 64

OnFatal = Callable[[BaseException], None]


def refusal_message(refused: Refused) -> aiocoap.Message:
    body = {K_REASON: refused.reason.value, K_DETAIL: refused.detail[:MAX_DETAIL]}
    return aiocoap.Message(
        code=aiocoap.FORBIDDEN, payload=cbor2.dumps(body), content_format=CF_CBOR
    )


def peer_address(request: aiocoap.Message) -> Peer | None:
    """(host, port) the request came from; under OSCORE, of the underlying UDP remote."""
    remote = getattr(request.remote, "underlying_address", request.remote)
    sockaddr = getattr(remote, "sockaddr", None)
    if not sockaddr:
        return None
    return str(sockaddr[0]), int(sockaddr[1])


def _reported(request: aiocoap.Message) -> Reported:
    """The thing's own report from the Uri-Query; unknown keys are ignored (forward
    compatibility), malformed known ones are 4.00."""
    values: dict[str, str] = {}
    for item in request.opt.uri_query:
        key, _, value = item.partition("=")
        if key in (Q_NAME, Q_DEVICE_CLASS, Q_PORT):
            if not value or len(value) > MAX_REPORTED or not value.isprintable():
                raise error.BadRequest(f"{key}= must be 1-{MAX_REPORTED} printable characters")
            values[key] = value
    port = values.get(Q_PORT)
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise error.BadRequest("port= must be a UDP port number")
    return Reported(
        values.get(Q_NAME), values.get(Q_DEVICE_CLASS), None if port is None else int(port)
    )


def forget_session(request: aiocoap.Message) -> None:
    """A refused peer (revoked, foreign, counterfeit...) keeps no OSCORE context here: the
    refusal is answered under the context its EDHOC just made (so the thing can trust it),
    and the context is dropped at once. Its next request needs a new EDHOC, which is refused
    again; nothing of it stays in the session table."""
    context = getattr(request.remote, "security_context", None)
    if isinstance(context, ResponderSession):
        context.forget()


def _registry_failed(on_fatal: OnFatal | None, exc: sqlite3.Error) -> error.InternalServerError:
    if on_fatal is not None:
        on_fatal(exc)
    return error.InternalServerError("registry unavailable")


class EnrollResource(resource.Resource):  # type: ignore[misc]
    """POST /.well-known/est/sen (``reenroll=False``) and /.well-known/est/sren."""

    def __init__(
        self,
        enrollment: Enrollment,
        tracker: BootstrapTracker | None,
        *,
        reenroll: bool,
        on_fatal: OnFatal | None = None,
    ) -> None:
        super().__init__()
        self.enrollment = enrollment
        self.tracker = tracker
        self.on_fatal = on_fatal
        self.reenroll = reenroll
        self.path = EST_SIMPLE_REENROLL if reenroll else EST_SIMPLE_ENROLL

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        received = time.monotonic()
        address = peer_address(request)
        peer = authenticated_peer(request)
        metrics = self.enrollment.metrics
        profile = getattr(request.remote, "profile", PROFILE)  # a DtlsRemote names its own
        if peer is None:
            if metrics is not None:
                metrics.enrollment(UNKNOWN, UNKNOWN, "refused", "unauthenticated", profile)
            raise error.Unauthorized("OSCORE with an EDHOC-authenticated context required")
        record = self.enrollment.policy.devices.by_kid(peer.kid)
        vendor, model = (record.vendor, record.model) if record else (UNKNOWN, UNKNOWN)
        try:
            issued: Issued = self.enrollment.enroll(
                peer,
                request.payload,
                request.opt.content_format,
                address=None if address is None else address[0],
                reported=_reported(request),
                reenroll=self.reenroll,
            )
        except Refused as refused:
            self._answer(address, peer.kid, record, "refused", refused.reason.value, received)
            if metrics is not None:
                metrics.enrollment(vendor, model, "refused", refused.reason.value, profile)
            forget_session(request)
            return refusal_message(refused)
        except sqlite3.Error as exc:
            raise _registry_failed(self.on_fatal, exc) from exc
        self._answer(address, peer.kid, record, "success", None, received)
        if metrics is not None:
            metrics.enrollment(vendor, model, "success", None, profile)
        return aiocoap.Message(
            code=aiocoap.CHANGED,
            payload=issued.certificate.public_bytes(Encoding.DER),
            content_format=CF_PKIX_CERT,
        )

    def _answer(
        self,
        address: Peer | None,
        kid: bytes,
        record: DeviceRecord | None,
        outcome: str,
        reason: str | None,
        received: float,
    ) -> None:
        if self.tracker is None or address is None:
            return
        answer = Answer(
            resource=self.path,
            outcome=outcome,
            reason=reason,
            thing=None if record is None else record.serial,
            kid=kid,
            vendor=UNKNOWN if record is None else record.vendor,
            model=UNKNOWN if record is None else record.model,
        )
        self.tracker.answered(address, answer, received)


class _RegistryView(ProtectedResource):
    """A GET over OSCORE answered from the registry for the authenticated peer (CBOR)."""

    def __init__(self, enrollment: Enrollment, on_fatal: OnFatal | None = None) -> None:
        super().__init__()
        self.enrollment = enrollment
        self.on_fatal = on_fatal

    def body(self, peer: Credential) -> bytes:
        raise NotImplementedError

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        peer = require_peer(request)
        try:
            payload = self.body(peer)
        except Refused as refused:
            forget_session(request)
            return refusal_message(refused)
        except sqlite3.Error as exc:
            raise _registry_failed(self.on_fatal, exc) from exc
        return aiocoap.Message(code=aiocoap.CONTENT, payload=payload, content_format=CF_CBOR)


class OscoreConfigResource(_RegistryView):
    """GET /cfg/oscore: the thing's own view of its contexts."""

    def body(self, peer: Credential) -> bytes:
        grants = self.enrollment.contexts(peer)
        return bytes(cbor2.dumps({K_CONTEXTS: [g.to_cbor_map() for g in grants]}))


class ThingsResource(_RegistryView):
    """GET /things: every enrolled thing with the backend's side of its context."""

    def body(self, peer: Credential) -> bytes:
        return self.enrollment.things_payload(peer)


class StaticResource(resource.Resource):  # type: ignore[misc]
    """GET of a value that is public (CA certificate, CRL): protected or not, same answer."""

    def __init__(self, body: Callable[[], bytes], content_format: int | None) -> None:
        super().__init__()
        self._body = body
        self._content_format = content_format

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(
            code=aiocoap.CONTENT, payload=self._body(), content_format=self._content_format
        )


def build_site(
    enrollment: Enrollment,
    tracker: BootstrapTracker | None,
    *,
    ca_certificate: bytes,
    crl: Callable[[], bytes],
    on_fatal: OnFatal | None = None,
) -> resource.Site:
    site = resource.Site()
    for path, res in (
        (EST_SIMPLE_ENROLL, EnrollResource(enrollment, tracker, reenroll=False, on_fatal=on_fatal)),
        (
            EST_SIMPLE_REENROLL,
            EnrollResource(enrollment, tracker, reenroll=True, on_fatal=on_fatal),
        ),
        (EST_CA_CERTS, StaticResource(lambda: ca_certificate, CF_PKIX_CERT)),
        (OSCORE_CONFIG, OscoreConfigResource(enrollment, on_fatal)),
        (CRL, StaticResource(crl, None)),
        (THINGS, ThingsResource(enrollment, on_fatal)),
    ):
        site.add_resource(path.strip("/").split("/"), res)
    return site
