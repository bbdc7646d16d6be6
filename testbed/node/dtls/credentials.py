"""Credentials of the DTLS profiles: Mbed TLS objects from the testbed's files, the trust
center's server certificate, and the per-thing pre-shared key.

The trust center's certificate is issued at start by its own domain CA for its EDHOC key
(it holds both), with the DNS name ``TRUST_CENTER_NAME``: a thing that trusts the domain CA
checks that name, so that another holder of a domain certificate (a thing with an LDevID)
cannot pose as the trust center. The thing's anchor is the domain CA certificate it was
given at sale (``material.TRUST_CENTER_CA``).

The PSK identity is the hex of the thing's key identifier (the kid of its CCS): it travels
in clear in the ClientKeyExchange (RFC 4279), and the kid is what the thing discloses in
EDHOC as well; the serial stays out of the handshake.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mbedtls import pk
from mbedtls import x509 as mx

from testbed.node.material import PSK_BYTES
from testbed.pki import CertificateAuthority, keys

TRUST_CENTER_NAME = "trust-center.testbed"
CERT_LIFETIME = timedelta(days=30)
CIPHER_PSK = "TLS-PSK-WITH-AES-128-CCM-8"  # RFC 7925 4.2 mandatory-to-implement
CIPHER_CERT = "TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8"  # RFC 7925 4.4


def crt(cert: x509.Certificate) -> mx.CRT:
    return mx.CRT.from_DER(cert.public_bytes(serialization.Encoding.DER))


def ecc(key: keys.PrivateKey) -> pk.ECC:
    return pk.ECC.from_DER(keys.private_der(key))


def issue_server_certificate(
    ca: CertificateAuthority, key: keys.PrivateKey, *, now: datetime | None = None
) -> x509.Certificate:
    """The trust center's DTLS certificate: ``key`` certified by its domain CA."""
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TRUST_CENTER_NAME)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(TRUST_CENTER_NAME)]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )


def psk_identity(kid: bytes) -> str:
    return kid.hex()


def mint_psk() -> bytes:
    return secrets.token_bytes(PSK_BYTES)


def read_psk(path: Path) -> bytes:
    """A PSK file: exactly PSK_BYTES raw bytes, mode 0600 (ValueError otherwise)."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ValueError(f"{path}: mode {mode:o}, a PSK file must be 0600")
    data = path.read_bytes()
    if len(data) != PSK_BYTES:
        raise ValueError(f"{path}: {len(data)} B, a PSK is {PSK_BYTES} B")
    return data


def write_psk(path: Path, psk: bytes) -> None:
    if len(psk) != PSK_BYTES:
        raise ValueError(f"a PSK is {PSK_BYTES} B, not {len(psk)}")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(psk)
    path.chmod(0o600)
