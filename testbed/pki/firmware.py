"""Vendor-signed firmware manifests (SUIT-like, much smaller), and the releases a run serves.

A release is an image (opaque bytes) and its manifest: a COSE_Sign1 (ES256, see ``cose``) by
the vendor CA key over the deterministic CBOR map

    1: manifest format (1)    2: vendor (tstr)    3: model (tstr)    4: version (tstr "2.0.0")
    5: SHA-256 of the image (32 bytes)            6: image size (uint)

signed with the external AAD ``MANIFEST_AAD``. The vendor CA key also signs IDevIDs and voucher
links; the AAD separates the purposes, so that no voucher link can ever verify as a manifest
(or the other way round) whatever its payload holds.

A thing verifies the manifest first (signature, vendor, model, version), and only then fetches
at most ``size`` bytes of image and compares the digest: an unsigned or rolled-back release
costs it a manifest, not a download.

``mint_releases`` makes what the vendor cloud serves: genuine releases of each version, plus
deliberately broken variants per version, so that experiments can prove each refusal:

    <v>              genuine
    <v>-tampered     genuine manifest, one image byte flipped             -> digest-mismatch
    <v>-forged       manifest version changed after signing               -> bad-signature
    <v>-other-model  genuine release of the vendor for another model      -> wrong-model
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import cbor2

from testbed.errors import ManifestSignatureError as ManifestSignatureError  # re-exported
from testbed.errors import PkiError
from testbed.pki import _cbor, cose, keys
from testbed.pki.ca import Vendor

FORMAT = 1
MANIFEST_AAD = b"testbed firmware manifest v1"
M_FORMAT, M_VENDOR, M_MODEL, M_VERSION, M_DIGEST, M_SIZE = range(1, 7)
_FIELDS = {M_FORMAT, M_VENDOR, M_MODEL, M_VERSION, M_DIGEST, M_SIZE}
MAX_IMAGE = 1 << 20  # a constrained device's flash; also bounds what a manifest can ask for

_VERSION = re.compile(r"\d{1,6}(\.\d{1,6}){0,3}")
_IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TAMPERED, FORGED, OTHER_MODEL = "tampered", "forged", "other-model"


def parse_version(text: str) -> tuple[int, ...]:
    """'2.0.1' -> (2, 0, 1); ValueError for anything but 1 to 4 dot-separated numbers.

    Compared as tuples with trailing zeros stripped, so that 2.0 and 2.0.0 are the same.
    """
    if not isinstance(text, str) or not _VERSION.fullmatch(text):
        raise ValueError(f"version {text!r} is not N[.N[.N[.N]]]")
    parts = [int(p) for p in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def check_image_name(name: str) -> str:
    """Image names are path segments of the vendor cloud's URIs: a tight alphabet."""
    if not isinstance(name, str) or not _IMAGE_NAME.fullmatch(name):
        raise ValueError(f"image name {name!r} must be 1-64 of A-Z a-z 0-9 . _ -")
    return name


