"""The edhoc-oscore profile end to end: EDHOC, OSCORE, EST-coaps simple enrollment, costs."""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path

import aiocoap
import cbor2
from aiocoap import error, resource
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testbed.node.bootstrap.edhoc_oscore import CONTENT_FORMAT_PKIX_CERT, EdhocOscoreProfile
from testbed.node.bootstrap.profile import (
    BootstrapContext,
    BootstrapResult,
    FactoryIdentity,
    FailureReason,
    Outcome,
    TrustCenterRef,
)
from testbed.node.coap.credentials import EdhocIdentity, PeerTable
from testbed.node.coap.edhoc_server import ProtectedResource, require_peer, start_edhoc_server


class SimpleEnroll(ProtectedResource):
    """/.well-known/est/sen as a test trust center: signs any CSR of an admitted, not denied
    peer with a throwaway CA."""

    def __init__(self, denied: set[bytes]) -> None:
        super().__init__()
        self.denied = denied
        self.ca_key = ec.generate_private_key(ec.SECP256R1())

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        peer = require_peer(request)
        if peer.kid in self.denied:
            raise error.Forbidden("revoked")
        csr = x509.load_der_x509_csr(request.payload)
        now = datetime.datetime.now(datetime.UTC)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test domain CA")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(ca_name)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.ca_key, hashes.SHA256())
        )
        return aiocoap.Message(
            code=aiocoap.CHANGED,
            payload=cert.public_bytes(serialization.Encoding.DER),
            content_format=CONTENT_FORMAT_PKIX_CERT,
        )


def _write_identity(directory: Path, identity: EdhocIdentity, name: str) -> tuple[Path, Path]:
    key = directory / f"{name}.key"
    key.write_bytes(
        identity.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    ccs = directory / f"{name}.ccs"
    ccs.write_bytes(identity.credential.encoded)
    return key, ccs


def _csr(node: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def _run(
    tmp_path: Path,
    *,
    admitted: bool = True,
    denied: bool = False,
    key_mode: int = 0o600,
) -> BootstrapResult:
    thing = EdhocIdentity.generate(b"\x2b", "thing-01")
    center = EdhocIdentity.generate(b"\x32", "trust-center")
    key, ccs = _write_identity(tmp_path, thing, "thing")
    key.chmod(key_mode)
    _, center_ccs = _write_identity(tmp_path, center, "center")

    async def body() -> BootstrapResult:
        site = resource.Site()
        site.add_resource(
            [".well-known", "est", "sen"],
            SimpleEnroll({thing.credential.kid} if denied else set()),
        )
        peers = PeerTable([thing.credential] if admitted else [])
        server = await start_edhoc_server(site, center, peers, bind=("::1", 0))
        try:
            ctx = BootstrapContext(
                node="thing-01",
                identity=FactoryIdentity(private_key=key, ccs=ccs),
                trust_center=TrustCenterRef(uri=f"coap://[::1]:{server.port}", ccs=center_ccs),
                csr_der=_csr("thing-01"),
                timeout_s=30,
            )
            return await EdhocOscoreProfile().bootstrap(ctx)
        finally:
            await server.close()

    return asyncio.run(body())


def test_bootstrap_enrolls_and_reports_its_cost(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert (result.outcome, result.reason) == (Outcome.SUCCESS, None)
    assert result.enrollment is not None
    ldevid = x509.load_der_x509_certificate(result.enrollment.ldevid_der)
    assert ldevid.subject.rfc4514_string() == "CN=thing-01"
    assert [(m.message, m.direction, m.datagrams) for m in result.messages] == [
        ("edhoc_message_1", "sent", 1),
        ("edhoc_message_2", "received", 1),
        ("edhoc_message_3+oscore_request", "sent", 1),
        ("oscore_response", "received", 1),
    ]
    assert [m.message_bytes for m in result.messages[:3]] == [38, 45, 19]
    sent_bytes, sent_datagrams = result.total("sent")
    received_bytes, _ = result.total("received")
    assert sent_datagrams == 2 and result.retransmissions == 0
    # The CSR rides in the combined request, the certificate in the response.
    assert sent_bytes > len(_csr("x")) and received_bytes > len(result.enrollment.ldevid_der)
    assert 0 < result.duration_s < 30
    report = json.loads(json.dumps(result.to_dict()))
    assert report["outcome"] == "success" and report["ldevid_bytes"] > 0


def test_unknown_factory_credential_is_handshake_refused(tmp_path: Path) -> None:
    result = _run(tmp_path, admitted=False)
    assert (result.outcome, result.reason) == (Outcome.FAILURE, FailureReason.HANDSHAKE_REFUSED)
    assert "4.01" in result.detail
    assert result.enrollment is None
    assert [m.message for m in result.messages][-1] == "oscore_error"


def test_denied_peer_is_enrollment_refused(tmp_path: Path) -> None:
    result = _run(tmp_path, denied=True)
    assert result.reason is FailureReason.ENROLLMENT_REFUSED
    assert result.detail.startswith("4.03")


def test_group_readable_factory_key_is_a_configuration_failure(tmp_path: Path) -> None:
    result = _run(tmp_path, key_mode=0o640)
    assert result.reason is FailureReason.CONFIGURATION
    assert "chmod 600" in result.detail
    assert result.messages == ()


def test_silent_trust_center_times_out(tmp_path: Path) -> None:
    thing = EdhocIdentity.generate(b"\x2b")
    key, ccs = _write_identity(tmp_path, thing, "thing")
    center_ccs = tmp_path / "center.ccs"
    center_ccs.write_bytes(EdhocIdentity.generate(b"\x32").credential.encoded)

    async def body() -> BootstrapResult:
        loop = asyncio.get_running_loop()
        # A socket that receives and never answers: the message_1 copies are counted.
        silent, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("::1", 0)
        )
        try:
            port = silent.get_extra_info("sockname")[1]
            ctx = BootstrapContext(
                node="thing-01",
                identity=FactoryIdentity(private_key=key, ccs=ccs),
                trust_center=TrustCenterRef(uri=f"coap://[::1]:{port}", ccs=center_ccs),
                csr_der=_csr("thing-01"),
                timeout_s=3.5,  # first retransmission after 2-3 s, the second after 6-9 s
            )
            return await EdhocOscoreProfile().bootstrap(ctx)
        finally:
            silent.close()

    result = asyncio.run(body())
    assert result.reason is FailureReason.TIMEOUT
    (m1,) = result.messages
    assert m1.message == "edhoc_message_1" and m1.datagrams == 2 and m1.retransmissions == 1


def test_ccs_files_are_deterministic_cbor(tmp_path: Path) -> None:
    thing = EdhocIdentity.generate(b"\x2b", "thing")
    assert cbor2.dumps(cbor2.loads(thing.credential.encoded), canonical=True) == (
        thing.credential.encoded
    )
