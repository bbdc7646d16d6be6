"""Certificate revocation lists of a CA (in practice the domain CA: decommissioned LDevIDs).

``cryptography.x509.verification`` does not look at revocation, so a verifier checks a CRL
itself: ``verify_crl`` (signature, issuer, freshness), then ``is_revoked``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from testbed.errors import PkiError
from testbed.pki import _time, keys
from testbed.pki.ca import CertificateAuthority

CRL_VALIDITY = timedelta(days=7)


@dataclass(frozen=True)
class Revocation:
    serial_number: int
    when: datetime | None = None  # default: the CRL's issue time
    # e.g. cessationOfOperation for a decommissioned thing, keyCompromise for a stolen one
    reason: x509.ReasonFlags | None = None


def build_crl(
    ca: CertificateAuthority,
    revoked: Iterable[Revocation | int],
    crl_number: int,
    *,
    validity: timedelta = CRL_VALIDITY,
    now: datetime | None = None,
) -> x509.CertificateRevocationList:
    """A signed CRL. ``crl_number`` must grow with every CRL the CA issues (RFC 5280 5.2.3)."""
    if crl_number < 0:
        raise PkiError(f"CRL number {crl_number} is negative")
    start = _time.utc(now)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(start)
        .next_update(start + validity)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key), critical=False
        )
    )
    seen: set[int] = set()
    for item in revoked:
        entry = item if isinstance(item, Revocation) else Revocation(item)
        if entry.serial_number in seen:
            continue  # one entry per serial; a repeat adds nothing
        seen.add(entry.serial_number)
        revoked_cert = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial_number)
            .revocation_date(_time.utc(entry.when) if entry.when else start)
        )
        if entry.reason is not None:
            revoked_cert = revoked_cert.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(revoked_cert.build())
    return builder.sign(ca.key, hashes.SHA256())


def verify_crl(
    crl: x509.CertificateRevocationList,
    ca_cert: x509.Certificate,
    *,
    now: datetime | None = None,
) -> None:
    """Raise PkiError unless ``crl`` was signed by ``ca_cert``'s key and is current."""
    public = ca_cert.public_key()
    if not isinstance(public, keys.PublicKey):
        raise PkiError("CRL issuer certificate: expected a P-256 key")
    if crl.issuer != ca_cert.subject:
        raise PkiError(
            f"CRL: issued by {crl.issuer.rfc4514_string()},"
            f" not by {ca_cert.subject.rfc4514_string()}"
        )
    if not crl.is_signature_valid(public):
        raise PkiError(
            "CRL: the signature does not verify with the CA key", "the CRL was altered or forged"
        )
    at = _time.utc(now)
    if crl.last_update_utc > at + _time.CLOCK_SKEW:
        raise PkiError(f"CRL: issued in the future ({crl.last_update_utc:%Y-%m-%dT%H:%M:%SZ})")
    next_update = crl.next_update_utc
    if next_update is not None and next_update < at:
        raise PkiError(
            f"CRL: stale since {next_update:%Y-%m-%dT%H:%M:%SZ}", "fetch or issue a current CRL"
        )


def is_revoked(cert: x509.Certificate, crl: x509.CertificateRevocationList) -> bool:
    """Whether ``crl`` lists ``cert``. Verify the CRL first (``verify_crl``); this only looks."""
    if cert.issuer != crl.issuer:
        # A CRL speaks only for its own issuer; "not listed" from another CA means nothing.
        raise PkiError(
            f"CRL of {crl.issuer.rfc4514_string()} cannot answer for a certificate"
            f" issued by {cert.issuer.rfc4514_string()}"
        )
    return crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
