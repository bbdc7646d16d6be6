"""CAs, IDevIDs, CSR -> LDevID, CRLs and chain verification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testbed.errors import PkiError
from testbed.pki import (
    DeviceIdentity,
    Domain,
    Revocation,
    Vendor,
    build_crl,
    device_name,
    is_revoked,
    issue_ldevid,
    keys,
    make_csr,
    manufacture,
    new_vendor,
    verify_crl,
    verify_device_cert,
)
from testbed.pki.ca import CertificateAuthority
from testbed.pki.der import HARDWARE_MODULE_NAME_OID, HardwareModuleName
from testbed.pki.names import hw_type_oid

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def san(cert: x509.Certificate | x509.CertificateSigningRequest) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_vendor_ca_is_a_p256_root_that_never_expires(vendor: Vendor) -> None:
    cert = vendor.ca_cert
    assert cert.issuer == cert.subject
    assert isinstance(cert.public_key(), keys.PublicKey)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert cert.not_valid_after_utc == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    cert.verify_directly_issued_by(cert)


def test_domain_has_owner_key_separate_from_ca(domain: Domain) -> None:
    assert not keys.same(domain.owner_public_key, domain.ca.public_key)
    assert domain.ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "hvac-contractor"
    )


def test_idevid_verifies_against_its_vendor(vendor: Vendor, device: DeviceIdentity) -> None:
    name = verify_device_cert(device.idevid, vendor.ca_cert)
    assert (name.vendor, name.serial) == ("acme", "SN-0001")
    assert name.hw_type == hw_type_oid("acme", "thermostat-3")


def test_idevid_carries_both_serial_sans(device: DeviceIdentity) -> None:
    alt = san(device.idevid)
    others = alt.get_values_for_type(x509.OtherName)
    assert [o.type_id.dotted_string for o in others] == [HARDWARE_MODULE_NAME_OID]
    hmn = HardwareModuleName.from_der(others[0].value)
    assert hmn.serial == b"SN-0001"
    assert hmn.hw_type == hw_type_oid("acme", "thermostat-3")
    assert alt.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:dev:ops:32473-acme-SN-0001"
    ]


def test_otherName_is_wrapped_as_rfc5280_requires(device: DeviceIdentity) -> None:
    # otherName ::= SEQUENCE { type-id OID, value [0] EXPLICIT ANY }, itself tagged [0] in SAN:
    # the DER of the certificate must hold A0 .. 06 08 <id-on-hardwareModuleName> A0 .. 30 ..
    der = san(device.idevid).public_bytes()
    assert bytes.fromhex("06082b06010505070804a0") in der


def test_idevid_profile(device: DeviceIdentity) -> None:
    cert = device.idevid
    subject = {a.oid: a.value for a in cert.subject}
    assert subject == {
        NameOID.ORGANIZATION_NAME: "acme",
        NameOID.COMMON_NAME: "thermostat-3",
        NameOID.SERIAL_NUMBER: "SN-0001",
    }
    assert cert.not_valid_after_utc.year == 9999  # IEEE 802.1AR: no expiry
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_agreement
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert keys.same(cert.public_key(), device.public_key)  # type: ignore[arg-type]


def test_idevid_of_another_vendor_is_rejected(vendor: Vendor, other_vendor: Vendor) -> None:
    foreign = manufacture(other_vendor, "SN-0001", "thermostat-3")
    with pytest.raises(PkiError, match="does not chain to"):
        verify_device_cert(foreign.idevid, vendor.ca_cert)


def test_idevid_signed_by_an_impostor_ca_with_the_same_name_is_rejected(vendor: Vendor) -> None:
    impostor = new_vendor("acme")  # same subject name, different key
    forged = manufacture(impostor, "SN-0001", "thermostat-3")
    assert forged.idevid.issuer == vendor.ca_cert.subject
    with pytest.raises(PkiError, match="does not chain to"):
        verify_device_cert(forged.idevid, vendor.ca_cert)


def test_idevid_issued_later_is_not_yet_valid(vendor: Vendor) -> None:
    future = manufacture(vendor, "SN-0002", "thermostat-3", now=NOW)
    verify_device_cert(future.idevid, vendor.ca_cert, now=NOW)
    with pytest.raises(PkiError):
        verify_device_cert(future.idevid, vendor.ca_cert, now=NOW - timedelta(hours=1))


def test_device_identity_consistency_check(vendor: Vendor, device: DeviceIdentity) -> None:
    other = manufacture(vendor, "SN-0003", "thermostat-3")
    mixed = DeviceIdentity("acme", "thermostat-3", "SN-0001", other.key, device.idevid, device.ccs)
    with pytest.raises(PkiError, match="another key"):
        mixed.check()


# -- CSR -> LDevID ------------------------------------------------------------------------------


def test_csr_to_ldevid(domain: Domain, device: DeviceIdentity) -> None:
    csr = make_csr(device)
    assert csr.is_signature_valid
    cert = issue_ldevid(domain, csr, 1001, expected_serial="SN-0001", now=NOW)
    assert cert.serial_number == 1001
    assert cert.issuer == domain.ca_cert.subject
    assert san(cert) == san(device.idevid)  # the serial SANs are carried over
    assert cert.not_valid_after_utc == NOW + timedelta(days=365)
    eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert eku == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    name = verify_device_cert(cert, domain.ca_cert, now=NOW)
    assert name.serial == "SN-0001"


def test_ldevid_for_a_fresh_operational_key(domain: Domain, device: DeviceIdentity) -> None:
    operational = keys.generate()
    cert = issue_ldevid(domain, make_csr(device, operational), 1002, expected_serial=None)
    assert keys.same(cert.public_key(), operational.public_key())  # type: ignore[arg-type]


def test_ldevid_does_not_chain_to_the_vendor(
    vendor: Vendor, domain: Domain, device: DeviceIdentity
) -> None:
    cert = issue_ldevid(domain, make_csr(device), 1003, expected_serial=None)
    with pytest.raises(PkiError, match="does not chain to"):
        verify_device_cert(cert, vendor.ca_cert)


def test_csr_with_bad_signature_is_refused(domain: Domain, device: DeviceIdentity) -> None:
    # Same request body, signature by a key other than the one in the CSR: rebuild the DER
    # with the public key swapped in is awkward, so sign a CSR for key A and graft key B's
    # signature onto it by re-signing the same TBS structure.
    good = make_csr(device)
    impostor = make_csr(device, keys.generate())
    forged_der = _graft_signature(good, impostor)
    forged = x509.load_der_x509_csr(forged_der)
    assert not forged.is_signature_valid
    with pytest.raises(PkiError, match="signature does not verify"):
        issue_ldevid(domain, forged, 1004, expected_serial="SN-0001")


def _graft_signature(
    body: x509.CertificateSigningRequest, donor: x509.CertificateSigningRequest
) -> bytes:
    """``body``'s CertificationRequestInfo with ``donor``'s signature (both ECDSA-SHA256)."""
    tbs = body.tbs_certrequest_bytes
    algorithm = bytes.fromhex("300a06082a8648ce3d040302")  # ecdsa-with-SHA256
    signature = b"\x00" + donor.signature
    bit_string = b"\x03" + _der_len(len(signature)) + signature
    content = tbs + algorithm + bit_string
    return b"\x30" + _der_len(len(content)) + content


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def test_csr_naming_another_device_is_refused(domain: Domain, device: DeviceIdentity) -> None:
    with pytest.raises(PkiError, match="the requester is 'SN-9999'"):
        issue_ldevid(domain, make_csr(device), 1005, expected_serial="SN-9999")


def test_csr_without_device_sans_is_refused(domain: Domain) -> None:
    key = keys.generate()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("evil.example")]), False)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(PkiError, match="hardwareModuleName"):
        issue_ldevid(domain, csr, 1006, expected_serial=None)


@pytest.mark.parametrize("serial_number", [0, -1, 2**159])
def test_certificate_serial_must_fit_rfc5280(
    domain: Domain, device: DeviceIdentity, serial_number: int
) -> None:
    with pytest.raises(PkiError, match="out of range"):
        issue_ldevid(domain, make_csr(device), serial_number, expected_serial=None)


# -- CRLs ---------------------------------------------------------------------------------------


def test_crl_build_verify_and_lookup(domain: Domain, device: DeviceIdentity) -> None:
    kept = issue_ldevid(domain, make_csr(device), 2001, expected_serial="SN-0001", now=NOW)
    gone = issue_ldevid(domain, make_csr(device), 2002, expected_serial="SN-0001", now=NOW)
    crl = build_crl(
        domain.ca,
        [Revocation(2002, reason=x509.ReasonFlags.cessation_of_operation), 2003, 2003],
        crl_number=7,
        now=NOW,
    )
    verify_crl(crl, domain.ca_cert, now=NOW + timedelta(days=1))
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    assert len(crl) == 2
    assert not is_revoked(kept, crl)
    assert is_revoked(gone, crl)
    reason = crl.get_revoked_certificate_by_serial_number(2002).extensions  # type: ignore[union-attr]
    assert reason.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.cessation_of_operation
    )
    verify_device_cert(kept, domain.ca_cert, crl=crl, now=NOW)
    with pytest.raises(PkiError, match="is revoked"):
        verify_device_cert(gone, domain.ca_cert, crl=crl, now=NOW)


def test_crl_signed_by_another_ca_is_rejected(domain: Domain, next_domain: Domain) -> None:
    crl = build_crl(next_domain.ca, [1], crl_number=1)
    with pytest.raises(PkiError, match="issued by"):
        verify_crl(crl, domain.ca_cert)


def test_crl_forged_under_the_right_name_is_rejected(domain: Domain) -> None:
    forger = CertificateAuthority(keys.generate(), domain.ca_cert)  # right name, wrong key
    crl = build_crl(forger, [], crl_number=1)
    with pytest.raises(PkiError, match="signature does not verify"):
        verify_crl(crl, domain.ca_cert)


def test_stale_crl_is_rejected(domain: Domain) -> None:
    crl = build_crl(domain.ca, [], crl_number=1, now=NOW)
    with pytest.raises(PkiError, match="stale"):
        verify_crl(crl, domain.ca_cert, now=NOW + timedelta(days=8))


def test_is_revoked_refuses_a_crl_of_another_issuer(
    vendor: Vendor, domain: Domain, device: DeviceIdentity
) -> None:
    crl = build_crl(domain.ca, [device.idevid.serial_number], crl_number=1)
    with pytest.raises(PkiError, match="cannot answer"):
        is_revoked(device.idevid, crl)


@pytest.mark.parametrize("claim", ["vendor", "model"])
def test_every_csr_claim_must_equal_the_idevid(
    domain: Domain, device: DeviceIdentity, claim: str
) -> None:
    liar = DeviceIdentity(
        "globex" if claim == "vendor" else device.vendor,
        "other-model" if claim == "model" else device.model,
        device.serial,
        device.key,
        device.idevid,
        device.ccs,
    )
    expected = device.name
    with pytest.raises(PkiError, match="the IDevID says"):
        issue_ldevid(domain, make_csr(liar), 1007, expected_serial=device.serial, expected=expected)
    # The honest CSR gets the IDevID's name, claim for claim.
    cert = issue_ldevid(
        domain, make_csr(device), 1008, expected_serial=device.serial, expected=expected
    )
    assert device_name(cert.extensions, "LDevID") == expected
