"""The admission policy: may this EDHOC-authenticated peer get an LDevID for this CSR?

The checks run in a fixed order and the first failure decides the refusal reason, so that an
experiment that injects one fault (an untrusted vendor, a counterfeit IDevID, a voucher for
another owner, a revoked thing, a CSR for another serial) sees exactly that reason:

    1. a device record exists for the peer's kid (and holds the credential it authenticated
       with)                                                           unknown-device
    2. the record's vendor is one this domain trusts                    vendor-not-trusted
    3. the IDevID chains to that vendor's CA, its SAN, subject and the CCS name one
       vendor and serial, and it
       certifies the key the peer proved in EDHOC                       idevid-invalid
    4. the voucher chain verifies from the vendor CA for that serial and key
                                                                        voucher-invalid
       ... and ends at this domain's owner key                          voucher-foreign-owner
    5. the thing is not revoked                                         revoked
    6. the CSR parses, its signature verifies, it names the same serial,
       vendor and hardware type as the IDevID                          bad-csr

That the request came over an EDHOC-derived OSCORE context (factory key proven) is checked
before, by the resource (4.01 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from testbed.errors import PkiError
from testbed.node.coap.credentials import Credential
from testbed.node.enrollment_api import CF_PKCS10, RefusalReason
from testbed.node.trust_center.devices import DeviceBook, DeviceRecord
from testbed.node.trust_center.trust import TrustAnchors
from testbed.pki import device_name, keys, verify_device_cert, verify_voucher_chain
from testbed.pki.names import DeviceName, parse_device_urn


class Refused(Exception):
    """A policy decision against the request: answered with 4.03 and recorded."""

    def __init__(
        self, reason: RefusalReason, detail: str, record: DeviceRecord | None = None
    ) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.record = record


@dataclass(frozen=True)
class Admitted:
    record: DeviceRecord
    csr: x509.CertificateSigningRequest
    name: DeviceName  # the IDevID's, which every CSR claim equals


class AdmissionPolicy:
    def __init__(self, trust: TrustAnchors, devices: DeviceBook) -> None:
        self.trust = trust
        self.devices = devices

    def record_for(self, peer: Credential) -> DeviceRecord:
        """Check 1: the device record of an authenticated peer."""
        record = self.devices.by_kid(peer.kid)
        if record is None:
            raise Refused(
                RefusalReason.UNKNOWN_DEVICE, f"no device record for kid {peer.kid.hex()}"
            )
        if record.credential.encoded != peer.encoded:
            # The record was replaced (re-import) after this peer's handshake.
            raise Refused(
                RefusalReason.UNKNOWN_DEVICE,
                f"kid {peer.kid.hex()} authenticated with another credential than the record's",
                record,
            )
        return record

    def check_device(self, record: DeviceRecord) -> None:
        """Checks 2 to 4: vendor trust, IDevID chain and key, voucher chain and owner."""
        vendor = self.trust.vendor_cas.get(record.vendor)
        if vendor is None:
            raise Refused(
                RefusalReason.VENDOR_NOT_TRUSTED,
                f"domain {self.trust.domain.name} does not trust vendor {record.vendor!r}",
                record,
            )
        device_key = record.ccs.public_key
        try:
            name = verify_device_cert(record.idevid, vendor.cert)
        except PkiError as exc:
            raise Refused(RefusalReason.IDEVID_INVALID, exc.message, record) from exc
        certified = record.idevid.public_key()
        # The record's serial and vendor were read from this IDevID's SAN: compare the SAN with
        # the parts that are not derived from it (the IDevID's subject, the CCS's subject).
        claims = _independent_claims(record)
        if any(claim != (name.vendor, name.serial) for claim in claims.values()):
            raise Refused(
                RefusalReason.IDEVID_INVALID,
                f"IDevID SAN names {name.vendor}/{name.serial}, but "
                + ", ".join(f"{where} names {v}/{s}" for where, (v, s) in claims.items()),
                record,
            )
        if not isinstance(certified, keys.PublicKey) or not keys.same(certified, device_key):
            raise Refused(
                RefusalReason.IDEVID_INVALID,
                "the IDevID certifies another key than the EDHOC credential",
                record,
            )
        try:
            if record.voucher.vendor != record.vendor:
                raise PkiError(f"voucher is from vendor {record.voucher.vendor!r}")
            owner = verify_voucher_chain(
                record.voucher, vendor.public_key, record.serial, device_key
            )
        except PkiError as exc:
            raise Refused(RefusalReason.VOUCHER_INVALID, exc.message, record) from exc
        if not keys.same(owner, self.trust.owner_public_key):
            raise Refused(
                RefusalReason.VOUCHER_FOREIGN_OWNER,
                f"voucher ends at owner {keys.fingerprint(owner)}, this domain is"
                f" {keys.fingerprint(self.trust.owner_public_key)}",
                record,
            )

    @staticmethod
    def check_csr(record: DeviceRecord, csr_der: bytes, content_format: int | None) -> Admitted:
        """Check 6 (issue_ldevid checks the same again when it signs)."""
        if content_format not in (None, CF_PKCS10):
            raise Refused(
                RefusalReason.BAD_CSR,
                f"content format {content_format}, expected {CF_PKCS10}",
                record,
            )
        try:
            csr = x509.load_der_x509_csr(csr_der)
        except ValueError as exc:
            raise Refused(RefusalReason.BAD_CSR, "not a DER PKCS#10 request", record) from exc
        if not csr.is_signature_valid:
            raise Refused(RefusalReason.BAD_CSR, "CSR signature does not verify", record)
        try:
            requested = device_name(csr.extensions, "CSR")
            certified = device_name(record.idevid.extensions, "IDevID")
        except (PkiError, ValueError) as exc:
            detail = exc.message if isinstance(exc, PkiError) else str(exc)
            raise Refused(RefusalReason.BAD_CSR, detail, record) from exc
        if requested.serial != record.serial:
            raise Refused(
                RefusalReason.BAD_CSR,
                f"CSR asks for serial {requested.serial!r}, the requester is {record.serial!r}",
                record,
            )
        # Every claim, not only the serial: vendor and hardware type end up in the LDevID.
        for claim in ("vendor", "hw_type"):
            if getattr(requested, claim) != getattr(certified, claim):
                raise Refused(
                    RefusalReason.BAD_CSR,
                    f"CSR claims {claim} {getattr(requested, claim)!r}, the IDevID says"
                    f" {getattr(certified, claim)!r}",
                    record,
                )
        return Admitted(record, csr, certified)


def _independent_claims(record: DeviceRecord) -> dict[str, tuple[str, str]]:
    """(vendor, serial) as the IDevID's subject and the CCS's subject state them."""
    subject = record.idevid.subject
    organisations = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    serials = subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    claims: dict[str, tuple[str, str]] = {
        "the IDevID subject": (
            str(organisations[0].value) if len(organisations) == 1 else "?",
            str(serials[0].value) if len(serials) == 1 else "?",
        )
    }
    try:
        claims["the CCS subject"] = parse_device_urn(record.ccs.subject)
    except PkiError:
        claims["the CCS subject"] = ("?", record.ccs.subject)
    return claims
