"""EDHOC credentials: a P-256 private key and CCS credentials (RFC 8392 claims sets with cnf).

aiocoap 0.4.17 and lakers 0.6.2 support only cipher suite 2 (P-256) with method 3 (static DH on
both sides) and CCS credentials, so that is all this module accepts; a key or CCS of any other
shape is refused at load time rather than surfacing later as an opaque MAC failure.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from testbed.node.coap.errors import CredentialError

# COSE and CWT labels (RFC 9052 / RFC 8392 / RFC 8747) used below.
_KTY, _KID, _CRV, _X, _Y, _D = 1, 2, -1, -2, -3, -4
_KTY_EC2, _CRV_P256 = 2, 1
_CWT_SUB, _CWT_CNF, _CNF_COSE_KEY = 2, 8, 1
KCCS = 14  # ID_CRED_x label "kccs": a CCS sent by value (RFC 9528 Section 3.5.2)
ID_CRED_KID = 4  # ID_CRED_x label "kid": a credential referenced by key id


@dataclass(frozen=True)
class Credential:
    """A CCS holding a P-256 public key: what EDHOC calls CRED_I or CRED_R.

    ``encoded`` is the exact byte string both sides feed into EDHOC's transcript hashes; it is
    deterministic CBOR because aiocoap re-encodes credentials that way and a single differing
    byte would make the handshake fail with nothing but "MAC verification failed".
    """

    encoded: bytes
    kid: bytes
    subject: str | None
    x: bytes
    y: bytes

    @classmethod
    def from_cbor(cls, data: bytes) -> Credential:
        try:
            claims = cbor2.loads(data)
        except (cbor2.CBORDecodeError, ValueError) as exc:
            raise CredentialError("CCS is not CBOR", "expected a CBOR-encoded CCS") from exc
        if cbor2.dumps(claims, canonical=True) != data:
            raise CredentialError(
                "CCS is not in deterministic CBOR encoding",
                "re-encode it with cbor2.dumps(..., canonical=True)",
            )
        return cls.from_claims(claims)

    @classmethod
    def from_file(cls, path: Path) -> Credential:
        return cls.from_cbor(Path(path).read_bytes())

    @classmethod
    def for_key(
        cls, key: ec.EllipticCurvePublicKey, kid: bytes, subject: str | None = None
    ) -> Credential:
        numbers = key.public_numbers()
        cose_key = {
            _KTY: _KTY_EC2,
            _KID: kid,
            _CRV: _CRV_P256,
            _X: numbers.x.to_bytes(32, "big"),
            _Y: numbers.y.to_bytes(32, "big"),
        }
        claims: dict[int, Any] = {_CWT_CNF: {_CNF_COSE_KEY: cose_key}}
        if subject is not None:
            claims[_CWT_SUB] = subject
        return cls.from_claims(claims)

    @classmethod
    def from_claims(cls, claims: Any) -> Credential:
        try:
            cose_key = claims[_CWT_CNF][_CNF_COSE_KEY]
            kty, crv, kid = cose_key[_KTY], cose_key[_CRV], cose_key[_KID]
            x, y = cose_key[_X], cose_key[_Y]
        except (KeyError, TypeError) as exc:
            raise CredentialError(
                "CCS lacks cnf/COSE_Key with kty, crv, kid, x, y",
                "EDHOC by reference needs a kid in the CCS's COSE_Key",
            ) from exc
        if (kty, crv) != (_KTY_EC2, _CRV_P256) or len(x) != 32 or len(y) != 32:
            raise CredentialError("CCS key is not an EC2 P-256 key", "use cipher suite 2 keys")
        if not isinstance(kid, bytes) or not kid:
            raise CredentialError("CCS kid must be a non-empty byte string")
        subject = claims.get(_CWT_SUB)
        return cls(cbor2.dumps(claims, canonical=True), kid, subject, x, y)

    def claims(self) -> dict[int, Any]:
        """The CCS as a CBOR map, in the shape aiocoap's credentials expect under label 14."""
        decoded: dict[int, Any] = cbor2.loads(self.encoded)
        return decoded

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return ec.EllipticCurvePublicNumbers(
            int.from_bytes(self.x, "big"), int.from_bytes(self.y, "big"), ec.SECP256R1()
        ).public_key()


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from a PEM file or a COSE_Key file, which must be mode 0600 or less."""
    path = Path(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialError(
            f"private key {path} is accessible to group or others (mode {mode & 0o777:o})",
            f"chmod 600 {path}",
        )
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except ValueError as exc:
            raise CredentialError(f"{path} is not an unencrypted PEM private key") from exc
    else:
        key = _key_from_cose(path, data)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CredentialError(f"{path} is not a P-256 key", "EDHOC suite 2 needs P-256")
    return key


def _key_from_cose(path: Path, data: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        cose = cbor2.loads(data)
        if cose[_KTY] != _KTY_EC2 or cose[_CRV] != _CRV_P256 or len(cose[_D]) != 32:
            raise ValueError("not an EC2 P-256 COSE_Key with d")
        return ec.derive_private_key(int.from_bytes(cose[_D], "big"), ec.SECP256R1())
    except (cbor2.CBORDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CredentialError(
            f"{path} is neither a PEM private key nor a P-256 COSE_Key",
            "write the key as PKCS#8 PEM or as a COSE_Key map {1: 2, -1: 1, -4: d}",
        ) from exc


@dataclass(frozen=True)
class EdhocIdentity:
    """One party's EDHOC authentication: its static DH key and the CCS that names it."""

    private_key: ec.EllipticCurvePrivateKey
    credential: Credential

    def __post_init__(self) -> None:
        own = self.private_key.public_key().public_numbers()
        if (own.x, own.y) != (
            int.from_bytes(self.credential.x, "big"),
            int.from_bytes(self.credential.y, "big"),
        ):
            raise CredentialError(
                f"private key does not match the CCS with kid {self.credential.kid.hex()}",
                "pair each key file with the CCS minted for it",
            )

    @classmethod
    def from_files(cls, key_path: Path, ccs_path: Path) -> EdhocIdentity:
        return cls(load_private_key(key_path), Credential.from_file(ccs_path))

    @classmethod
    def generate(cls, kid: bytes, subject: str | None = None) -> EdhocIdentity:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(key, Credential.for_key(key.public_key(), kid, subject))

    @property
    def d(self) -> bytes:
        """The private scalar as EDHOC implementations take it (32 bytes, big endian)."""
        return self.private_key.private_numbers().private_value.to_bytes(32, "big")

    def cose_key(self) -> dict[int, Any]:
        return {_KTY: _KTY_EC2, _CRV: _CRV_P256, _D: self.d}


#: How a responder finds the credential of an initiator that names itself by kid: None refuses.
PeerLookup = Callable[[bytes], Credential | None]


class PeerTable:
    """The simplest PeerLookup: a fixed set of acceptable credentials, indexed by kid."""

    def __init__(self, credentials: Iterable[Credential] = ()) -> None:
        self._by_kid: dict[bytes, Credential] = {}
        for credential in credentials:
            self.add(credential)

    def add(self, credential: Credential) -> None:
        known = self._by_kid.get(credential.kid)
        if known is not None and known != credential:
            # Two credentials under one kid would make "who is this peer" ambiguous.
            raise CredentialError(
                f"kid {credential.kid.hex()} is already taken by another credential",
                "give every device credential a unique kid",
            )
        self._by_kid[credential.kid] = credential

    def remove(self, kid: bytes) -> None:
        self._by_kid.pop(kid, None)

    def __call__(self, kid: bytes) -> Credential | None:
        return self._by_kid.get(kid)

    def __len__(self) -> int:
        return len(self._by_kid)
