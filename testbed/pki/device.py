"""Device identity: manufacture (IDevID + CCS) and enrollment (CSR -> LDevID).

IDevID profile (IEEE 802.1AR), signed by the vendor CA:
  subject     O=<vendor>, CN=<model>, serialNumber=<serial>
  validity    manufacture time .. 99991231235959Z
  SAN         hardwareModuleName + device URN (see ``names``)
  extensions  basicConstraints CA:FALSE (critical); keyUsage digitalSignature, keyAgreement
              (critical; keyAgreement because EDHOC method 3 uses the same key for static DH);
              extendedKeyUsage clientAuth (the pledge is the (D)TLS client); SKI, AKI.

LDevID profile, signed by the domain CA from a CSR:
  subject     O=<domain>, CN=<serial>, serialNumber=<serial>
  validity    ``lifetime`` (default one year)
  SAN         the device's two SAN forms, taken from the CSR after checking them
  extensions  as the IDevID, with extendedKeyUsage clientAuth and serverAuth (in operation a
              thing also serves CoAP over DTLS). The serial number is the caller's: the trust
              center's registry hands out unique, increasing ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testbed.errors import PkiError
from testbed.pki import _cbor, _time, ccs, keys
from testbed.pki.ca import BUNDLE_VERSION, Domain, Vendor, load_cert
from testbed.pki.names import DeviceName, check_name, check_serial, device_name, hw_type_oid
from testbed.pki.names import subject_alt_name as _san

LDEVID_LIFETIME = timedelta(days=365)
MAX_CERT_SERIAL = 2**159  # RFC 5280 Section 4.1.2.2: at most 20 octets, positive

_DEVICE_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=True,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class DeviceIdentity:
    """A thing's factory identity: one P-256 key, as IDevID certificate and as CCS."""

    vendor: str
    model: str
    serial: str
    key: keys.PrivateKey
    idevid: x509.Certificate
    ccs: ccs.Ccs

    @property
    def public_key(self) -> keys.PublicKey:
        return self.key.public_key()

    @property
    def kid(self) -> bytes:
        return self.ccs.kid

    @property
    def name(self) -> DeviceName:
        return DeviceName(self.vendor, self.serial, hw_type_oid(self.vendor, self.model))

    def check(self) -> DeviceIdentity:
        """Raise PkiError unless key, IDevID and CCS describe the same device; return self."""
        what = f"device {self.vendor}/{self.serial}"
        keys.require_p256(self.key, what)
        cert_key = self.idevid.public_key()
        if not isinstance(cert_key, keys.PublicKey) or not keys.same(cert_key, self.public_key):
            raise PkiError(f"{what}: the IDevID certifies another key than the device key")
        if not keys.same(self.ccs.public_key, self.public_key):
            raise PkiError(f"{what}: the CCS holds another key than the device key")
        if device_name(self.idevid.extensions, f"{what} IDevID") != self.name:
            raise PkiError(f"{what}: the IDevID names another vendor, model or serial")
        return self

    def to_bytes(self) -> bytes:
        return _cbor.dumps(
            {
                "v": BUNDLE_VERSION,
                "type": "device",
                "vendor": self.vendor,
                "model": self.model,
                "serial": self.serial,
                "key": keys.private_der(self.key),
                "idevid": self.idevid.public_bytes(serialization.Encoding.DER),
                "ccs": self.ccs.to_bytes(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> DeviceIdentity:
        m: Any = _cbor.as_map(_cbor.loads(data, "device"), "device")
        if m.get("type") != "device" or m.get("v") != BUNDLE_VERSION:
            raise PkiError(f"device: not a version {BUNDLE_VERSION} device bundle")
        return cls(
            vendor=_cbor.field(m, "vendor", str, "device"),
            model=_cbor.field(m, "model", str, "device"),
            serial=_cbor.field(m, "serial", str, "device"),
            key=keys.load_private(_cbor.field(m, "key", bytes, "device"), "device key"),
            idevid=load_cert(_cbor.field(m, "idevid", bytes, "device"), "device IDevID"),
            ccs=ccs.Ccs.from_bytes(_cbor.field(m, "ccs", bytes, "device")),
        ).check()


def manufacture(
    vendor: Vendor,
    serial: str,
    model: str,
    *,
    kid: bytes | None = None,
    now: datetime | None = None,
) -> DeviceIdentity:
    """Make a thing's factory identity: key pair, IDevID signed by ``vendor``, CCS.

    ``kid`` defaults to ``ccs.derive_kid`` of the new key; pass ``ccs.compact_kid(i)`` where one
    trust center's things are numbered and the smallest EDHOC messages are wanted.
    """
    check_serial(serial)
    check_name(model, "model")
    start = _time.utc(now)
    key = keys.generate()
    public = key.public_key()
    if kid is None:
        kid = ccs.derive_kid(public)
    elif not 1 <= len(kid) <= 16:
        raise PkiError(f"kid of {len(kid)} bytes for {serial}", "use 1 to 16 bytes")
    name = DeviceName(vendor.name, serial, hw_type_oid(vendor.name, model))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, vendor.name),
            x509.NameAttribute(NameOID.COMMON_NAME, model),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
        ]
    )
    builder = _end_entity(subject, public, name, [ExtendedKeyUsageOID.CLIENT_AUTH])
    idevid = vendor.ca.sign(
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(start - _time.CLOCK_SKEW)
        .not_valid_after(_time.FOREVER)
    )
    credential = ccs.Ccs(subject=name.urn, kid=kid, public_key=public)
    return DeviceIdentity(vendor.name, model, serial, key, idevid, credential)


