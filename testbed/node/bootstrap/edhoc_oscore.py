"""The ``edhoc-oscore`` bootstrap profile, thing side.

EDHOC with the factory key (method 3, suite 2, CCS by kid) to the trust center, OSCORE from
it, then the LDevID enrollment as EST-coaps names it (RFC 9148): POST the PKCS#10 CSR to
``/.well-known/est/sen``, 2.04 with the certificate. With RFC 9668's combined mode the CSR
request carries EDHOC message_3, so the whole bootstrap takes two round trips: message_1 /
message_2, then message_3 with the CSR / the certificate. With ``config_path`` set the profile
then fetches the thing's OSCORE contexts (``/cfg/oscore``) over the same OSCORE context: one
more round trip, no second EDHOC.

A 4.03 answer carries the trust center's refusal reason (enrollment_api: {K_REASON, K_DETAIL});
the result reports it as ``refusal`` so that the caller can tell a final refusal from a glitch.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiocoap
import cbor2
from aiocoap import error
from cryptography import x509

from testbed.node.bootstrap.accounting import WireLog
from testbed.node.bootstrap.profile import (
    BootstrapContext,
    BootstrapResult,
    Enrollment,
    FailureReason,
    OscoreGrant,
)
from testbed.node.coap.classify import CoapClassifier
from testbed.node.coap.credentials import Credential, EdhocIdentity
from testbed.node.coap.edhoc_client import EdhocOscoreClient
from testbed.node.coap.errors import ChannelError, CredentialError, HandshakeRefused
from testbed.node.enrollment_api import K_CONTEXTS, K_DETAIL, K_REASON, OscoreContextGrant

EST_SIMPLE_ENROLL = "/.well-known/est/sen"
CONTENT_FORMAT_PKCS10 = 286  # application/pkcs10 (RFC 9148)
CONTENT_FORMAT_PKIX_CERT = 287  # application/pkix-cert


class EdhocOscoreProfile:
    name = "edhoc-oscore"

    def __init__(
        self, enroll_path: str = EST_SIMPLE_ENROLL, config_path: str | None = None
    ) -> None:
        self.enroll_path = enroll_path
        self.config_path = config_path  # e.g. enrollment_api.OSCORE_CONFIG; None: skip

    async def bootstrap(self, ctx: BootstrapContext) -> BootstrapResult:
        started = time.monotonic()
        wire = WireLog(CoapClassifier())

        def failed(
            reason: FailureReason, detail: str, response: aiocoap.Message | None = None
        ) -> BootstrapResult:
            code = refusal = None
            if response is not None:
                code, refusal, detail = response.code.dotted, *_refusal(response, detail)
            return BootstrapResult.measured(
                self.name,
                time.monotonic() - started,
                wire.records,
                reason=reason,
                detail=detail,
                code=code,
                refusal=refusal,
            )

        if ctx.identity.ccs is None or ctx.trust_center.ccs is None:
            return failed(FailureReason.CONFIGURATION, "edhoc-oscore needs both CCS files")
        try:
            identity = EdhocIdentity.from_files(ctx.identity.private_key, ctx.identity.ccs)
            server = Credential.from_file(ctx.trust_center.ccs)
        except (CredentialError, OSError) as exc:
            return failed(FailureReason.CONFIGURATION, str(exc))

        client: EdhocOscoreClient | None = None
        try:
            client = await EdhocOscoreClient.connect(
                identity, server, ctx.trust_center.uri, sink=wire
            )
            response = await asyncio.wait_for(
                client.request(
                    aiocoap.POST,
                    self.enroll_path,
                    ctx.csr_der,
                    content_format=CONTENT_FORMAT_PKCS10,
                ),
                ctx.timeout_s,
            )
            config = None
            if response.code == aiocoap.CHANGED and self.config_path is not None:
                remaining = ctx.timeout_s - (time.monotonic() - started)
                config = await asyncio.wait_for(
                    client.request(aiocoap.GET, self.config_path), max(remaining, 0.1)
                )
        except TimeoutError:
            return failed(FailureReason.TIMEOUT, f"no enrollment within {ctx.timeout_s} s")
        except error.TimeoutError as exc:  # CoAP gave up retransmitting (aiocoap's own class)
            return failed(FailureReason.TIMEOUT, str(exc))
        except HandshakeRefused as exc:
            return failed(FailureReason.HANDSHAKE_REFUSED, exc.message)
        except ChannelError as exc:
            return failed(FailureReason.PEER_AUTHENTICATION, exc.message)
        except (OSError, error.NetworkError) as exc:
            return failed(FailureReason.UNREACHABLE, str(exc))
        finally:
            if client is not None:
                await client.close()

        if response.code != aiocoap.CHANGED:
            detail = f"{response.code}: {response.payload[:100]!r}"
            return failed(FailureReason.ENROLLMENT_REFUSED, detail, response)
        try:
            x509.load_der_x509_certificate(response.payload)
        except ValueError:
            return failed(
                FailureReason.PROTOCOL_ERROR, "enrollment answer is not a DER certificate"
            )
        grants: tuple[OscoreGrant, ...] = ()
        if config is not None:
            if config.code != aiocoap.CONTENT:
                detail = f"{self.config_path}: {config.code}: {config.payload[:100]!r}"
                return failed(FailureReason.ENROLLMENT_REFUSED, detail, config)
            try:
                grants = _grants(config.payload)
            except (ValueError, KeyError, TypeError, cbor2.CBORDecodeError) as exc:
                detail = f"{self.config_path} answer is not a context list: {exc!r}"
                return failed(FailureReason.PROTOCOL_ERROR, detail)
        return BootstrapResult.measured(
            self.name,
            time.monotonic() - started,
            wire.records,
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
