"""The ``dtls-cert`` and ``dtls-psk`` bootstrap profiles, thing side.

DTLS 1.2 (RFC 6347, RFC 7925 profile: AES-128-CCM-8) to the trust center's CoAPS port, then
the same two requests as ``edhoc-oscore`` over CoAP inside the session (RFC 7252 Section 9):
POST the CSR to ``/.well-known/est/sen`` (EST-coaps, RFC 9148) and GET ``/cfg/oscore``. The
thing ends up with the same LDevID and OSCORE contexts, so operation afterwards is the same
whatever the bootstrap was, and only the bootstrap's cost differs.

- ``dtls-cert``: mutual authentication with certificates. The thing presents its IDevID and
  checks that the trust center's certificate chains to the domain CA it was given at sale
  (``TrustCenterRef.ca_certificate``) and names ``TRUST_CENTER_NAME``.
- ``dtls-psk``: the factory PSK (``FactoryIdentity.psk``); identity: the kid of its CCS.

Round trips: with the cookie exchange the handshake takes three (ClientHello /
HelloVerifyRequest, ClientHello / server flight, client flight / Finished), then one per
request: five in all, against EDHOC's three.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import urlsplit

import aiocoap
from cryptography import x509
from mbedtls import tls

from testbed.node.bootstrap.accounting import WireLog
from testbed.node.bootstrap.answers import Attempt
from testbed.node.bootstrap.edhoc_oscore import CONTENT_FORMAT_PKCS10
from testbed.node.bootstrap.profile import (
    BootstrapContext,
    BootstrapResult,
    FailureReason,
)
from testbed.node.coap.credentials import Credential
from testbed.node.dtls import credentials as creds
from testbed.node.dtls.classify import DtlsClassifier
from testbed.node.dtls.coaps import ChannelClosed, CoapsClient, CoapsTimeout
from testbed.node.dtls.endpoint import DEFAULT_MTU, DtlsClient
from testbed.node.enrollment_api import EST_SIMPLE_ENROLL
from testbed.pki import keys

COAPS_PORT = 5684
CERT, PSK = "cert", "psk"


def coaps_address(uri: str, port: int = COAPS_PORT) -> tuple[str, int]:
    """The trust center's CoAPS address: a coaps:// URI as given, else its host on ``port``."""
    parts = urlsplit(uri)
    if parts.hostname is None:
        raise ValueError(f"trust center URI {uri!r} has no host")
    if parts.scheme == "coaps" and parts.port is not None:
        return parts.hostname, parts.port
    return parts.hostname, port


class DtlsProfile:
    def __init__(
        self,
        mode: str,
        enroll_path: str = EST_SIMPLE_ENROLL,
        config_path: str | None = None,
        *,
        mtu: int = DEFAULT_MTU,
        port: int = COAPS_PORT,
        handshake_timeout: tuple[float, float] = (1.0, 16.0),
    ) -> None:
        if mode not in (CERT, PSK):
            raise ValueError(f"DTLS profile mode {mode!r}: 'cert' or 'psk'")
        self.mode = mode
        self.name = f"dtls-{mode}"
        self.enroll_path = enroll_path
        self.config_path = config_path
        self.mtu = mtu
        self.port = port
        # RFC 6347 4.2.4.1: initial retransmission timer (1 s suggested), doubled up to the
        # maximum; past it Mbed TLS gives the handshake up.
        self.handshake_timeout = handshake_timeout

    def configuration(self, ctx: BootstrapContext) -> tls.DTLSConfiguration:
        """ValueError or OSError if the factory material is missing or unusable."""
        common = tls.DTLSConfiguration(
            lowest_supported_version=tls.DTLSVersion.DTLSv1_2,
            highest_supported_version=tls.DTLSVersion.DTLSv1_2,
            handshake_timeout_min=self.handshake_timeout[0],
            handshake_timeout_max=self.handshake_timeout[1],
        )
        if self.mode == PSK:
            if ctx.identity.psk is None or ctx.identity.ccs is None:
                raise ValueError("dtls-psk needs the factory PSK and the CCS (for its kid)")
            psk = creds.read_psk(ctx.identity.psk)
            kid = Credential.from_file(ctx.identity.ccs).kid
            return replace(
                common,
                validate_certificates=False,
                ciphers=(creds.CIPHER_PSK,),
                pre_shared_key=(creds.psk_identity(kid), psk),
            )
        if ctx.identity.idevid is None or ctx.trust_center.ca_certificate is None:
            raise ValueError("dtls-cert needs the IDevID and the trust center's CA certificate")
        idevid = x509.load_der_x509_certificate(ctx.identity.idevid.read_bytes())
        key = keys.load_private(ctx.identity.private_key.read_bytes(), "device key")
        anchor = x509.load_der_x509_certificate(ctx.trust_center.ca_certificate.read_bytes())
        store = tls.TrustStore()
        store.add(creds.crt(anchor))
        return replace(
            common,
            validate_certificates=True,
            certificate_chain=((creds.crt(idevid),), creds.ecc(key)),
            trust_store=store,
            ciphers=(creds.CIPHER_CERT,),
        )

    async def bootstrap(self, ctx: BootstrapContext) -> BootstrapResult:
        wire = WireLog(DtlsClassifier(local_is_server=False))
        attempt = Attempt(self.name, wire)
        failed = attempt.failed

        try:
            config = self.configuration(ctx)
            server = coaps_address(ctx.trust_center.uri, self.port)
        except (ValueError, OSError, TypeError) as exc:
            return failed(FailureReason.CONFIGURATION, str(exc))
        hostname = creds.TRUST_CENTER_NAME if self.mode == CERT else None
        client = DtlsClient(config, server, server_hostname=hostname, mtu=self.mtu, sink=wire)
        config_answer = None
        try:
            async with asyncio.timeout(ctx.timeout_s):
                try:
                    await client.handshake(ctx.timeout_s)
                except ConnectionError as exc:
                    return failed(*_handshake_failure(str(exc), client))
                coap = CoapsClient(client)
                response = await coap.request(
                    aiocoap.POST,
                    self.enroll_path,
                    ctx.csr_der,
                    content_format=CONTENT_FORMAT_PKCS10,
                )
                if response.code == aiocoap.CHANGED and self.config_path is not None:
                    config_answer = await coap.request(aiocoap.GET, self.config_path)
        except TimeoutError:
            return failed(FailureReason.TIMEOUT, f"no enrollment within {ctx.timeout_s} s")
        except CoapsTimeout as exc:
            return failed(FailureReason.TIMEOUT, str(exc))
        except ChannelClosed as exc:
            return failed(FailureReason.HANDSHAKE_REFUSED, f"session closed: {exc}")
        except OSError as exc:
            return failed(FailureReason.UNREACHABLE, str(exc))
        finally:
            await client.close()

        return attempt.enrolled(response, config_answer, self.config_path)


def _handshake_failure(error: str, client: DtlsClient) -> tuple[FailureReason, str]:
    """Our verification of the server failed, or the server refused us (an alert)."""
    if client.network_error is not None:
        return FailureReason.UNREACHABLE, error
    if "timed out" in error.lower():  # Mbed TLS gave up retransmitting (handshake_timeout_max)
        return FailureReason.TIMEOUT, f"DTLS handshake: {error}"
    if "X509" in error or "verif" in error.lower():
        return FailureReason.PEER_AUTHENTICATION, f"trust center not authenticated: {error}"
    return FailureReason.HANDSHAKE_REFUSED, f"DTLS handshake refused: {error}"
