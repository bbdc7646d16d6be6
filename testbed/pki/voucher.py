"""Ownership vouchers: a vendor-signed statement, extended by each owner to the next.

Link 0, signed by the vendor CA key:     "device SERIAL of VENDOR, public key K, belongs to O1"
Link i >= 1, signed by the owner link i-1 names:  "the next owner is O(i+1)"; it carries the
SHA-256 of link i-1's bytes, so links cannot be reordered, dropped from the middle or spliced
from another device's chain (FIDO Device Onboard's ownership voucher works the same way).

Wire format: each link is a tagged COSE_Sign1 (ES256, empty unprotected header; see ``cose``)
whose payload is a deterministic CBOR map with small integer keys:

    1: version (1)      2: kind (0 vendor voucher, 1 extension)      3: created (Unix seconds)
    link 0 only:  4: vendor name (tstr)  5: device serial (tstr)  6: device key (SEC1 point)
    every link:   7: owner key named by this link (SEC1 uncompressed point, 65 bytes)
    link i >= 1:  8: SHA-256 of link i-1 (the whole COSE_Sign1 bytes)

A voucher (the chain) is the CBOR array of the links' bytes: ``[bstr, bstr, ...]``.

``created`` is recorded, not enforced: each link's time comes from a different party's clock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from testbed.errors import PkiError
from testbed.pki import _cbor, _time, cose, keys
from testbed.pki.ca import Vendor
from testbed.pki.device import DeviceIdentity

VERSION = 1
MAX_LINKS = 64  # bounds the work a hostile chain can cause; real chains are a handful long

V_VERSION, V_KIND, V_CREATED, V_VENDOR, V_SERIAL, V_DEVICE_KEY, V_OWNER, V_PREV = range(1, 9)
KIND_VOUCHER, KIND_EXTENSION = 0, 1
_FIELDS = {
    KIND_VOUCHER: {V_VERSION, V_KIND, V_CREATED, V_VENDOR, V_SERIAL, V_DEVICE_KEY, V_OWNER},
    KIND_EXTENSION: {V_VERSION, V_KIND, V_CREATED, V_OWNER, V_PREV},
}


@dataclass(frozen=True)
class Voucher:
    """An ownership voucher chain: link 0 from the vendor, then one link per transfer.

    The properties read the links without verifying anything; use ``verify_voucher_chain``
    before acting on them.
    """

    links: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        return _cbor.dumps(list(self.links))

    @classmethod
    def from_bytes(cls, data: bytes) -> Voucher:
        items = _cbor.as_array(_cbor.loads(data, "voucher"), "voucher")
        if not items or not all(isinstance(item, bytes) for item in items):
            raise PkiError("voucher: must be a non-empty array of links (byte strings)")
        return cls(tuple(items))

    @property
    def serial(self) -> str:
        return str(_head(self.links).fields[V_SERIAL])

    @property
    def vendor(self) -> str:
        return str(_head(self.links).fields[V_VENDOR])

    @property
    def owner_key(self) -> keys.PublicKey:
        """The owner the last link names (unverified)."""
        return _link(self.links, len(self.links) - 1).owner

    def __len__(self) -> int:
        return len(self.links)


@dataclass(frozen=True)
class _Link:
    message: cose.Sign1
    fields: dict[int, Any]
    owner: keys.PublicKey

    @property
    def kind(self) -> int:
        return int(self.fields[V_KIND])


def _label(index: int) -> str:
    return f"voucher link {index} ({'vendor voucher' if index == 0 else 'extension'})"


def _link(links: tuple[bytes, ...], index: int) -> _Link:
    """Decode link ``index`` and check its shape (not its signature)."""
    what = _label(index)
    if not 0 <= index < len(links):
        raise PkiError("voucher chain is empty" if not links else f"{what}: no such link")
    message = cose.decode(links[index], what)
    if message.unprotected:
        raise PkiError(f"{what}: unprotected header must be empty")
    fields: dict[int, Any] = dict(_cbor.as_map(_cbor.loads(message.payload, what), what))
    version = _cbor.field(fields, V_VERSION, int, what)
    if version != VERSION:
        raise PkiError(f"{what}: voucher version {version} is not supported (only {VERSION})")
    kind = _cbor.field(fields, V_KIND, int, what)
    if kind not in _FIELDS:
        raise PkiError(f"{what}: unknown kind {kind}")
    if set(fields) != _FIELDS[kind]:
        raise PkiError(f"{what}: fields {sorted(fields, key=repr)} do not match kind {kind}")
    _cbor.field(fields, V_CREATED, int, what)
    owner = keys.from_point(_cbor.field(fields, V_OWNER, bytes, what), f"{what} owner key")
    if kind == KIND_VOUCHER:
        _cbor.field(fields, V_VENDOR, str, what)
        _cbor.field(fields, V_SERIAL, str, what)
        _cbor.field(fields, V_DEVICE_KEY, bytes, what)
    else:
        _cbor.field(fields, V_PREV, bytes, what)
    return _Link(message, fields, owner)


def _head(links: tuple[bytes, ...]) -> _Link:
    first = _link(links, 0)
    if first.kind != KIND_VOUCHER:
        raise PkiError(
            f"{_label(0)}: is an extension, not a vendor-signed voucher",
            "the chain lost its first link",
        )
    return first


def _hash(link: bytes) -> bytes:
    return hashlib.sha256(link).digest()


def _created(now: datetime | None) -> int:
    return int(_time.utc(now).timestamp())


def issue_voucher(
    vendor: Vendor,
    device: DeviceIdentity,
    owner_pub: keys.PublicKey,
    *,
    now: datetime | None = None,
) -> Voucher:
    """The vendor's statement that ``device`` belongs to the owner of ``owner_pub``."""
    if device.vendor != vendor.name or device.idevid.issuer != vendor.ca_cert.subject:
        raise PkiError(
            f"device {device.vendor}/{device.serial} was not made by vendor {vendor.name}"
        )
    keys.require_p256(owner_pub, "owner key")
    payload = {
        V_VERSION: VERSION,
        V_KIND: KIND_VOUCHER,
        V_CREATED: _created(now),
        V_VENDOR: vendor.name,
        V_SERIAL: device.serial,
        V_DEVICE_KEY: keys.point(device.public_key),
        V_OWNER: keys.point(owner_pub),
    }
    return Voucher((cose.sign(_cbor.dumps(payload), vendor.ca.key),))


