"""Verification of device certificates (IDevID against a vendor CA, LDevID against a domain CA).

Path validation is ``cryptography.x509.verification`` (RFC 5280 with its web-PKI-derived
profile: it needs a SAN on the leaf, which device certificates have). It does not check
revocation, so a CRL, when given, is verified and consulted here. On success the caller gets
the device name from the SAN, both SAN forms checked against each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from testbed.errors import PkiError
from testbed.pki import _time
from testbed.pki.crl import is_revoked, verify_crl
from testbed.pki.names import DeviceName, device_name


def verify_device_cert(
    cert: x509.Certificate,
    trust_anchor: x509.Certificate,
    *,
    intermediates: Sequence[x509.Certificate] = (),
    crl: x509.CertificateRevocationList | None = None,
    now: datetime | None = None,
) -> DeviceName:
    """Validate ``cert`` up to ``trust_anchor`` (and against ``crl``); return its device name."""
    at = _time.utc(now)
    subject = cert.subject.rfc4514_string()
    verifier = PolicyBuilder().store(Store([trust_anchor])).time(at).build_client_verifier()
    try:
        verifier.verify(cert, list(intermediates))
    except VerificationError as exc:
        raise PkiError(
            f"certificate {subject!r} does not chain to"
            f" {trust_anchor.subject.rfc4514_string()!r}: {exc}",
            "check that the device belongs to this vendor or domain",
        ) from exc
    if crl is not None:
        verify_crl(crl, trust_anchor, now=at)
        if is_revoked(cert, crl):
            raise PkiError(f"certificate {subject!r} (serial {cert.serial_number}) is revoked")
    return device_name(cert.extensions, f"certificate {subject!r}")
