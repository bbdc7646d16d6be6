"""Firmware manifests: signing, verification, purpose separation, and the minted variants."""

from __future__ import annotations

import hashlib

import pytest

from testbed import pki
from testbed.errors import PkiError
from testbed.pki import cose, firmware
from testbed.pki.firmware import Manifest, ManifestSignatureError, parse_version, verify_manifest


@pytest.fixture(scope="module")
def vendor() -> pki.Vendor:
    return pki.new_vendor("acme")


def test_a_genuine_release_verifies_and_describes_its_image(vendor: pki.Vendor) -> None:
    release = firmware.genuine_release(vendor, "t-1000", "2.0.0")
    manifest = verify_manifest(release.manifest, vendor.public_key)
    assert (manifest.vendor, manifest.model, manifest.version) == ("acme", "t-1000", "2.0.0")
    assert manifest.digest == hashlib.sha256(release.image).digest()
    assert manifest.size == len(release.image)
    assert 3072 <= len(release.image) <= 5120  # "a few KB", deterministic
    assert release.image == firmware.image_bytes("acme", "t-1000", "2.0.0")
    assert release.image != firmware.image_bytes("acme", "t-1000", "1.1.0")


def test_another_vendors_key_does_not_verify(vendor: pki.Vendor) -> None:
    release = firmware.genuine_release(vendor, "t-1000", "2.0.0")
    with pytest.raises(ManifestSignatureError, match="does not verify"):
        verify_manifest(release.manifest, pki.new_vendor("acme").public_key)


def test_a_voucher_link_never_verifies_as_a_manifest(vendor: pki.Vendor) -> None:
    # Same vendor CA key, other purpose: the external AAD keeps them apart even if a payload
    # happened to have the manifest's shape.
    payload = Manifest("acme", "t-1000", "9.0.0", bytes(32), 10).to_bytes()
    signed_without_aad = cose.sign(payload, vendor.ca.key)
    with pytest.raises(ManifestSignatureError):
        verify_manifest(signed_without_aad, vendor.public_key)


def test_variants_fail_for_the_reason_their_name_says(vendor: pki.Vendor) -> None:
    releases = {r.name: r for r in firmware.mint_releases(vendor, "t-1000", ["1.0.0", "2.0.0"])}
    assert sorted(releases) == sorted(
        f"{v}{s}" for v in ("1.0.0", "2.0.0") for s in ("", "-tampered", "-forged", "-other-model")
    )
    tampered = releases["2.0.0-tampered"]
    manifest = verify_manifest(tampered.manifest, vendor.public_key)
    assert manifest.version == "2.0.0" and manifest.size == len(tampered.image)
    assert hashlib.sha256(tampered.image).digest() != manifest.digest
    with pytest.raises(ManifestSignatureError):
        verify_manifest(releases["2.0.0-forged"].manifest, vendor.public_key)
    other = verify_manifest(releases["2.0.0-other-model"].manifest, vendor.public_key)
    assert other.model == "t-1000-other" and other.version == "2.0.0"


@pytest.mark.parametrize("data", [b"", b"\xa0", b"\x84\x40\xa0\x40\x40"])
def test_what_is_not_a_manifest_is_not_a_signature_failure(data: bytes) -> None:
    with pytest.raises(PkiError) as err:
        verify_manifest(data, pki.new_vendor("y").public_key)
    assert not isinstance(err.value, ManifestSignatureError)


def test_malformed_payload_under_a_valid_signature_is_refused(vendor: pki.Vendor) -> None:
    signed = cose.sign(b"\xa1\x01\x01", vendor.ca.key, firmware.MANIFEST_AAD)
    with pytest.raises(PkiError, match="fields") as err:
        verify_manifest(signed, vendor.public_key)
    assert not isinstance(err.value, ManifestSignatureError)


def test_versions_compare_numerically() -> None:
    assert parse_version("1.10.0") > parse_version("1.9.9")
    assert parse_version("2.0") == parse_version("2.0.0") == parse_version("2")
    for bad in ("", "v1", "1..0", "1.0.0-rc1", "1.2.3.4.5"):
        with pytest.raises(ValueError):
            parse_version(bad)
    with pytest.raises(ValueError):
        firmware.check_image_name("../etc")
