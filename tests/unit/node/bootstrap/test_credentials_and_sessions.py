"""Key and CCS loading, the peer table, and the responder's connection identifier allocation."""

from __future__ import annotations

import logging
from pathlib import Path

import cbor2
import lakers
import pytest
from aiocoap import error
from cryptography.hazmat.primitives import serialization

from testbed.node.coap.credentials import (
    KCCS,
    Credential,
    EdhocIdentity,
    PeerTable,
    load_private_key,
)
from testbed.node.coap.errors import CredentialError
from testbed.node.coap.sessions import ONE_BYTE_IDS, SessionTable

log = logging.getLogger("test")


def test_pem_and_cose_key_files_load_the_same_key(tmp_path: Path) -> None:
    identity = EdhocIdentity.generate(b"\x01")
    pem, cose = tmp_path / "k.pem", tmp_path / "k.cose"
    pem.write_bytes(
        identity.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cose.write_bytes(cbor2.dumps(identity.cose_key()))
    for path in (pem, cose):
        path.chmod(0o600)
        assert EdhocIdentity(load_private_key(path), identity.credential).d == identity.d


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.cose"
    path.write_bytes(cbor2.dumps(EdhocIdentity.generate(b"\x01").cose_key()))
    path.chmod(0o644)
    with pytest.raises(CredentialError, match="accessible to group or others") as refused:
        load_private_key(path)
    assert "chmod 600" in refused.value.hint


def test_key_that_does_not_match_its_ccs_is_refused() -> None:
    one, other = EdhocIdentity.generate(b"\x01"), EdhocIdentity.generate(b"\x01")
    with pytest.raises(CredentialError, match="does not match"):
        EdhocIdentity(one.private_key, other.credential)


def test_ccs_must_be_deterministic_cbor_with_a_kid() -> None:
    credential = EdhocIdentity.generate(b"\x01", "thing").credential
    claims = credential.claims()
    # Same claims, subject after cnf: valid CBOR, but not the bytes EDHOC would hash.
    reordered = b"\xa2" + cbor2.dumps(8) + cbor2.dumps(claims[8]) + cbor2.dumps(2)
    reordered += cbor2.dumps(claims[2])
    assert cbor2.loads(reordered) == claims
    with pytest.raises(CredentialError, match="deterministic"):
        Credential.from_cbor(reordered)
    del claims[8][1][2]
    with pytest.raises(CredentialError, match="kid"):
        Credential.from_cbor(cbor2.dumps(claims, canonical=True))


def test_peer_table_refuses_a_second_credential_under_one_kid() -> None:
    table = PeerTable([EdhocIdentity.generate(b"\x01").credential])
    with pytest.raises(CredentialError, match="already taken"):
        table.add(EdhocIdentity.generate(b"\x01").credential)


def _table(**limits: float) -> tuple[SessionTable, list[float]]:
    now = [0.0]
    table = SessionTable(PeerTable(), log, clock=lambda: now[0], **limits)  # type: ignore[arg-type]
    return table, now


def _responder() -> lakers.EdhocResponder:
    server = EdhocIdentity.generate(b"\x32")
    return lakers.EdhocResponder(r=server.d, cred_r=server.credential.encoded)


def test_connection_identifiers_are_short_first_unique_and_never_c_i() -> None:
    table, _ = _table(max_pending=300)
    c_i = ONE_BYTE_IDS[0]
    ids = [table.open(_responder(), c_i).recipient_id for _ in range(100)]
    assert c_i not in ids and len(set(ids)) == 100
    assert [len(i) for i in ids] == [1] * 47 + [2] * 53


def test_half_done_handshakes_expire_and_are_bounded() -> None:
    table, now = _table(max_pending=3, pending_timeout=10)
    first = table.open(_responder(), b"\x00")
    for _ in range(3):
        table.open(_responder(), b"\x00")
    # The oldest went (its C_R, freed, is the shortest free one and was handed out again).
    assert table.session(first.recipient_id) is not first
    assert len(table) == 3 and table.stats.evicted_pending == 1
    now[0] = 11.0
    table.open(_responder(), b"\x00")
    assert len(table) == 1 and table.stats.evicted_pending == 4  # timeout


def test_unknown_initiator_gets_401_and_by_value_must_match_the_table() -> None:
    known = EdhocIdentity.generate(b"\x2b").credential
    table = SessionTable(PeerTable([known]), log)
    by_kid = cbor2.dumps({4: b"\x2b"})
    assert table.find_edhoc_by_id_cred_peer(by_kid) == (known.encoded, [known])
    by_value = cbor2.dumps({KCCS: known.claims()})
    assert table.find_edhoc_by_id_cred_peer(by_value)[0] == known.encoded
    forged = cbor2.dumps({KCCS: EdhocIdentity.generate(b"\x2b").credential.claims()})
    for id_cred in (cbor2.dumps({4: b"\x2c"}), forged):
        with pytest.raises(error.Unauthorized):
            table.find_edhoc_by_id_cred_peer(id_cred)
