"""The registry on its own: schema, pragmas, one transaction per issuance, counters."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from cryptography import x509

from testbed import pki
from testbed.node.trust_center import contexts
from testbed.node.trust_center.registry import (
    ENROLLED,
    IMPORTED,
    REFUSED,
    REVOKED,
    SUPERSEDED,
    Registry,
)

SERIALS = ("SN-1", "SN-2")


@pytest.fixture(scope="module")
def domain() -> pki.Domain:
    return pki.new_domain("hvac")


@pytest.fixture(scope="module")
def device() -> pki.DeviceIdentity:
    return pki.manufacture(pki.new_vendor("acme"), "SN-1", "t-1000")


def _issuer(domain: pki.Domain, device: pki.DeviceIdentity):  # type: ignore[no-untyped-def]
    csr = pki.make_csr(device)

    def issue(serial_number: int) -> x509.Certificate:
        return pki.issue_ldevid(domain, csr, serial_number, expected_serial=device.serial)

    return issue


def _open(tmp_path: Path, clock: float = 1_700_000_000.0) -> Registry:
    registry = Registry.open(tmp_path, clock=lambda: clock)
    registry.ensure_imported((s, "acme", "t-1000", s.encode()) for s in SERIALS)
    return registry


def test_wal_full_sync_and_private_file(tmp_path: Path) -> None:
    registry = _open(tmp_path)
    registry.close()
    db = sqlite3.connect(tmp_path / "registry.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    registry = Registry.open(tmp_path)
    assert registry._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    registry.close()
    assert stat.S_IMODE((tmp_path / "registry.sqlite").stat().st_mode) == 0o600


def test_enroll_upserts_one_row_with_fresh_serial_and_generation(
    tmp_path: Path, domain: pki.Domain, device: pki.DeviceIdentity
) -> None:
    registry = _open(tmp_path)
    issue = _issuer(domain, device)
    first = registry.enroll("SN-1", issue, address="fd00::1", name="thermo", device_class="sensor")
    second = registry.enroll("SN-1", issue, address="fd00::2")
    assert first.previous_state == IMPORTED and second.previous_state == ENROLLED
    assert second.certificate.serial_number == first.certificate.serial_number + 1
    # Counter base: creation time * 2**20, so a registry re-created later starts above.
    assert first.certificate.serial_number == (1_700_000_000 << 20) + 1
    assert second.superseded == (first.certificate.serial_number,)
    thing = registry.thing("SN-1")
    assert thing is not None
    assert (thing.address, thing.name, thing.device_class) == ("fd00::2", "thermo", "sensor")
    assert (thing.oscore_index, thing.oscore_generation, thing.enrollments) == (1, 2, 2)
    first_grant, second_grant = first.thing.grant(), second.thing.grant()
    assert first_grant is not None and second_grant is not None
    assert first_grant.sender_id == second_grant.sender_id == contexts.ids_for(1).thing_id
    assert first_grant.master_secret != second_grant.master_secret
    assert first_grant.id_context != second_grant.id_context
    assert [r.reason for r in registry.revoked_certificates()] == [SUPERSEDED]
    assert registry.state_counts == {IMPORTED: 1, ENROLLED: 1, REFUSED: 0, REVOKED: 0}
    assert len(registry.things()) == 2


def test_failed_issuance_records_nothing_and_consumes_no_serial(
    tmp_path: Path, domain: pki.Domain, device: pki.DeviceIdentity
) -> None:
    registry = _open(tmp_path)

    def broken(serial_number: int) -> x509.Certificate:
        raise ValueError("signing failed")

    with pytest.raises(ValueError):
        registry.enroll("SN-1", broken, address=None)
    assert registry.certificate_serials() == []
    thing = registry.thing("SN-1")
    assert thing is not None and thing.state == IMPORTED and thing.oscore_index is None
    issued = registry.enroll("SN-1", _issuer(domain, device), address=None)
    assert issued.certificate.serial_number == (1_700_000_000 << 20) + 1


def test_counters_survive_reopening(
    tmp_path: Path, domain: pki.Domain, device: pki.DeviceIdentity
) -> None:
    registry = _open(tmp_path)
    issued = registry.enroll("SN-1", _issuer(domain, device), address=None)
    assert registry.next_crl_number() == 1
    registry.close()
    registry = Registry.open(tmp_path)  # a later clock: the stored counter wins
    assert registry.state_counts[ENROLLED] == 1 and registry.certificates_count == 1
    again = registry.enroll("SN-1", _issuer(domain, device), address=None)
    assert again.certificate.serial_number == issued.certificate.serial_number + 1
    assert registry.next_crl_number() == 2
    assert registry.revoked_count == 1


def test_refusals_state_and_revocation(
    tmp_path: Path, domain: pki.Domain, device: pki.DeviceIdentity
) -> None:
    registry = _open(tmp_path)
    registry.record_refusal(kid=b"\x01", serial="SN-2", vendor="acme", reason="bad-csr", detail="x")
    assert registry.set_state("SN-2", REFUSED, only_from=(IMPORTED,)) == IMPORTED
    assert registry.set_state("SN-2", REFUSED, only_from=(IMPORTED,)) is None
    registry.enroll("SN-1", _issuer(domain, device), address=None)
    result = registry.revoke("SN-1", "cessationOfOperation")
    assert result is not None and result[0] == ENROLLED and len(result[1]) == 1
    assert registry.revoke("SN-1", "cessationOfOperation") == (REVOKED, ())
    assert registry.revoke("nope", "cessationOfOperation") is None
    assert registry.state_counts == {IMPORTED: 0, ENROLLED: 0, REFUSED: 1, REVOKED: 1}
    assert [r.reason for r in registry.recent_refusals] == ["bad-csr"]
    registry.close()
    reopened = Registry.open(tmp_path)
    assert [r.to_dict()["kid"] for r in reopened.recent_refusals] == ["01"]
    assert reopened.state_counts == {IMPORTED: 0, ENROLLED: 0, REFUSED: 1, REVOKED: 1}


def test_reimport_updates_the_record_but_keeps_the_state(tmp_path: Path) -> None:
    registry = _open(tmp_path)
    registry.set_state("SN-1", REVOKED, only_from=(IMPORTED,))
    assert (
        registry.ensure_imported([("SN-1", "acme", "t-2000", b"\x09"), ("SN-3", "x", "y", b"z")])
        == 1
    )
    thing = registry.thing("SN-1")
    assert thing is not None and (thing.state, thing.model, thing.kid) == (
        REVOKED,
        "t-2000",
        b"\x09",
    )


def test_context_ids_are_short_and_unique() -> None:
    seen: set[bytes] = set()
    for index in range(1, 2000):
        ids = contexts.ids_for(index)
        assert ids.thing_id not in seen and ids.backend_id not in seen
        seen |= {ids.thing_id, ids.backend_id}
    assert contexts.ids_for(1) == contexts.ContextIds(b"\x02", b"\x03")
    assert len(contexts.ids_for(63).backend_id) == 1
    id_contexts = {contexts.id_context(i, g) for i in range(1, 50) for g in range(1, 50)}
    assert len(id_contexts) == 49 * 49
    assert len(contexts.id_context(1, 1)) == 3


def test_revoking_a_member_replaces_the_group_key(
    tmp_path: Path, domain: pki.Domain, device: pki.DeviceIdentity
) -> None:
    """A thing that enrolled holds the group key and keeps it when it leaves: its revocation
    replaces the key (new group id, secret and salt) in the same transaction; revoking a thing
    that never enrolled, or one already revoked, leaves the key alone."""
    registry = _open(tmp_path)
    assert registry.group_generation == 0
    assert registry.revoke("SN-2", "cessationOfOperation") is not None  # nothing to rotate yet
    assert registry.group_generation == 0
    registry.enroll("SN-1", _issuer(domain, device), address=None)
    first = registry.group_key()
    assert first.generation == registry.group_generation == 1
    registry.ensure_imported([("SN-3", "acme", "t-1000", b"SN-3")])
    registry.revoke("SN-3", "cessationOfOperation")  # imported only: never had the key
    assert registry.group_key() == first
    registry.revoke("SN-1", "cessationOfOperation")
    second = registry.group_key()
    assert second.generation == 2
    assert second.group_id != first.group_id
    assert second.master_secret != first.master_secret
    assert second.master_salt != first.master_salt
    registry.revoke("SN-1", "cessationOfOperation")  # again: no new member left
    assert registry.group_key() == second
    registry.close()
    assert Registry.open(tmp_path).group_key() == second  # committed with the revocation
