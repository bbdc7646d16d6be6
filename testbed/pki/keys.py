"""P-256 keys: generation and the few encodings the rest of the package needs.

Everything in the testbed PKI is ECDSA/ECDH on P-256 (secp256r1), the curve EDHOC cipher suite 2,
DTLS with Mbed TLS and COSE ES256 all share, so one device key serves all of them.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from testbed.errors import PkiError

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey

COORD_LEN = 32  # bytes of one P-256 coordinate or scalar


def generate() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def require_p256(key: PublicKey | PrivateKey, what: str) -> None:
    # Callers pass keys read from files, CSRs and CBOR; another curve would fail later and
    # obscurely (wrong coordinate length, a COSE alg that does not match), so stop it here.
    if not isinstance(key, PublicKey | PrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PkiError(f"{what}: expected a P-256 key, got {type(key).__name__}")


def point(key: PublicKey) -> bytes:
    """The SEC1 uncompressed point (0x04 || x || y, 65 bytes): the key's canonical bytes.

    Vouchers name keys by these bytes, and comparisons of keys compare these bytes.
    """
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def from_point(data: bytes, what: str) -> PublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
    except ValueError as exc:
        raise PkiError(f"{what}: not a P-256 public key point") from exc


def xy(key: PublicKey) -> tuple[bytes, bytes]:
    numbers = key.public_numbers()
    return numbers.x.to_bytes(COORD_LEN, "big"), numbers.y.to_bytes(COORD_LEN, "big")


def from_xy(x: bytes, y: bytes, what: str) -> PublicKey:
    if len(x) != COORD_LEN or len(y) != COORD_LEN:
        raise PkiError(f"{what}: P-256 coordinates must be {COORD_LEN} bytes each")
    return from_point(b"\x04" + x + y, what)


def same(a: PublicKey, b: PublicKey) -> bool:
    return point(a) == point(b)


def fingerprint(key: PublicKey) -> str:
    """A short hex label for messages and logs (SHA-256 of the point, 8 bytes)."""
    return hashlib.sha256(point(key)).hexdigest()[:16]


def private_pem(key: PrivateKey) -> bytes:
    """PKCS#8, unencrypted: the files are protected by mode 0600 and read-only mounts."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_der(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private(data: bytes, what: str) -> PrivateKey:
    """A P-256 private key from PKCS#8/SEC1 PEM or PKCS#8 DER."""
    try:
        if data.lstrip().startswith(b"-----"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise PkiError(f"{what}: not a readable unencrypted private key") from exc
    if not isinstance(key, PrivateKey):
        raise PkiError(f"{what}: expected an EC private key, got {type(key).__name__}")
    require_p256(key, what)
    return key


def load_public(data: bytes, what: str) -> PublicKey:
    """A P-256 public key from SubjectPublicKeyInfo PEM/DER or a SEC1 point."""
    if data[:1] == b"\x04" and len(data) == 1 + 2 * COORD_LEN:
        return from_point(data, what)
    try:
        if data.lstrip().startswith(b"-----"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise PkiError(f"{what}: not a readable public key") from exc
    if not isinstance(key, PublicKey):
        raise PkiError(f"{what}: expected an EC public key, got {type(key).__name__}")
    require_p256(key, what)
    return key


def cose_private_key(key: PrivateKey) -> dict[int, object]:
    """The private key as a COSE_Key map {1: 2 (EC2), -1: 1 (P-256), -4: d}.

    This is the key file format aiocoap's EDHOC credentials load (``private_key_file``).
    """
    d = key.private_numbers().private_value.to_bytes(COORD_LEN, "big")
    return {1: 2, -1: 1, -4: d}
