"""The EDHOC credential (CCS) and COSE_Sign1, against published test vectors."""

from __future__ import annotations

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from testbed.errors import PkiError
from testbed.pki import Ccs, DeviceIdentity, compact_kid, cose, derive_kid, keys
from testbed.pki.ccs import is_compact

# RFC 9529 Section 3 (method 3, cipher suite 2): static keys and the CCS built from them.
SK_R = "72cc4761dbd4c78f758931aa589d348d1ef874a7e303ede2f140dcf3e6aa4aac"
CCS_R = (
    "a2026b6578616d706c652e65647508a101a501020241322001215820bbc34960526ea4d32e940cad2a234148"
    "ddc21791a12afbcbac93622046dd44f02258204519e257236b2a0ce2023f0931f1f386ca7afda64fcde0108c"
    "224c51eabf6072"
)
SK_I = "fb13adeb6518cee5f88417660841142e830a81fe334380a953406a1305e8706b"
CCS_I = (
    "a2027734322d35302d33312d46462d45462d33372d33322d333908a101a5010202412b2001215820ac75e9ec"
    "e3e50bfc8ed60399889522405c47bf16df96660a41298cb4307f7eb62258206e5de611388a4b8a8211334a"
    "c7d37ecb52a387d257e6db3c2a93df21ff3affc8"
)


def key_from(hex_scalar: str) -> keys.PrivateKey:
    return ec.derive_private_key(int(hex_scalar, 16), ec.SECP256R1())


@pytest.mark.parametrize(
    ("secret", "subject", "kid", "expected"),
    [
        (SK_R, "example.edu", b"\x32", CCS_R),
        (SK_I, "42-50-31-FF-EF-37-32-39", b"\x2b", CCS_I),
    ],
    ids=["CCS_R", "CCS_I"],
)
def test_ccs_matches_rfc9529(secret: str, subject: str, kid: bytes, expected: str) -> None:
    public = key_from(secret).public_key()
    assert Ccs(subject, kid, public).to_bytes().hex() == expected
    parsed = Ccs.from_bytes(bytes.fromhex(expected))
    assert (parsed.subject, parsed.kid) == (subject, kid)
    assert keys.same(parsed.public_key, public)
    assert is_compact(kid)  # the traces use kids EDHOC sends as one byte


def test_device_ccs_structure(device: DeviceIdentity) -> None:
    m = cbor2.loads(device.ccs.to_bytes())
    assert list(m) == [2, 8]
    assert m[2] == "urn:dev:ops:32473-acme-SN-0001"
    cose_key = m[8][1]
    assert list(cose_key) == [1, 2, -1, -2, -3]  # deterministic order: kty, kid, crv, x, y
    assert cose_key[1] == 2 and cose_key[-1] == 1  # EC2, P-256
    x, y = keys.xy(device.public_key)
    assert (cose_key[-2], cose_key[-3]) == (x, y)
    assert cose_key[2] == device.kid == derive_kid(device.public_key)
    assert len(device.kid) == 4


def test_device_ccs_is_what_aiocoap_hands_to_lakers(device: DeviceIdentity) -> None:
    # aiocoap re-encodes the credential with canonical=True before passing it to lakers.
    data = device.ccs.to_bytes()
    assert cbor2.dumps(cbor2.loads(data), canonical=True) == data
    lakers = pytest.importorskip("lakers")
    credential = lakers.Credential(data)
    assert bytes(credential.kid()) == device.kid
    assert bytes(credential.public_key()) == keys.xy(device.public_key)[0]


def test_compact_kids() -> None:
    kids = [compact_kid(i) for i in range(48)]
    assert len(set(kids)) == 48
    # each one-byte kid's value is itself a one-byte CBOR integer (RFC 9528 3.5.3.2)
    assert all(isinstance(cbor2.loads(k), int) for k in kids)
    with pytest.raises(PkiError):
        compact_kid(48)


def test_ccs_rejects_wrong_shapes() -> None:
    public = key_from(SK_R).public_key()
    good = cbor2.loads(Ccs("s", b"\x01", public).to_bytes())
    bad_kty = {2: "s", 8: {1: {**good[8][1], 1: 1}}}
    extra = {**good, 4: 1}
    for value in (bad_kty, extra, [1, 2]):
        with pytest.raises(PkiError):
            Ccs.from_bytes(cbor2.dumps(value, canonical=True))
    with pytest.raises(PkiError, match="deterministic"):
        Ccs.from_bytes(cbor2.dumps(good, canonical=True) + b"\x00")