def make_csr(
    device: DeviceIdentity, key: keys.PrivateKey | None = None
) -> x509.CertificateSigningRequest:
    """The thing's enrollment request: its serial SANs, signed by ``key``.

    ``key`` is the key to certify (default: the factory key; 802.1AR allows either). The CSR's
    signature proves possession of it.
    """
    key = device.key if key is None else key
    keys.require_p256(key, "CSR key")
    subject = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, device.serial)])
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(_san(device.name), critical=False)
        .sign(key, hashes.SHA256())
    )


def issue_ldevid(
    domain: Domain,
    csr: x509.CertificateSigningRequest,
    serial_number: int,
    *,
    expected_serial: str | None,
    expected: DeviceName | None = None,
    lifetime: timedelta = LDEVID_LIFETIME,
    now: datetime | None = None,
) -> x509.Certificate:
    """Issue an operational certificate from ``domain``'s CA for a CSR.

    ``serial_number`` is the certificate serial (unique and increasing, from the registry).
    ``expected_serial`` is the device serial the trust center authenticated (from the IDevID or
    the EDHOC credential); the CSR's own SAN claim is only accepted if it matches. It has no
    default on purpose: ``None`` (take the CSR's word) must be a visible decision.
    ``expected`` is the whole device name of the authenticated IDevID: every claim of the CSR
    (vendor, serial, hardware type) must equal it, and the certificate is built from it, so
    that nothing the requester wrote reaches the domain-signed certificate unchecked.
    """
    if not csr.is_signature_valid:
        raise PkiError("CSR: the signature does not verify", "the requester does not hold the key")
    public = csr.public_key()
    if not isinstance(public, keys.PublicKey):
        raise PkiError(f"CSR: expected a P-256 key, got {type(public).__name__}")
    keys.require_p256(public, "CSR")
    name = device_name(csr.extensions, "CSR")
    if expected_serial is not None and name.serial != expected_serial:
        raise PkiError(
            f"CSR: asks for device serial {name.serial!r}, the requester is {expected_serial!r}"
        )
    if expected is not None:
        for claim in ("vendor", "serial", "hw_type"):
            if getattr(name, claim) != getattr(expected, claim):
                raise PkiError(
                    f"CSR: claims {claim} {getattr(name, claim)!r}, the IDevID says"
                    f" {getattr(expected, claim)!r}"
                )
        name = expected
    if not 0 < serial_number < MAX_CERT_SERIAL:
        raise PkiError(f"certificate serial {serial_number} out of range 1..2**159-1")
    start = _time.utc(now)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, domain.name),
            x509.NameAttribute(NameOID.COMMON_NAME, name.serial),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, name.serial),
        ]
    )
    eku = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    builder = _end_entity(subject, public, name, eku)
    return domain.ca.sign(
        builder.serial_number(serial_number)
        .not_valid_before(start - _time.CLOCK_SKEW)
        .not_valid_after(_time.not_after(start, lifetime))
    )


def _end_entity(
    subject: x509.Name,
    public: keys.PublicKey,
    name: DeviceName,
    eku: list[x509.ObjectIdentifier],
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(public)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_DEVICE_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .add_extension(_san(name), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
