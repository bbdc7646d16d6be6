"""COSE_Sign1 with ES256 (RFC 9052 Section 4.2, RFC 9053 Section 2.1), and nothing more.

    COSE_Sign1 = #6.18([ protected: bstr .cbor {1: -7}, unprotected: {}, payload: bstr,
                         signature: bstr ])            / r || s, 32 bytes each, s <= n/2 (low-S) /
    Sig_structure = ["Signature1", protected, external_aad, payload]

A full COSE library would bring algorithm negotiation this package does not want: the only
algorithm accepted is ES256, and the protected header must be exactly {1: -7}, which closes
the door to algorithm substitution. Messages this package makes have an empty unprotected
header (nothing unauthenticated rides along); ``decode`` returns it so that a caller can insist
on that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from testbed.errors import PkiError
from testbed.pki import _cbor, keys

TAG_SIGN1 = 18
ALG, ES256 = 1, -7
_PROTECTED_ES256 = _cbor.dumps({ALG: ES256})
# The order of P-256's base point. (r, s) and (r, n - s) are both valid ECDSA signatures of
# the same message: anyone can turn one into the other without the key. Only the low-S form
# (s <= n/2, as Bitcoin's BIP 62 and libsecp256k1 insist) is made and accepted, so that a
# signed object has exactly one encoding and "different bytes" means "differently signed".
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_ORDER = P256_ORDER // 2


@dataclass(frozen=True)
class Sign1:
    protected: bytes  # the serialized protected header, exactly as signed
    unprotected: Mapping[Any, Any]
    payload: bytes
    signature: bytes


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    return _cbor.dumps(["Signature1", protected, external_aad, payload])


def sign(payload: bytes, key: keys.PrivateKey, external_aad: bytes = b"") -> bytes:
    """A tagged COSE_Sign1 over ``payload`` with ES256."""
    keys.require_p256(key, "COSE signing key")
    der = key.sign(
        sig_structure(_PROTECTED_ES256, payload, external_aad), ec.ECDSA(hashes.SHA256())
    )
    r, s = decode_dss_signature(der)
    if s > _HALF_ORDER:
        s = P256_ORDER - s
    raw = r.to_bytes(keys.COORD_LEN, "big") + s.to_bytes(keys.COORD_LEN, "big")
    return _cbor.dumps(cbor2.CBORTag(TAG_SIGN1, [_PROTECTED_ES256, {}, payload, raw]))


def decode(data: bytes, what: str) -> Sign1:
    """Parse a tagged COSE_Sign1 (structure only; ``verify`` checks the signature)."""
    item = _cbor.loads(data, what)
    if not isinstance(item, cbor2.CBORTag) or item.tag != TAG_SIGN1:
        raise PkiError(f"{what}: not a tagged COSE_Sign1 (tag 18)")
    parts = _cbor.as_array(item.value, what)
    if len(parts) != 4:
        raise PkiError(f"{what}: COSE_Sign1 must have 4 elements, has {len(parts)}")
    protected, unprotected, payload, signature = parts
    if not all(isinstance(p, bytes) for p in (protected, payload, signature)):
        raise PkiError(f"{what}: protected header, payload and signature must be byte strings")
    return Sign1(protected, _cbor.as_map(unprotected, what), payload, signature)


def verify(message: Sign1, public_key: keys.PublicKey, external_aad: bytes = b"") -> bool:
    """Whether ``message`` carries a valid ES256 signature by ``public_key``."""
    # Exactly {1: -7}: ES256 and no other protected parameter this package would ignore.
    if message.protected != _PROTECTED_ES256:
        return False
    if len(message.signature) != 2 * keys.COORD_LEN:
        return False
    r = int.from_bytes(message.signature[: keys.COORD_LEN], "big")
    s = int.from_bytes(message.signature[keys.COORD_LEN :], "big")
    if not 0 < s <= _HALF_ORDER:
        return False  # high-S: a malleated copy of a valid signature, never made here
    tbs = sig_structure(message.protected, message.payload, external_aad)
    try:
        public_key.verify(encode_dss_signature(r, s), tbs, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
