"""The device's public key as a CWT Claims Set (CCS), the credential EDHOC authenticates with.

RFC 9528 Section 3.5.2 and RFC 8392:

    { 2: subject,                      / sub /
      8: { 1: {                        / cnf: COSE_Key /
            1: 2,                      / kty: EC2 /
            2: kid,                    / kid, a byte string /
           -1: 1,                      / crv: P-256 /
           -2: x, -3: y } } }          / coordinates, 32 bytes each /

encoded in deterministic CBOR, so the bytes match what RFC 9529's traces show and what aiocoap
re-encodes (``cbor2.dumps(..., canonical=True)``) before handing a credential to lakers.

The kid is what EDHOC sends instead of the credential (ID_CRED_x = {4: kid}). It must be unique
among the credentials one trust center knows. ``derive_kid`` makes 4 bytes from the key (no
coordination needed, collisions negligible for a building); ``compact_kid`` gives the 48
one-byte kids that EDHOC encodes as a single CBOR integer (RFC 9528 Section 3.5.3.2), the size
the RFC 9529 traces and the published handshake sizes assume, for a planner that numbers things.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from testbed.errors import PkiError
from testbed.pki import _cbor, keys

SUB, CNF, COSE_KEY = 2, 8, 1
KTY, KID, CRV, X, Y = 1, 2, -1, -2, -3
KTY_EC2, CRV_P256 = 2, 1

DERIVED_KID_LEN = 4
# Byte values whose one-byte string EDHOC sends as a one-byte CBOR int: 0..23 and -1..-24.
_COMPACT = [*range(0x00, 0x18), *range(0x20, 0x38)]


@dataclass(frozen=True)
class Ccs:
    subject: str
    kid: bytes
    public_key: keys.PublicKey

    def to_bytes(self) -> bytes:
        x, y = keys.xy(self.public_key)
        cose_key = {KTY: KTY_EC2, KID: self.kid, CRV: CRV_P256, X: x, Y: y}
        return _cbor.dumps({SUB: self.subject, CNF: {COSE_KEY: cose_key}})

    @classmethod
    def from_bytes(cls, data: bytes) -> Ccs:
        what = "CCS"
        top = _cbor.as_map(_cbor.loads(data, what), what)
        if set(top) != {SUB, CNF}:
            raise PkiError(
                f"{what}: expected exactly claims 2 (sub) and 8 (cnf), got {sorted(top, key=repr)}"
            )
        subject = _cbor.field(top, SUB, str, what)
        cnf = _cbor.as_map(top[CNF], f"{what} cnf")
        if set(cnf) != {COSE_KEY}:
            raise PkiError(f"{what}: cnf must hold exactly a COSE_Key (1)")
        key = _cbor.as_map(cnf[COSE_KEY], f"{what} COSE_Key")
        if set(key) != {KTY, KID, CRV, X, Y} or key[KTY] != KTY_EC2 or key[CRV] != CRV_P256:
            raise PkiError(f"{what}: COSE_Key must be EC2 P-256 with kid, x and y")
        kid = _cbor.field(key, KID, bytes, what)
        x = _cbor.field(key, X, bytes, what)
        y = _cbor.field(key, Y, bytes, what)
        return cls(subject=subject, kid=kid, public_key=keys.from_xy(x, y, what))


def derive_kid(public_key: keys.PublicKey, length: int = DERIVED_KID_LEN) -> bytes:
    return hashlib.sha256(keys.point(public_key)).digest()[:length]


def compact_kid(index: int) -> bytes:
    """The ``index``-th (0..47) one-byte kid that EDHOC encodes in one byte on the wire."""
    if not 0 <= index < len(_COMPACT):
        raise PkiError(
            f"compact kid index {index} is out of range 0..{len(_COMPACT) - 1}",
            "more things than compact kids at one trust center: use derived kids",
        )
    return bytes([_COMPACT[index]])


def is_compact(kid: bytes) -> bool:
    return len(kid) == 1 and kid[0] in _COMPACT
