"""Defences of the EDHOC responder before it keeps state: return routability with the CoAP
Echo option (RFC 9175), per-source rate limits, and per-source fairness of half-done
handshakes (a message_1 flood from one address evicts only its own)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiocoap
import cbor2
import lakers
import pytest

from testbed.node.coap.credentials import EdhocIdentity, PeerTable
from testbed.node.coap.edhoc_client import EdhocOscoreClient
from testbed.node.coap.handshake_gate import GateConfig, HandshakeGate
from testbed.node.coap.sessions import SessionTable
from testbed.node.coap.transport import create_context

from .harness import Harness, edhoc_server

log = logging.getLogger("test.gate")


def _message_1() -> bytes:
    initiator = lakers.EdhocInitiator()
    return bytes(cbor2.dumps(True) + initiator.prepare_message_1(b"\x05", []))


async def _raw_message_1(h: Harness, echo: bytes | None = None) -> aiocoap.Message:
    """A message_1 from a bare CoAP client (no Echo handling): what a flooder sends."""
    ctx = await create_context(loggername="flooder")
    try:
        msg = aiocoap.Message(
            code=aiocoap.POST, uri=f"{h.uri}/.well-known/edhoc", payload=_message_1()
        )
        if echo is not None:
            msg.opt.echo = echo
        response: aiocoap.Message = await ctx.request(msg).response
        return response
    finally:
        await ctx.shutdown()


async def _bootstrap(h: Harness, thing: EdhocIdentity) -> aiocoap.Message:
    client = await EdhocOscoreClient.connect(thing, h.identity.credential, h.uri)
    try:
        response: aiocoap.Message = await client.request(aiocoap.POST, "/echo", b"hi")
        return response
    finally:
        await client.close()


def test_return_routability_challenges_then_admits_our_client() -> None:
    thing = EdhocIdentity.generate(b"\x21", "thing")
    gate = HandshakeGate(GateConfig(return_routability=True))

    async def body() -> dict[str, Any]:
        async with edhoc_server(PeerTable([thing.credential]), gate=gate) as h:
            out: dict[str, Any] = {"raw": await _raw_message_1(h)}
            out["sessions_after_raw"] = len(h.server.sessions)
            # A forged Echo (right length, wrong MAC) is challenged again, no state either.
            out["forged"] = await _raw_message_1(h, echo=b"\x00" * 12)
            out["sessions_after_forged"] = len(h.server.sessions)
            out["bootstrap"] = await _bootstrap(h, thing)
            return out

    out = asyncio.run(body())
    raw = out["raw"]
    assert raw.code == aiocoap.UNAUTHORIZED and raw.opt.echo is not None
    assert len(raw.opt.echo) == 12 and out["sessions_after_raw"] == 0
    assert out["forged"].code == aiocoap.UNAUTHORIZED and out["sessions_after_forged"] == 0
    assert out["bootstrap"].code == aiocoap.CHANGED  # the client answered the challenge
    assert gate.stats.echo_challenges == 3 and gate.stats.echo_verified == 1
    assert gate.stats.echo_invalid == 1


def test_echo_values_are_bound_to_the_address_and_expire() -> None:
    now = [1000.0]
    gate = HandshakeGate(GateConfig(return_routability=True), wallclock=lambda: now[0])
    echo = gate.echo_for("fd00::1")
    assert gate.valid(echo, "fd00::1")
    assert not gate.valid(echo, "fd00::2")  # a spoofer never sees the value for its victim
    now[0] += 31
    assert not gate.valid(echo, "fd00::1")


def test_rate_limit_per_source_answers_4_29_before_any_state() -> None:
    now = [0.0]
    gate = HandshakeGate(GateConfig(rate_per_source=1.0, burst=2), clock=lambda: now[0])

    async def body() -> list[aiocoap.Message]:
        async with edhoc_server(PeerTable([]), gate=gate) as h:
            answers = [await _raw_message_1(h) for _ in range(4)]
            assert len(h.server.sessions) == 2  # the two within the burst
            return answers

    answers = asyncio.run(body())
    assert [a.code.dotted for a in answers] == ["2.04", "2.04", "4.29", "4.29"]
    assert answers[2].opt.max_age == 1 and gate.stats.rate_limited == 2
    now[0] += 1.0  # one token back per second
    assert gate._take("::1", 1.0) is None


def test_the_rate_limit_table_is_bounded() -> None:
    gate = HandshakeGate(GateConfig(rate_per_source=1.0, max_sources=100))
    for i in range(10_000):
        gate._take(f"fd00::{i:x}", 1.0)
    assert gate.tracked_sources == 100


def _open(table: SessionTable, source: str) -> Any:
    responder = lakers.EdhocResponder(
        r=EdhocIdentity.generate(b"\x01", "r").d,
        cred_r=EdhocIdentity.generate(b"\x01", "r").credential.encoded,
    )
    return table.open(responder, b"\x05", source)


@pytest.mark.parametrize("flood", [10, 1000])
def test_a_flood_from_one_address_evicts_only_its_own_handshakes(flood: int) -> None:
    table = SessionTable(PeerTable([]), log, max_pending=16, max_pending_per_source=4)
    victims = [_open(table, f"fd00::{i}") for i in range(3)]
    for _ in range(flood):
        _open(table, "fd66::bad")
    for victim in victims:
        assert table.session(victim.recipient_id) is victim
    assert table.pending_by_source["fd66::bad"] == 4
    # More sources fill the table: the source holding the most loses first, so a victim with
    # one handshake goes only when every source is down to one.
    for i in range(6):
        _open(table, f"fd77::{i}")
        _open(table, f"fd77::{i}")
    assert table.pending == 16
    assert all(table.session(v.recipient_id) is v for v in victims)
    assert table.pending_by_source["fd66::bad"] == 1
