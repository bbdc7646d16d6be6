"""The backend's OSCORE contexts per (domain, serial, generation): two trust centers that list
one serial never make it start a used key again at sequence number 0 (AES-CCM nonce reuse), and
the peers and the listing are keyed by domain and serial, not by the name a thing reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testbed.node.backend.directory import ThingEntry
from testbed.node.backend.peers import PeerContexts, ThingPeer, find_peers, labelled
from testbed.node.enrollment_api import PURPOSE_BACKEND, OscoreContextGrant
from testbed.node.errors import StateError


def grant(generation: int, secret: bytes) -> OscoreContextGrant:
    return OscoreContextGrant(PURPOSE_BACKEND, b"\x01", b"\x02", secret, b"salt", None, generation)


def entry(domain: str, serial: str, g: OscoreContextGrant, name: str = "lamp-01") -> ThingEntry:
    return ThingEntry(domain, name, serial, "fd00::1", 5683, "acme", "l-1", "lamp", g)


def send(contexts: PeerContexts, e: ThingEntry, n: int) -> int:
    """Take ``n`` sequence numbers as sending requests does; the next one after closing."""
    ctx = contexts.open(e)
    try:
        for _ in range(n):
            ctx.new_sequence_number()
        return int(ctx.sender_sequence_number)
    finally:
        ctx.close()


def test_two_trust_centers_listing_one_serial_do_not_reset_each_others_sequence(
    tmp_path: Path,
) -> None:
    contexts = PeerContexts(tmp_path)
    hvac = entry("hvac", "SN-1", grant(1, os.urandom(16)))
    rogue = entry("lighting", "SN-1", grant(1, os.urandom(16)))
    reached = send(contexts, hvac, 5)
    send(contexts, rogue, 3)  # the other trust center's poll
    ctx = contexts.open(hvac)  # hvac's next poll: the same key, so the same sequence state
    try:
        assert ctx.sender_sequence_number >= reached > 0
    finally:
        ctx.close()


def test_a_used_key_whose_state_is_gone_is_refused_not_restarted(tmp_path: Path) -> None:
    contexts = PeerContexts(tmp_path)
    first = entry("hvac", "SN-2", grant(1, os.urandom(16)))
    send(contexts, first, 4)
    send(contexts, entry("hvac", "SN-2", grant(2, os.urandom(16))), 1)  # re-keyed: g1 deleted
    # A stale or lying listing hands out generation 1 again: its sequence state is gone.
    with pytest.raises(StateError, match="reuse nonces"):
        contexts.open(first)


def test_peers_are_found_by_serial_or_name_and_same_names_stay_apart(tmp_path: Path) -> None:
    contexts = PeerContexts(tmp_path)
    peers = {}
    for domain, serial in (("lighting", "SN-L"), ("hvac", "SN-H")):
        e = entry(domain, serial, grant(1, os.urandom(16)))  # both call themselves lamp-01
        peers[(domain, serial)] = ThingPeer(e, contexts.open(e))
    try:
        assert len(find_peers(peers, "lamp-01")) == 2
        (only,) = find_peers(peers, "lamp-01", "lighting")
        assert only.entry.serial == "SN-L"
        assert [p.entry.domain for p in find_peers(peers, "SN-H")] == ["hvac"]
        assert [label for label, _ in labelled(peers)] == ["hvac/lamp-01", "lighting/lamp-01"]
    finally:
        for peer in peers.values():
            peer.context.close()
