"""Minting at `testbed up`: each node gets exactly its share, 0600, and the credentials verify."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from testbed import manufacture, pki, rundir
from testbed.errors import PkiError
from testbed.node import material as M
from testbed.plan import make_plan
from testbed.topology import load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def minted(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    run_dir = tmp_path_factory.mktemp("run")
    plan = make_plan(load_topology(ROOT / "topologies" / "default.yaml"), "office")
    rundir.write_run_dir(plan, run_dir, "")
    return plan, run_dir, manufacture.mint(plan, run_dir)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_every_secret_is_0600_and_every_dir_0700(minted) -> None:  # type: ignore[no-untyped-def]
    _, run_dir, _ = minted
    for path in run_dir.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_a_thing_gets_its_factory_identity_and_nothing_else(minted) -> None:  # type: ignore[no-untyped-def]
    plan, run_dir, m = minted
    files = _files(run_dir / "nodes" / "lamp-01")
    assert files == {
        "node.json",
        M.DEVICE_KEY_PEM,
        M.DEVICE_KEY_COSE,
        M.IDEVID_DER,
        M.IDEVID_PEM,
        M.DEVICE_CCS,
        M.THING_VENDOR_CA,  # verifies firmware manifests
        M.TRUST_CENTER_CCS,
        M.TRUST_CENTER_CA,  # anchors the trust center's dtls-cert certificate
    }
    device = m.devices["lamp-01"]
    serial = plan.node("lamp-01").config.attributes["serial"]
    assert device.serial == serial
    name = pki.verify_device_cert(device.idevid, m.vendors["lumina"].ca_cert)
    assert (name.vendor, name.serial) == ("lumina", serial)
    # One-byte kids in a small building: RFC 9529-sized EDHOC messages.
    assert len(device.kid) == 1


def test_the_trust_center_gets_no_owner_or_vendor_private_key(minted) -> None:  # type: ignore[no-untyped-def]
    _, run_dir, _ = minted
    tc_dir = run_dir / "nodes" / "tc-facility"
    files = _files(tc_dir)
    assert {M.TC_KEY_COSE, M.TC_CCS, M.DOMAIN_CA_KEY, M.DOMAIN_CA_CERT, M.OWNER_PUB} <= files
    assert not any("owner.key" in f or "vendor-ca.key" in f for f in files)
    assert {
        f"{M.VENDORS_DIR}/acme/{M.VENDOR_CA_CERT}",
        f"{M.VENDORS_DIR}/lumina/{M.VENDOR_CA_CERT}",
    } <= files
    # default.yaml commissions through phases: the install phase imports the device records.
    assert not any(f.startswith(M.DEVICES_DIR + "/") for f in files)
    assert f"{M.BACKENDS_DIR}/backend.ccs.cbor" in files


def test_with_auto_commissioning_the_sale_records_are_pre_imported(tmp_path: Path) -> None:
    text = (ROOT / "topologies" / "default.yaml").read_text() + "commissioning: auto\n"
    plan = make_plan(parse_topology(text), "auto")
    rundir.write_run_dir(plan, tmp_path, "")
    m = manufacture.mint(plan, tmp_path)
    files = _files(tmp_path / "nodes" / "tc-facility")
    records = {f.split("/")[1] for f in files if f.startswith(M.DEVICES_DIR + "/")}
    assert records == {d.serial for d in m.devices.values()}


def test_vouchers_end_at_the_domain_owner(minted) -> None:  # type: ignore[no-untyped-def]
    _, _, m = minted
    owner = m.domains["facility"].owner_public_key
    for name, device in m.devices.items():
        vendor = m.vendors[device.vendor]
        final = pki.verify_voucher_chain(
            m.vouchers[name], vendor.public_key, device.serial, device.public_key
        )
        assert pki.keys.same(final, owner)


def test_the_backend_knows_every_trust_center(minted) -> None:  # type: ignore[no-untyped-def]
    _, run_dir, _ = minted
    files = _files(run_dir / "nodes" / "backend")
    assert {M.HOST_KEY_COSE, M.HOST_CCS, f"{M.TRUST_CENTERS_DIR}/facility.ccs.cbor"} <= files


def test_host_side_keys_stay_in_the_pki_dir(minted) -> None:  # type: ignore[no-untyped-def]
    _, run_dir, _ = minted
    assert (run_dir / "pki" / "domains" / "facility" / "owner.key.pem").exists()
    assert (run_dir / "pki" / "vendors" / "acme" / "vendor-ca.key.pem").exists()


def _faulty(fault: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    text = (ROOT / "tests" / "fixtures" / "topologies" / "good" / "base.yaml").read_text()
    text = text.replace("    pan: p1\n", f"    pan: p1\n    faults: [{fault}]\n")
    plan = make_plan(parse_topology(text), "faults")
    rundir.write_run_dir(plan, tmp_path, "")
    return manufacture.mint(plan, tmp_path)


def test_rogue_idevid_does_not_chain_to_the_vendor(tmp_path: Path) -> None:
    m = _faulty("rogue-idevid", tmp_path)
    device = m.devices["t1"]
    with pytest.raises(PkiError):
        pki.verify_device_cert(device.idevid, m.vendors["acme"].ca_cert)


def test_foreign_voucher_names_another_owner(tmp_path: Path) -> None:
    m = _faulty("foreign-voucher", tmp_path)
    device = m.devices["t1"]
    final = pki.verify_voucher_chain(
        m.vouchers["t1"], m.vendors["acme"].public_key, device.serial, device.public_key
    )
    assert not pki.keys.same(final, m.domains["d1"].owner_public_key)


def test_large_buildings_use_derived_kids(tmp_path: Path) -> None:
    text = (ROOT / "tests" / "fixtures" / "topologies" / "good" / "base.yaml").read_text()
    text = text.replace("  - name: t1\n", "  - name: 't{n:03d}'\n    count: 60\n")
    plan = make_plan(parse_topology(text), "big")
    rundir.write_run_dir(plan, tmp_path, "")
    m = manufacture.mint(plan, tmp_path)
    kids = [d.kid for d in m.devices.values()]
    assert len(set(kids)) == 60 and all(len(k) == 4 for k in kids)


def test_a_dtls_psk_thing_and_its_owner_get_its_factory_key(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    topology = ROOT / "tests" / "fixtures" / "topologies" / "integration" / "profiles.yaml"
    plan = make_plan(load_topology(topology), "p")
    rundir.write_run_dir(plan, run_dir, "")
    m = manufacture.mint(plan, run_dir)
    assert set(m.psks) == {"psk-01"}  # only the dtls-psk thing has one
    psk = (run_dir / "nodes" / "psk-01" / M.DEVICE_PSK).read_bytes()
    assert len(psk) == M.PSK_BYTES and psk == m.psks["psk-01"]
    # The owner's copy, imported with the voucher in the install phase.
    assert (run_dir / "pki" / "things" / "psk-01" / M.DEVICE_RECORD_PSK).read_bytes() == psk
    assert not (run_dir / "nodes" / "cert-01" / M.DEVICE_PSK).exists()
    anchor = (run_dir / "nodes" / "cert-01" / M.TRUST_CENTER_CA).read_bytes()
    assert anchor == m.domains["facility"].ca_cert.public_bytes(Encoding.DER)
    for path in run_dir.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600)
