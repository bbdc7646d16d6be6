"""How a device is named inside its certificates: hwType OID, serial number rules, URN.

A device is identified by (vendor, serial). Its certificates carry that twice in the
SubjectAltName, and the two must agree:

* hardwareModuleName otherName (RFC 4108): hwType is an OID for the vendor's model, hwSerialNum
  the serial as ASCII. The hwType OID sits under 2.25 (X.667: an OID made from a UUID, which
  needs no registration): ``2.25.<int(uuid5(HW_TYPE_NAMESPACE, json([vendor, model])))>``.
* URI (RFC 9039 "dev" URN, organization-product-serial form):
  ``urn:dev:ops:32473-<vendor>-<serial>``. 32473 is the Private Enterprise Number reserved for
  documentation (RFC 5612); a real vendor would put its own PEN there and its product in the
  middle part. Testbed vendors share that number, so the middle part carries the vendor name;
  characters other than ALPHA / DIGIT / "." are percent-encoded there (RFC 9039 forbids "-" in
  it, which is what makes the URN parse back unambiguously).

Serial numbers are restricted to ``[A-Za-z0-9][A-Za-z0-9.-]{0,63}``: they also appear as the X.520
serialNumber attribute (a PrintableString of at most 64 characters) and then need no escaping in
the URN.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

from cryptography import x509

from testbed.errors import PkiError
from testbed.pki.der import HARDWARE_MODULE_NAME_OID, HardwareModuleName

HW_TYPE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:iot-security-testbed:hwType")
DOCUMENTATION_PEN = 32473
URN_PREFIX = f"urn:dev:ops:{DOCUMENTATION_PEN}-"

_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}")
_LITERAL_IN_PRODUCT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.")


@dataclass(frozen=True)
class DeviceName:
    """What a device certificate says about the device."""

    vendor: str
    serial: str
    hw_type: str  # dotted OID

    @property
    def urn(self) -> str:
        return device_urn(self.vendor, self.serial)


def check_serial(serial: str) -> str:
    if not _SERIAL.fullmatch(serial):
        raise PkiError(
            f"device serial {serial!r} is not usable",
            "use 1-64 characters of A-Z a-z 0-9 . - starting with a letter or digit",
        )
    return serial


def check_name(name: str, what: str) -> str:
    if not name or not name.isprintable():
        raise PkiError(f"{what} {name!r} must be a non-empty printable string")
    return name


def hw_type_oid(vendor: str, model: str) -> str:
    digest = uuid.uuid5(HW_TYPE_NAMESPACE, json.dumps([vendor, model]))
    return f"2.25.{digest.int}"


def _encode_product(vendor: str) -> str:
    return "".join(
        c if c in _LITERAL_IN_PRODUCT else "".join(f"%{b:02X}" for b in c.encode()) for c in vendor
    )


def device_urn(vendor: str, serial: str) -> str:
    return f"{URN_PREFIX}{_encode_product(check_name(vendor, 'vendor'))}-{check_serial(serial)}"


def parse_device_urn(urn: str) -> tuple[str, str]:
    """(vendor, serial) from a device URN; only the exact spelling ``device_urn`` makes."""
    product, sep, serial = urn.removeprefix(URN_PREFIX).partition("-")
    if not urn.startswith(URN_PREFIX) or not sep:
        raise PkiError(f"URI {urn!r} is not a testbed device URN ({URN_PREFIX}<vendor>-<serial>)")
    try:
        raw = bytearray()
        i = 0
        while i < len(product):
            if product[i] == "%":
                raw.append(int(product[i + 1 : i + 3], 16))
                i += 3
            else:
                raw.extend(product[i].encode())
                i += 1
        vendor = raw.decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise PkiError(f"URI {urn!r}: bad percent-encoding in the vendor part") from exc
    if device_urn(vendor, serial) != urn:
        raise PkiError(f"URI {urn!r} is not in canonical form")
    return vendor, serial


def subject_alt_name(name: DeviceName) -> x509.SubjectAlternativeName:
    """Both SAN forms of ``name``: the hardwareModuleName otherName and the device URN."""
    hmn = HardwareModuleName(name.hw_type, check_serial(name.serial).encode("ascii"))
    return x509.SubjectAlternativeName(
        [
            x509.OtherName(x509.ObjectIdentifier(HARDWARE_MODULE_NAME_OID), hmn.to_der()),
            x509.UniformResourceIdentifier(name.urn),
        ]
    )


def device_name(extensions: x509.Extensions, what: str) -> DeviceName:
    """The device name a certificate or CSR carries; both SAN forms must be there and agree."""
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise PkiError(f"{what}: no SubjectAltName") from exc
    hmns = [
        HardwareModuleName.from_der(o.value)
        for o in san.get_values_for_type(x509.OtherName)
        if o.type_id.dotted_string == HARDWARE_MODULE_NAME_OID
    ]
    urns = [
        u
        for u in san.get_values_for_type(x509.UniformResourceIdentifier)
        if u.startswith(URN_PREFIX)
    ]
    if len(hmns) != 1 or len(urns) != 1:
        raise PkiError(
            f"{what}: expected one hardwareModuleName and one device URN in the SubjectAltName,"
            f" found {len(hmns)} and {len(urns)}"
        )
    vendor, serial = parse_device_urn(urns[0])
    if hmns[0].serial != serial.encode("ascii"):
        raise PkiError(
            f"{what}: hardwareModuleName serial {hmns[0].serial!r}"
            f" differs from the URN's {serial!r}"
        )
    return DeviceName(vendor=vendor, serial=serial, hw_type=hmns[0].hw_type)
