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

import aiocoap
from aiocoap import error

from testbed.node.bootstrap.accounting import WireLog
from testbed.node.bootstrap.answers import Attempt
from testbed.node.bootstrap.profile import (
    BootstrapContext,
    BootstrapResult,
    FailureReason,
)
from testbed.node.coap.classify import CoapClassifier
from testbed.node.coap.credentials import Credential, EdhocIdentity
from testbed.node.coap.edhoc_client import EdhocOscoreClient
from testbed.node.coap.errors import ChannelError, CredentialError, HandshakeRefused

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
        wire = WireLog(CoapClassifier())
        attempt = Attempt(self.name, wire)
        failed = attempt.failed

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
                remaining = ctx.timeout_s - (time.monotonic() - attempt.started)
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

        return attempt.enrolled(response, config, self.config_path)