@dataclass(frozen=True)
class Manifest:
    vendor: str
    model: str
    version: str
    digest: bytes  # SHA-256 of the image
    size: int

    def to_bytes(self) -> bytes:
        """The payload that gets signed."""
        return _cbor.dumps(
            {
                M_FORMAT: FORMAT,
                M_VENDOR: self.vendor,
                M_MODEL: self.model,
                M_VERSION: self.version,
                M_DIGEST: self.digest,
                M_SIZE: self.size,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        what = "firmware manifest"
        fields = dict(_cbor.as_map(_cbor.loads(data, what), what))
        if set(fields) != _FIELDS:
            raise PkiError(f"{what}: fields {sorted(fields, key=repr)} are not {sorted(_FIELDS)}")
        if _cbor.field(fields, M_FORMAT, int, what) != FORMAT:
            raise PkiError(f"{what}: format {fields[M_FORMAT]} is not supported (only {FORMAT})")
        digest = _cbor.field(fields, M_DIGEST, bytes, what)
        size = _cbor.field(fields, M_SIZE, int, what)
        version = _cbor.field(fields, M_VERSION, str, what)
        if len(digest) != 32 or not 0 < size <= MAX_IMAGE:
            raise PkiError(f"{what}: digest must be 32 bytes and size 1..{MAX_IMAGE}")
        try:
            parse_version(version)
        except ValueError as exc:
            raise PkiError(f"{what}: {exc}") from exc
        return cls(
            vendor=_cbor.field(fields, M_VENDOR, str, what),
            model=_cbor.field(fields, M_MODEL, str, what),
            version=version,
            digest=digest,
            size=size,
        )

    @classmethod
    def describe(cls, vendor: str, model: str, version: str, image: bytes) -> Manifest:
        return cls(vendor, model, version, hashlib.sha256(image).digest(), len(image))


def sign_manifest(manifest: Manifest, vendor_key: keys.PrivateKey) -> bytes:
    return cose.sign(manifest.to_bytes(), vendor_key, MANIFEST_AAD)


def verify_manifest(data: bytes, vendor_ca_public_key: keys.PublicKey) -> Manifest:
    """The manifest if ``data`` is one signed by the vendor CA key.

    ManifestSignatureError for a signature that does not verify, PkiError for anything that is
    not a manifest at all; the signature is checked before the payload is interpreted.
    """
    message = cose.decode(data, "firmware manifest")
    if message.unprotected:
        raise PkiError("firmware manifest: unprotected header must be empty")
    if not cose.verify(message, vendor_ca_public_key, MANIFEST_AAD):
        raise ManifestSignatureError(
            "firmware manifest: signature does not verify with the vendor CA key",
            "the manifest was altered, or signed by someone else",
        )
    return Manifest.from_bytes(message.payload)


def image_bytes(vendor: str, model: str, version: str) -> bytes:
    """A deterministic stand-in image of 3 to 5 KB (SHA-256 in counter mode)."""
    seed = hashlib.sha256(f"{vendor}/{model}/{version}".encode()).digest()
    size = 3072 + seed[0] * 8
    blocks = (hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


@dataclass(frozen=True)
class Release:
    name: str  # the image name the vendor cloud serves it under
    image: bytes
    manifest: bytes  # the signed COSE_Sign1


def genuine_release(vendor: Vendor, model: str, version: str, name: str | None = None) -> Release:
    image = image_bytes(vendor.name, model, version)
    manifest = Manifest.describe(vendor.name, model, version, image)
    return Release(name or version, image, sign_manifest(manifest, vendor.ca.key))


def mint_releases(vendor: Vendor, model: str, versions: list[str]) -> list[Release]:
    """Every version genuine, and per version the broken variants of the module doc."""
    releases = []
    for version in versions:
        parse_version(version)
        genuine = genuine_release(vendor, model, version)
        flipped = bytearray(genuine.image)
        flipped[len(flipped) // 2] ^= 0x01
        forged = _forge(genuine.manifest)
        other = genuine_release(vendor, f"{model}-other", version)
        releases += [
            genuine,
            Release(f"{version}-{TAMPERED}", bytes(flipped), genuine.manifest),
            Release(f"{version}-{FORGED}", genuine.image, forged),
            Release(f"{version}-{OTHER_MODEL}", other.image, other.manifest),
        ]
    return releases


def _forge(signed: bytes) -> bytes:
    """The same COSE_Sign1 with the version raised to 99.0.0 and the old signature kept."""
    message = cose.decode(signed, "firmware manifest")
    manifest = Manifest.from_bytes(message.payload)
    raised = Manifest(manifest.vendor, manifest.model, "99.0.0", manifest.digest, manifest.size)
    item = [message.protected, dict(message.unprotected), raised.to_bytes(), message.signature]
    return _cbor.dumps(cbor2.CBORTag(cose.TAG_SIGN1, item))
