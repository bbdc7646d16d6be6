"""Certificate authorities: a vendor's (IDevIDs) and an operator domain's (LDevIDs).

A ``Vendor`` owns one self-signed P-256 root. It signs device certificates at manufacture and,
with the same key, the first link of each ownership voucher: the verifier of a voucher needs
then nothing but the vendor CA certificate it already trusts for IDevIDs. (The architecture
allows a separate voucher-signing key; one key keeps trust anchors to one per vendor.)

A ``Domain`` owns an owner key, which vouchers name, and a self-signed domain CA that issues
LDevIDs and CRLs. The two are separate keys on purpose: the owner key changes hands only in an
ownership transfer; the CA key signs every day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from testbed.errors import PkiError
from testbed.pki import _cbor, _time, keys
from testbed.pki.names import check_name

BUNDLE_VERSION = 1
DOMAIN_CA_LIFETIME = timedelta(days=20 * 365)


@dataclass(frozen=True)
class CertificateAuthority:
    key: keys.PrivateKey
    cert: x509.Certificate

    @property
    def public_key(self) -> keys.PublicKey:
        public = self.cert.public_key()
        assert isinstance(public, keys.PublicKey)  # guaranteed by construction and from_parts
        return public

    @classmethod
    def from_parts(
        cls, key: keys.PrivateKey, cert: x509.Certificate, what: str
    ) -> CertificateAuthority:
        """Check that ``key`` belongs to ``cert`` before trusting the pair."""
        keys.require_p256(key, what)
        public = cert.public_key()
        if not isinstance(public, keys.PublicKey) or not keys.same(public, key.public_key()):
            raise PkiError(f"{what}: the CA key does not match the CA certificate")
        return cls(key, cert)

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """Issue: add the key identifiers every certificate of this CA carries, then sign."""
        builder = builder.issuer_name(self.cert.subject).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self.public_key), critical=False
        )
        return builder.sign(self.key, hashes.SHA256())


def new_ca(
    organization: str, common_name: str, *, now: datetime | None = None, lifetime: timedelta | None
) -> CertificateAuthority:
    """A self-signed P-256 root that may sign end-entity certificates and CRLs only."""
    start = _time.utc(now)
    key = keys.generate()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - _time.CLOCK_SKEW)
        .not_valid_after(_time.not_after(start, lifetime))
        # path_length 0: these roots issue device certificates directly, never sub-CAs.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(key, cert)


@dataclass(frozen=True)
class Vendor:
    name: str
    ca: CertificateAuthority

    @property
    def ca_cert(self) -> x509.Certificate:
        return self.ca.cert

    @property
    def public_key(self) -> keys.PublicKey:
        """The vendor CA key: verifies IDevIDs and the first link of vouchers."""
        return self.ca.public_key

    def to_bytes(self) -> bytes:
        return _cbor.dumps(
            {
                "v": BUNDLE_VERSION,
                "type": "vendor",
                "name": self.name,
                "ca_key": keys.private_der(self.ca.key),
                "ca_cert": self.ca.cert.public_bytes(serialization.Encoding.DER),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Vendor:
        m = _bundle(data, "vendor")
        return cls(name=_cbor.field(m, "name", str, "vendor"), ca=_ca_from(m, "ca", "vendor"))


@dataclass(frozen=True)
class Domain:
    name: str
    owner_key: keys.PrivateKey
    ca: CertificateAuthority

    @property
    def ca_cert(self) -> x509.Certificate:
        return self.ca.cert

    @property
    def owner_public_key(self) -> keys.PublicKey:
        return self.owner_key.public_key()

    def to_bytes(self) -> bytes:
        return _cbor.dumps(
            {
                "v": BUNDLE_VERSION,
                "type": "domain",
                "name": self.name,
                "owner_key": keys.private_der(self.owner_key),
                "ca_key": keys.private_der(self.ca.key),
                "ca_cert": self.ca.cert.public_bytes(serialization.Encoding.DER),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Domain:
        m = _bundle(data, "domain")
        owner = keys.load_private(_cbor.field(m, "owner_key", bytes, "domain"), "domain owner key")
        return cls(
            name=_cbor.field(m, "name", str, "domain"),
            owner_key=owner,
            ca=_ca_from(m, "ca", "domain"),
        )


def new_vendor(name: str, *, now: datetime | None = None) -> Vendor:
    """A vendor with a fresh P-256 root CA that never expires (802.1AR style)."""
    check_name(name, "vendor")
    return Vendor(name, new_ca(name, f"{name} Vendor CA", now=now, lifetime=None))


def new_domain(
    name: str, *, now: datetime | None = None, ca_lifetime: timedelta = DOMAIN_CA_LIFETIME
) -> Domain:
    """An operator domain: a fresh owner key and a fresh domain CA."""
    check_name(name, "domain")
    ca = new_ca(name, f"{name} Domain CA", now=now, lifetime=ca_lifetime)
    return Domain(name, keys.generate(), ca)


def load_cert(data: bytes, what: str) -> x509.Certificate:
    """A certificate from PEM or DER."""
    try:
        if data.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise PkiError(f"{what}: not a readable X.509 certificate") from exc


def _bundle(data: bytes, kind: str) -> dict[Any, Any]:
    m = dict(_cbor.as_map(_cbor.loads(data, kind), kind))
    if m.get("type") != kind or m.get("v") != BUNDLE_VERSION:
        raise PkiError(f"{kind}: not a version {BUNDLE_VERSION} {kind} bundle")
    return m


def _ca_from(m: dict[Any, Any], prefix: str, what: str) -> CertificateAuthority:
    key = keys.load_private(_cbor.field(m, f"{prefix}_key", bytes, what), f"{what} CA key")
    cert = load_cert(_cbor.field(m, f"{prefix}_cert", bytes, what), f"{what} CA certificate")
    return CertificateAuthority.from_parts(key, cert, what)
