"""Ownership vouchers: issue, verify, extend, and every way a chain can be broken."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import cbor2
import pytest

from testbed.errors import PkiError
from testbed.pki import (
    DeviceIdentity,
    Domain,
    Vendor,
    Voucher,
    cose,
    extend_voucher,
    issue_voucher,
    keys,
    manufacture,
    verify_voucher_chain,
    voucher_names_owner,
)
from testbed.pki.voucher import KIND_EXTENSION, V_OWNER, V_PREV, VERSION

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def third_owner() -> keys.PrivateKey:
    return keys.generate()


@pytest.fixture(scope="module")
def chain(
    vendor: Vendor,
    device: DeviceIdentity,
    domain: Domain,
    next_domain: Domain,
    third_owner: keys.PrivateKey,
) -> Voucher:
    """acme -> hvac-contractor -> building-owner -> third owner: three links after the first."""
    v = issue_voucher(vendor, device, domain.owner_public_key, now=NOW)
    v = extend_voucher(v, domain.owner_key, next_domain.owner_public_key, now=NOW)
    return extend_voucher(v, next_domain.owner_key, third_owner.public_key(), now=NOW)


def verify(chain: Voucher, vendor: Vendor, device: DeviceIdentity) -> keys.PublicKey:
    return verify_voucher_chain(chain, vendor.public_key, device.serial, device.public_key)


def rejected(chain: Voucher, vendor: Vendor, device: DeviceIdentity, link: int) -> str:
    """Verify, expect a PkiError that names ``link``; return the message."""
    with pytest.raises(PkiError) as info:
        verify(chain, vendor, device)
    message = info.value.message
    assert re.match(rf"voucher link {link} \(", message), message
    return message


# -- good chains ------------------------------------------------------------------------------


def test_issued_voucher_verifies_to_the_owner(
    vendor: Vendor, device: DeviceIdentity, domain: Domain
) -> None:
    voucher = issue_voucher(vendor, device, domain.owner_public_key, now=NOW)
    assert len(voucher) == 1
    owner = verify(voucher, vendor, device)
    assert keys.same(owner, domain.owner_public_key)
    assert voucher_names_owner(voucher, domain.owner_public_key)
    assert (voucher.serial, voucher.vendor) == ("SN-0001", "acme")


def test_voucher_payload_is_versioned_deterministic_cbor(
    vendor: Vendor, device: DeviceIdentity, domain: Domain
) -> None:
    voucher = issue_voucher(vendor, device, domain.owner_public_key, now=NOW)
    message = cose.decode(voucher.links[0], "link 0")
    payload = cbor2.loads(message.payload)
    assert payload == {
        1: VERSION,
        2: 0,
        3: int(NOW.timestamp()),
        4: "acme",
        5: "SN-0001",
        6: keys.point(device.public_key),
        7: keys.point(domain.owner_public_key),
    }
    assert cbor2.dumps(payload, canonical=True) == message.payload


def test_extended_chain_verifies_to_the_last_owner(
    chain: Voucher,
    vendor: Vendor,
    device: DeviceIdentity,
    domain: Domain,
    third_owner: keys.PrivateKey,
) -> None:
    assert len(chain) == 3
    assert keys.same(verify(chain, vendor, device), third_owner.public_key())
    assert voucher_names_owner(chain, third_owner.public_key())
    assert not voucher_names_owner(chain, domain.owner_public_key)


def test_chain_round_trips_through_bytes(
    chain: Voucher, vendor: Vendor, device: DeviceIdentity
) -> None:
    data = chain.to_bytes()
    assert cbor2.loads(data) == list(chain.links)
    assert Voucher.from_bytes(data) == chain
    verify(Voucher.from_bytes(data), vendor, device)


def test_only_the_current_owner_can_extend(
    chain: Voucher, domain: Domain, next_domain: Domain
) -> None:
    with pytest.raises(PkiError, match="only the current owner"):
        extend_voucher(chain, domain.owner_key, next_domain.owner_public_key)


def test_issue_refuses_another_vendors_device(
    other_vendor: Vendor, device: DeviceIdentity, domain: Domain
) -> None:
    with pytest.raises(PkiError, match="not made by vendor globex"):
        issue_voucher(other_vendor, device, domain.owner_public_key)


# -- broken chains: each names the failing link ------------------------------------------------


def test_wrong_vendor_signer_fails_link_0(
    other_vendor: Vendor, vendor: Vendor, device: DeviceIdentity, domain: Domain
) -> None:
    # globex signs a voucher for acme's device (bypassing issue_voucher's own check)
    payload = cose.decode(issue_voucher(vendor, device, domain.owner_public_key).links[0], "x")
    forged = Voucher((cose.sign(payload.payload, other_vendor.ca.key),))
    assert "vendor CA key" in rejected(forged, vendor, device, 0)


def test_wrong_owner_signer_fails_that_link(
    chain: Voucher, vendor: Vendor, device: DeviceIdentity, domain: Domain
) -> None:
    # link 2 re-signed by the first owner, who no longer owns the device after link 1
    original = cbor2.loads(cose.decode(chain.links[2], "x").payload)
    forged_link = cose.sign(cbor2.dumps(original, canonical=True), domain.owner_key)
    forged = Voucher((*chain.links[:2], forged_link))
    assert "not signed by the owner link 1 names" in rejected(forged, vendor, device, 2)


def test_thief_appending_a_link_fails_that_link(
    chain: Voucher, vendor: Vendor, device: DeviceIdentity
) -> None:
    thief = keys.generate()
    payload = {
        1: VERSION,
        2: KIND_EXTENSION,
        3: 0,
        V_OWNER: keys.point(thief.public_key()),
        V_PREV: hashlib.sha256(chain.links[-1]).digest(),
    }
    stolen = Voucher((*chain.links, cose.sign(cbor2.dumps(payload, canonical=True), thief)))
    assert "not signed by the owner link 2 names" in rejected(stolen, vendor, device, 3)


def test_reordered_links_fail(chain: Voucher, vendor: Vendor, device: DeviceIdentity) -> None:
    swapped = Voucher((chain.links[0], chain.links[2], chain.links[1]))
    assert "does not follow link 0" in rejected(swapped, vendor, device, 1)


def test_missing_middle_link_fails(chain: Voucher, vendor: Vendor, device: DeviceIdentity) -> None:
    gapped = Voucher((chain.links[0], chain.links[2]))
    assert "does not follow link 0" in rejected(gapped, vendor, device, 1)


def test_chain_truncated_at_the_front_fails_link_0(
    chain: Voucher, vendor: Vendor, device: DeviceIdentity
) -> None:
    headless = Voucher(chain.links[1:])
    assert "not a vendor-signed voucher" in rejected(headless, vendor, device, 0)
    with pytest.raises(PkiError, match="voucher link 0"):
        _ = headless.serial


def test_chain_truncated_at_the_end_no_longer_names_the_new_owner(
    chain: Voucher,
    vendor: Vendor,
    device: DeviceIdentity,
    next_domain: Domain,
    third_owner: keys.PrivateKey,
) -> None:
    # Every remaining link is valid: the chain proves the earlier owner, not the new one.
    cut = Voucher(chain.links[:2])
    assert keys.same(verify(cut, vendor, device), next_domain.owner_public_key)
    assert not voucher_names_owner(cut, third_owner.public_key())


def test_truncated_bytes_fail_to_decode(chain: Voucher) -> None:
    data = chain.to_bytes()
    with pytest.raises(PkiError, match="voucher: not valid CBOR"):
        Voucher.from_bytes(data[:-10])


def test_truncated_link_bytes_fail_that_link(
    chain: Voucher, vendor: Vendor, device: DeviceIdentity
) -> None:
    cut = Voucher((chain.links[0], chain.links[1][:-5], chain.links[2]))
    assert "not valid CBOR" in rejected(cut, vendor, device, 1)


def test_tampered_owner_key_fails_that_link(
    chain: Voucher, vendor: Vendor, device: DeviceIdentity, third_owner: keys.PrivateKey
) -> None:
    # Overwrite the owner key in link 1's payload with another key of the same size: still
    # well-formed, but the signature no longer covers it.
    link = chain.links[1]
    old = keys.point(_owner(link))
    new = keys.point(third_owner.public_key())
    assert link.count(old) == 1
    tampered = Voucher((chain.links[0], link.replace(old, new), chain.links[2]))
    assert "not signed by the owner link 0 names" in rejected(tampered, vendor, device, 1)


def _owner(link: bytes) -> keys.PublicKey:
    return keys.from_point(cbor2.loads(cose.decode(link, "x").payload)[V_OWNER], "owner")


def test_tampered_vendor_link_fails_link_0(
    chain: Voucher, vendor: Vendor, device: DeviceIdentity
) -> None:
    link = bytearray(chain.links[0])
    link[-1] ^= 0x01  # last byte of the signature
    assert "vendor CA key" in rejected(Voucher((bytes(link), *chain.links[1:])), vendor, device, 0)


def test_tampered_serial_fails_link_0(
    vendor: Vendor, device: DeviceIdentity, domain: Domain
) -> None:
    link = issue_voucher(vendor, device, domain.owner_public_key).links[0]
    tampered = link.replace(b"SN-0001", b"SN-0002")
    assert "vendor CA key" in rejected(Voucher((tampered,)), vendor, device, 0)


def test_device_key_mismatch_fails_link_0(
    vendor: Vendor, device: DeviceIdentity, domain: Domain
) -> None:
    # A genuine voucher, presented by a device with another key (a clone with a fresh key).
    voucher = issue_voucher(vendor, device, domain.owner_public_key)
    clone = manufacture(vendor, "SN-0001", "thermostat-3")
    assert "another device key" in rejected(voucher, vendor, clone, 0)


def test_voucher_of_another_serial_fails_link_0(
    vendor: Vendor, device: DeviceIdentity, domain: Domain
) -> None:
    voucher = issue_voucher(vendor, device, domain.owner_public_key)
    with pytest.raises(PkiError, match=r"voucher link 0 .*names device serial 'SN-0001'"):
        verify_voucher_chain(voucher, vendor.public_key, "SN-0002", device.public_key)


def test_second_vendor_voucher_in_the_chain_fails_that_link(
    chain: Voucher, vendor: Vendor, device: DeviceIdentity, domain: Domain
) -> None:
    spliced = Voucher(
        (*chain.links[:2], issue_voucher(vendor, device, domain.owner_public_key).links[0])
    )
    assert "only link 0 may be" in rejected(spliced, vendor, device, 2)


def test_link_from_another_devices_chain_fails(
    chain: Voucher, vendor: Vendor, domain: Domain, next_domain: Domain, device: DeviceIdentity
) -> None:
    other = manufacture(vendor, "SN-0042", "thermostat-3")
    other_chain = extend_voucher(
        issue_voucher(vendor, other, domain.owner_public_key),
        domain.owner_key,
        next_domain.owner_public_key,
    )
    spliced = Voucher((chain.links[0], other_chain.links[1]))
    assert "does not follow link 0" in rejected(spliced, vendor, device, 1)


def test_unprotected_header_content_fails_that_link(
    chain: Voucher, vendor: Vendor, device: DeviceIdentity
) -> None:
    item = cbor2.loads(chain.links[1])
    protected, _, payload, signature = item.value
    smuggled = cbor2.dumps(
        cbor2.CBORTag(18, [protected, {4: b"x"}, payload, signature]), canonical=True
    )
    message = rejected(Voucher((chain.links[0], smuggled, chain.links[2])), vendor, device, 1)
    assert "unprotected header" in message


def test_unknown_version_fails_that_link(vendor: Vendor, device: DeviceIdentity) -> None:
    payload = {1: 2, 2: 0, 3: 0, 4: "acme", 5: "SN-0001", 6: b"", 7: b""}
    link = cose.sign(cbor2.dumps(payload, canonical=True), vendor.ca.key)
    assert "version 2 is not supported" in rejected(Voucher((link,)), vendor, device, 0)


def test_non_deterministic_encoding_fails_that_link(
    chain: Voucher, vendor: Vendor, device: DeviceIdentity
) -> None:
    padded = chain.links[1] + b"\x00"  # trailing byte after the COSE_Sign1
    message = rejected(Voucher((chain.links[0], padded, chain.links[2])), vendor, device, 1)
    assert "deterministic" in message


def test_empty_chain_is_rejected(vendor: Vendor, device: DeviceIdentity) -> None:
    with pytest.raises(PkiError, match="empty"):
        verify(Voucher(()), vendor, device)
    with pytest.raises(PkiError, match="non-empty"):
        Voucher.from_bytes(cbor2.dumps([]))