# RFC 9052 Appendix C.2.1: COSE_Sign1, ES256, key "11".
C21_MESSAGE = (
    "d28443a10126a10442313154546869732069732074686520636f6e74656e742e58408eb33e4ca31d1c465ab0"
    "5aac34cc6b23d58fef5c083106c4d25a91aef0b0117e2af9a291aa32e14ab834dc56ed2a223444547e01f11d"
    "3b0916e5a4c345cacb36"
)
C21_TBS = "846a5369676e61747572653143a101264054546869732069732074686520636f6e74656e742e"
KEY_11_X = "bac5b11cad8f99f9c72b05cf4b9e26d244dc189f745228255a219a86d6a09eff"
KEY_11_Y = "20138bf82dc1b6d562be0fa54ab7804a3a64b6d72ccfed6b6fb6ed28bbfc117e"


def test_cose_sign1_verifies_rfc9052_example() -> None:
    public = keys.from_xy(bytes.fromhex(KEY_11_X), bytes.fromhex(KEY_11_Y), "key 11")
    message = cose.decode(bytes.fromhex(C21_MESSAGE), "C.2.1")
    assert message.payload == b"This is the content."
    assert dict(message.unprotected) == {4: b"11"}
    assert cose.sig_structure(message.protected, message.payload).hex() == C21_TBS
    assert cose.verify(message, public)
    other = keys.generate().public_key()
    assert not cose.verify(message, other)


def test_cose_sign1_round_trip_and_shape() -> None:
    key = keys.generate()
    data = cose.sign(b"payload", key)
    item = cbor2.loads(data)
    assert item.tag == 18
    protected, unprotected, payload, signature = item.value
    assert protected == bytes.fromhex("a10126") and dict(unprotected) == {}
    assert payload == b"payload" and len(signature) == 64  # raw r || s, RFC 9053
    message = cose.decode(data, "test")
    assert cose.verify(message, key.public_key())
    assert not cose.verify(message, key.public_key(), external_aad=b"x")


def test_cose_sign1_rejects_tampering_and_alg_change() -> None:
    key = keys.generate()
    message = cose.decode(cose.sign(b"payload", key), "test")
    public = key.public_key()
    changed = [
        cose.Sign1(message.protected, {}, b"payloaD", message.signature),
        cose.Sign1(message.protected, {}, message.payload, message.signature[:-1] + b"\x00"),
        cose.Sign1(message.protected, {}, message.payload, message.signature[:63]),
        cose.Sign1(bytes.fromhex("a10127"), {}, message.payload, message.signature),  # EdDSA
        cose.Sign1(bytes.fromhex("a2010303f6"), {}, message.payload, message.signature),
    ]
    assert not any(cose.verify(m, public) for m in changed)


def test_cose_decode_rejects_non_sign1() -> None:
    for value in (
        [b"", {}, b"", b""],  # untagged
        cbor2.CBORTag(98, [b"", {}, b"", b""]),  # COSE_Sign
        cbor2.CBORTag(18, [b"", {}, b""]),  # three elements
        cbor2.CBORTag(18, [b"", {}, "text", b""]),  # payload not bstr
    ):
        with pytest.raises(PkiError):
            cose.decode(cbor2.dumps(value, canonical=True), "test")


def _high_s(data: bytes) -> bytes:
    """The same COSE_Sign1 with s replaced by n - s: valid ECDSA, made without the key."""
    item = cbor2.loads(data)
    protected, unprotected, payload, signature = item.value
    s = int.from_bytes(signature[32:], "big")
    flipped = signature[:32] + (cose.P256_ORDER - s).to_bytes(32, "big")
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, flipped]))


def test_cose_signatures_are_low_s_and_high_s_is_refused() -> None:
    key = keys.generate()
    for i in range(64):  # about half of raw ECDSA signatures are high-S; all are normalised
        data = cose.sign(i.to_bytes(2, "big"), key)
        message = cose.decode(data, "test")
        assert int.from_bytes(message.signature[32:], "big") <= cose.P256_ORDER // 2
        assert cose.verify(message, key.public_key())
        malleated = cose.decode(_high_s(data), "malleated")
        assert malleated.signature != message.signature
        assert not cose.verify(malleated, key.public_key())