def extend_voucher(
    chain: Voucher,
    current_owner_key: keys.PrivateKey,
    next_owner_pub: keys.PublicKey,
    *,
    now: datetime | None = None,
) -> Voucher:
    """Append a link by which the current owner hands the device to ``next_owner_pub``."""
    if len(chain.links) >= MAX_LINKS:
        raise PkiError(f"voucher chain already has {len(chain.links)} links (at most {MAX_LINKS})")
    keys.require_p256(next_owner_pub, "next owner key")
    current = chain.owner_key
    if not keys.same(current, current_owner_key.public_key()):
        raise PkiError(
            f"voucher for {chain.serial}: the chain ends at owner {keys.fingerprint(current)},"
            f" not at the signing key {keys.fingerprint(current_owner_key.public_key())}",
            "only the current owner can transfer the device",
        )
    payload = {
        V_VERSION: VERSION,
        V_KIND: KIND_EXTENSION,
        V_CREATED: _created(now),
        V_OWNER: keys.point(next_owner_pub),
        V_PREV: _hash(chain.links[-1]),
    }
    return Voucher((*chain.links, cose.sign(_cbor.dumps(payload), current_owner_key)))


def verify_voucher_chain(
    chain: Voucher,
    vendor_ca_public_key: keys.PublicKey,
    expected_serial: str,
    expected_device_key: keys.PublicKey,
) -> keys.PublicKey:
    """Verify every link; return the final owner's public key. PkiError names the bad link."""
    links = chain.links
    if not links:
        raise PkiError("voucher chain is empty")
    if len(links) > MAX_LINKS:
        raise PkiError(f"voucher chain has {len(links)} links (at most {MAX_LINKS})")
    first = _head(links)
    what = _label(0)
    if not cose.verify(first.message, vendor_ca_public_key):
        raise PkiError(
            f"{what}: signature does not verify with the vendor CA key",
            "another vendor signed it, or its bytes were altered",
        )
    if first.fields[V_SERIAL] != expected_serial:
        raise PkiError(
            f"{what}: names device serial {first.fields[V_SERIAL]!r}, expected {expected_serial!r}"
        )
    if first.fields[V_DEVICE_KEY] != keys.point(expected_device_key):
        raise PkiError(
            f"{what}: names another device key than the device's"
            f" ({keys.fingerprint(expected_device_key)})",
            "the voucher belongs to another (or a cloned) device",
        )
    owner = first.owner
    for index in range(1, len(links)):
        what = _label(index)
        link = _link(links, index)
        if link.kind != KIND_EXTENSION:
            raise PkiError(f"{what}: is a vendor voucher; only link 0 may be")
        if link.fields[V_PREV] != _hash(links[index - 1]):
            raise PkiError(
                f"{what}: does not follow link {index - 1} (previous-link hash differs)",
                "links were reordered, dropped or taken from another chain",
            )
        if not cose.verify(link.message, owner):
            raise PkiError(
                f"{what}: not signed by the owner link {index - 1} names"
                f" ({keys.fingerprint(owner)})",
                "a non-owner signed it, or its bytes were altered",
            )
        owner = link.owner
    return owner


def voucher_names_owner(chain: Voucher, owner_pub: keys.PublicKey) -> bool:
    """Policy: does the chain end at ``owner_pub``?

    This authenticates nothing: call it on a chain ``verify_voucher_chain`` accepted (or
    compare that function's result with the owner key directly).
    """
    return keys.same(chain.owner_key, owner_pub)
