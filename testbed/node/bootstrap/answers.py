"""What a bootstrap profile makes of the trust center's answers, whatever the channel that
carried them (EDHOC + OSCORE, DTLS): the refusal format, the enrolment (LDevID) and the OSCORE
context hand-out, and the result to report, with the wire records of the attempt.
"""

from __future__ import annotations

import time
from typing import Any

import aiocoap
import cbor2
from cryptography import x509

from testbed.node.bootstrap.accounting import WireLog
from testbed.node.bootstrap.profile import BootstrapResult, Enrollment, FailureReason, OscoreGrant
from testbed.node.enrollment_api import K_CONTEXTS, K_DETAIL, K_REASON, OscoreContextGrant


class Attempt:
    """One bootstrap attempt of a profile: its clock and wire log, and its result."""

    def __init__(self, profile: str, wire: WireLog) -> None:
        self.profile = profile
        self.wire = wire
        self.started = time.monotonic()

    def failed(
        self, reason: FailureReason, detail: str, response: aiocoap.Message | None = None
    ) -> BootstrapResult:
        code = refusal = None
        if response is not None:
            code, refusal, detail = response.code.dotted, *_refusal(response, detail)
        return BootstrapResult.measured(
            self.profile,
            time.monotonic() - self.started,
            self.wire.records,
            reason=reason,
            detail=detail,
            code=code,
            refusal=refusal,
        )

    def enrolled(
        self, response: aiocoap.Message, config: aiocoap.Message | None, config_path: str | None
    ) -> BootstrapResult:
        """The result of the enrolment answer (an LDevID) and, if asked for, the context
        hand-out answer (``config``)."""
        if response.code != aiocoap.CHANGED:
            detail = f"{response.code}: {response.payload[:100]!r}"
            return self.failed(FailureReason.ENROLLMENT_REFUSED, detail, response)
        try:
            x509.load_der_x509_certificate(response.payload)
        except ValueError:
            return self.failed(
                FailureReason.PROTOCOL_ERROR, "enrollment answer is not a DER certificate"
            )
        grants: tuple[OscoreGrant, ...] = ()
        if config is not None:
            if config.code != aiocoap.CONTENT:
                detail = f"{config_path}: {config.code}: {config.payload[:100]!r}"
                return self.failed(FailureReason.ENROLLMENT_REFUSED, detail, config)
            try:
                grants = _grants(config.payload)
            except (ValueError, KeyError, TypeError, cbor2.CBORDecodeError) as exc:
                detail = f"{config_path} answer is not a context list: {exc!r}"
                return self.failed(FailureReason.PROTOCOL_ERROR, detail)
        return BootstrapResult.measured(
            self.profile,
            time.monotonic() - self.started,
            self.wire.records,
            enrollment=Enrollment(ldevid_der=response.payload, oscore_contexts=grants),
        )


def _refusal(response: aiocoap.Message, detail: str) -> tuple[str | None, str]:
    """The refusal reason code of a 4.03 answer, and the detail to report with it."""
    try:
        body: Any = cbor2.loads(response.payload) if response.payload else None
    except (cbor2.CBORDecodeError, ValueError):
        body = None
    if not isinstance(body, dict) or not isinstance(body.get(K_REASON), str):
        return None, detail  # not the trust center's refusal format (e.g. a plain diagnostic)
    reason: str = body[K_REASON]
    return reason, f"{response.code} {reason}: {body.get(K_DETAIL, '')}"


def _grants(payload: bytes) -> tuple[OscoreGrant, ...]:
    body = cbor2.loads(payload)
    grants = []
    for item in body[K_CONTEXTS]:
        g = OscoreContextGrant.from_cbor_map(item)
        grants.append(
            OscoreGrant(
                g.purpose,
                g.sender_id,
                g.recipient_id,
                g.master_secret,
                g.master_salt,
                g.id_context,
                g.generation,
                g.peers,
                g.manager_credential,
            )
        )
    return tuple(grants)
