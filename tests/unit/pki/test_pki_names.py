"""hardwareModuleName DER (by hand), hwType OIDs and the device URN."""

from __future__ import annotations

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from testbed.errors import PkiError
from testbed.pki.der import HardwareModuleName, decode_oid, encode_oid
from testbed.pki.names import device_urn, hw_type_oid, parse_device_urn

serials = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}", fullmatch=True)
vendors = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp", "Co", "Cn")), min_size=1
).filter(str.isprintable)


@pytest.mark.parametrize(
    ("dotted", "hex_der"),
    [
        ("1.3.6.1.5.5.7.8.4", "2b06010505070804"),  # id-on-hardwareModuleName
        ("1.2.840.10045.2.1", "2a8648ce3d0201"),  # id-ecPublicKey
        ("2.999.3", "883703"),  # X.690 Section 8.19.5 example
    ],
)
def test_oid_encoding_matches_known_values(dotted: str, hex_der: str) -> None:
    assert encode_oid(dotted).hex() == hex_der
    assert decode_oid(bytes.fromhex(hex_der)) == dotted


def test_hardware_module_name_der_is_exact() -> None:
    hmn = HardwareModuleName("1.3.6.1.4.1.32473.1", b"SN-1")
    der = hmn.to_der()
    # SEQUENCE { OID 1.3.6.1.4.1.32473.1, OCTET STRING "SN-1" }
    assert der.hex() == "3011" + "06092b0601040181fd5901" + "0404" + b"SN-1".hex()
    assert HardwareModuleName.from_der(der) == hmn


@given(
    serial=st.binary(min_size=1, max_size=300), arcs=st.lists(st.integers(0, 2**130), max_size=5)
)
def test_hardware_module_name_round_trips(serial: bytes, arcs: list[int]) -> None:
    hmn = HardwareModuleName(".".join(str(a) for a in [2, 25, *arcs]), serial)
    assert HardwareModuleName.from_der(hmn.to_der()) == hmn


@pytest.mark.parametrize(
    "bad_hex",
    [
        "3009060504010404024142",  # the OID's length swallows the OCTET STRING
        "30080603550403040141ff",  # trailing byte after the SEQUENCE
        "308108060355040304014100",  # non-minimal long-form length
        "3080060355040304014100",  # indefinite length (BER, not DER)
        "30080603805503040141",  # OID arc with a leading 0x80 (non-minimal)
        "3005060355040304",  # truncated
        "31080603550403040141",  # SET, not SEQUENCE
    ],
)
def test_hardware_module_name_rejects_non_der(bad_hex: str) -> None:
    with pytest.raises(PkiError):
        HardwareModuleName.from_der(bytes.fromhex(bad_hex))


def test_hw_type_is_a_uuid_oid_per_vendor_and_model() -> None:
    oid = hw_type_oid("acme", "thermostat-3")
    assert oid.startswith("2.25.")
    assert 0 < int(oid.split(".")[2]) < 2**128
    assert oid == hw_type_oid("acme", "thermostat-3")
    assert oid != hw_type_oid("acme", "thermostat-4")
    assert oid != hw_type_oid("acmethermostat-3", "")


def test_device_urn_form() -> None:
    assert device_urn("acme", "SN-0001") == "urn:dev:ops:32473-acme-SN-0001"
    assert device_urn("Acme Corp-1", "7") == "urn:dev:ops:32473-Acme%20Corp%2D1-7"
    assert parse_device_urn("urn:dev:ops:32473-Acme%20Corp%2D1-7") == ("Acme Corp-1", "7")


@given(vendor=vendors, serial=serials)
def test_device_urn_round_trips(vendor: str, serial: str) -> None:
    assert parse_device_urn(device_urn(vendor, serial)) == (vendor, serial)


@pytest.mark.parametrize(
    "urn",
    [
        "urn:dev:ops:32473-acme",  # no serial
        "urn:dev:os:32473-SN-1",  # other form
        "urn:dev:ops:32473-ac%6De-SN-1",  # needless escape: not canonical
        "urn:dev:ops:32473-ac%zz-SN-1",  # bad escape
        "urn:dev:ops:32473-acme-SN_1",  # serial outside the allowed characters
    ],
)
def test_parse_device_urn_rejects(urn: str) -> None:
    with pytest.raises(PkiError):
        parse_device_urn(urn)


@pytest.mark.parametrize("serial", ["", "-lead", "a" * 65, "SN 1", "SN_1", "Ä1"])
def test_unusable_serials_are_refused(serial: str) -> None:
    with pytest.raises(PkiError, match="not usable"):
        device_urn("acme", serial)


@given(arcs=st.lists(st.integers(0, 2**64), min_size=1, max_size=6), first=st.sampled_from([1, 2]))
def test_oid_encoding_agrees_with_cryptography(arcs: list[int], first: int) -> None:
    dotted = ".".join(str(a) for a in [first, arcs[0] % 40 if first == 1 else arcs[0], *arcs[1:]])
    name = x509.Name([x509.NameAttribute(x509.ObjectIdentifier(dotted), "x")])
    ours = encode_oid(dotted)
    assert bytes([0x06, len(ours)]) + ours in name.public_bytes()
