"""Files on disk (modes, atomicity, no silent key replacement) and bytes round trips."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cbor2
import pytest

from testbed.errors import PkiError
from testbed.pki import (
    DeviceIdentity,
    Domain,
    Vendor,
    issue_voucher,
    keys,
    load_device,
    load_domain,
    load_vendor,
    load_voucher,
    manufacture,
    store,
    verify_voucher_chain,
    write_device,
    write_domain,
    write_files,
    write_vendor,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_device_directory_layout_and_modes(
    tmp_path: Path, vendor: Vendor, device: DeviceIdentity, domain: Domain
) -> None:
    voucher = issue_voucher(vendor, device, domain.owner_public_key)
    target = tmp_path / "run" / "thermostat-01"
    write_device(target, device, voucher)
    assert sorted(os.listdir(target)) == [
        "device.ccs.cbor",
        "device.key.cbor",
        "device.key.pem",
        "idevid.crt.der",
        "idevid.crt.pem",
        "voucher.cbor",
    ]
    assert mode(target) == 0o700 and mode(target.parent) == 0o700
    assert all(mode(p) == 0o600 for p in target.iterdir())
    assert not [p for p in tmp_path.rglob(".*")], "staging leftovers"
    cose_key = cbor2.loads((target / "device.key.cbor").read_bytes())
    assert cose_key == keys.cose_private_key(device.key)  # aiocoap's private_key_file format


def test_device_loads_back(
    tmp_path: Path, vendor: Vendor, device: DeviceIdentity, domain: Domain
) -> None:
    voucher = issue_voucher(vendor, device, domain.owner_public_key)
    write_device(tmp_path / "d", device, voucher)
    loaded = load_device(tmp_path / "d")
    assert (loaded.vendor, loaded.model, loaded.serial, loaded.kid) == (
        "acme",
        "thermostat-3",
        "SN-0001",
        device.kid,
    )
    assert keys.same(loaded.public_key, device.public_key)
    assert loaded.idevid == device.idevid and loaded.ccs == device.ccs
    assert load_voucher(tmp_path / "d") == voucher
    verify_voucher_chain(voucher, vendor.public_key, loaded.serial, loaded.public_key)


def test_vendor_and_domain_load_back(tmp_path: Path, vendor: Vendor, domain: Domain) -> None:
    write_vendor(tmp_path / "v", vendor)
    write_domain(tmp_path / "o", domain)
    v = load_vendor(tmp_path / "v")
    d = load_domain(tmp_path / "o")
    assert v.name == "acme" and v.ca_cert == vendor.ca_cert
    assert d.name == "hvac-contractor" and d.ca_cert == domain.ca_cert
    assert keys.same(d.owner_public_key, domain.owner_public_key)
    assert mode(tmp_path / "o" / "owner.key.pem") == 0o600


def test_rewriting_identical_material_is_a_no_op(tmp_path: Path, device: DeviceIdentity) -> None:
    write_device(tmp_path / "d", device)
    before = {p.name: p.stat().st_ino for p in (tmp_path / "d").iterdir()}
    write_device(tmp_path / "d", device)
    assert {p.name: p.stat().st_ino for p in (tmp_path / "d").iterdir()} == before


def test_existing_key_is_never_replaced_silently(
    tmp_path: Path, vendor: Vendor, device: DeviceIdentity
) -> None:
    write_device(tmp_path / "d", device)
    other = manufacture(vendor, "SN-0001", "thermostat-3")
    with pytest.raises(
        PkiError, match=r"different private keys: device\.key\.cbor, device\.key\.pem"
    ):
        write_device(tmp_path / "d", other)
    # nothing was written: the certificate still matches the old key
    assert load_device(tmp_path / "d").idevid == device.idevid
    write_files(tmp_path / "d", store.device_files(other), replace_keys=True)
    assert load_device(tmp_path / "d").idevid == other.idevid


def test_non_key_files_are_replaced_atomically(
    tmp_path: Path, vendor: Vendor, device: DeviceIdentity, domain: Domain, next_domain: Domain
) -> None:
    write_device(tmp_path / "d", device, issue_voucher(vendor, device, domain.owner_public_key))
    newer = issue_voucher(vendor, device, next_domain.owner_public_key)
    write_device(tmp_path / "d", device, newer)
    assert load_voucher(tmp_path / "d") == newer
    assert mode(tmp_path / "d" / "voucher.cbor") == 0o600


def test_composed_directory_with_subdirectories(
    tmp_path: Path, vendor: Vendor, domain: Domain, device: DeviceIdentity
) -> None:
    files = store.domain_files(domain) | {
        "vendors/acme.crt.pem": store.vendor_files(vendor)["vendor-ca.crt.pem"],
        "vouchers/SN-0001.cbor": issue_voucher(vendor, device, domain.owner_public_key).to_bytes(),
    }
    write_files(tmp_path / "tc", files)
    assert mode(tmp_path / "tc" / "vendors") == 0o700
    assert mode(tmp_path / "tc" / "vouchers" / "SN-0001.cbor") == 0o600


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/../b", "", "./x", "a\\b"])
def test_bad_file_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(PkiError, match="bad file name"):
        write_files(tmp_path / "d", {name: b"x"})
    assert not (tmp_path / "d").exists()


def test_failed_new_directory_leaves_nothing(tmp_path: Path, device: DeviceIdentity) -> None:
    class Boom(Exception):
        pass

    class Exploding(dict[str, bytes]):
        def items(self):  # type: ignore[no-untyped-def]
            yield from super().items()
            raise Boom

    with pytest.raises(Boom):
        write_files(tmp_path / "d", Exploding(store.device_files(device)))
    assert os.listdir(tmp_path) == []


def test_symlinked_target_is_refused(tmp_path: Path, device: DeviceIdentity) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(PkiError, match="symlink"):
        write_device(tmp_path / "link", device)


# -- bytes round trips ----------------------------------------------------------------------------


def test_vendor_domain_device_bytes_round_trip(
    vendor: Vendor, domain: Domain, device: DeviceIdentity
) -> None:
    v = Vendor.from_bytes(vendor.to_bytes())
    assert v.name == vendor.name and v.ca_cert == vendor.ca_cert
    assert keys.same(v.ca.key.public_key(), vendor.public_key)
    d = Domain.from_bytes(domain.to_bytes())
    assert d.name == domain.name and d.ca_cert == domain.ca_cert
    assert keys.same(d.owner_public_key, domain.owner_public_key)
    t = DeviceIdentity.from_bytes(device.to_bytes())
    assert (t.vendor, t.model, t.serial, t.idevid, t.ccs) == (
        device.vendor,
        device.model,
        device.serial,
        device.idevid,
        device.ccs,
    )


def test_bundles_reject_the_wrong_kind(vendor: Vendor, domain: Domain) -> None:
    with pytest.raises(PkiError, match="vendor bundle"):
        Vendor.from_bytes(domain.to_bytes())
    with pytest.raises(PkiError, match="device bundle"):
        DeviceIdentity.from_bytes(vendor.to_bytes())


def test_bundle_with_mismatched_ca_key_is_rejected(vendor: Vendor, other_vendor: Vendor) -> None:
    m = cbor2.loads(vendor.to_bytes())
    m["ca_key"] = cbor2.loads(other_vendor.to_bytes())["ca_key"]
    with pytest.raises(PkiError, match="does not match the CA certificate"):
        Vendor.from_bytes(cbor2.dumps(m, canonical=True))


def test_symlinked_subdirectory_is_refused(tmp_path: Path, domain: Domain) -> None:
    write_domain(tmp_path / "tc", domain)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "tc" / "vouchers").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PkiError, match="symlink"):
        write_files(tmp_path / "tc", {"vouchers/x.cbor": b"x"})
    assert os.listdir(tmp_path / "elsewhere") == []
