"""One responder, hundreds of initiators: aiocoap 0.4.17 alone answers the 49th with 5.00."""

from __future__ import annotations

import asyncio

import aiocoap
from aiocoap import credentials, resource
from aiocoap.edhoc import EdhocCredentials
from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

from testbed.node.coap.credentials import KCCS, EdhocIdentity, PeerTable
from testbed.node.coap.edhoc_client import EdhocOscoreClient
from testbed.node.coap.errors import HandshakeRefused
from testbed.node.coap.sessions import ONE_BYTE_IDS
from testbed.node.coap.transport import bound_port, create_context

from .harness import Echo, Harness, edhoc_server

SEQUENTIAL = 200
CONCURRENT = 50


async def _bootstrap(h: Harness, thing: EdhocIdentity) -> aiocoap.Message:
    client = await EdhocOscoreClient.connect(thing, h.identity.credential, h.uri)
    try:
        response: aiocoap.Message = await client.request(aiocoap.POST, "/echo", b"hello")
        return response
    finally:
        await client.close()


def test_one_server_bootstraps_200_sequential_and_50_concurrent_peers() -> None:
    things = [
        EdhocIdentity.generate(i.to_bytes(2, "big"), f"thing-{i}")
        for i in range(SEQUENTIAL + CONCURRENT)
    ]

    async def body() -> Harness:
        async with edhoc_server(PeerTable(t.credential for t in things)) as h:
            for thing in things[:SEQUENTIAL]:
                response = await _bootstrap(h, thing)
                assert response.code == aiocoap.CHANGED
                assert response.payload == b"kid=" + thing.credential.kid.hex().encode()
            responses = await asyncio.gather(
                *(_bootstrap(h, thing) for thing in things[SEQUENTIAL:])
            )
            assert all(r.code == aiocoap.CHANGED for r in responses)
            return h

    h = asyncio.run(body())
    # Every handler call knew its peer, and every peer came through exactly once.
    assert sorted(kid for kid, _ in h.echo.calls) == sorted(t.credential.kid for t in things)
    stats = h.server.sessions.stats
    assert stats.handshakes_completed == SEQUENTIAL + CONCURRENT
    assert stats.handshakes_failed == stats.evicted_established == 0
    assert len(h.server.sessions) == SEQUENTIAL + CONCURRENT
    assert h.received("edhoc_message_1") == SEQUENTIAL + CONCURRENT

    # The 48 one-byte C_R went first (message_2 45 B, as RFC 9529); later sessions got two-byte
    # C_R, sent as a CBOR byte string (0x42 + 2 B instead of 1 B): message_2 is 2 B longer.
    sizes = [r.message_bytes for r in h.wire.records if r.message == "edhoc_message_2"]
    assert sizes.count(45) == len(ONE_BYTE_IDS) == 48
    assert sizes.count(47) == SEQUENTIAL + CONCURRENT - 48


def test_stock_aiocoap_responder_still_fails_at_49_sessions() -> None:
    """Canary for the defect ``sessions`` works around: aiocoap's own responder (one peer
    credential, 49 handshakes in a row) answers the 49th (or 48th) message_1 with 5.00. When
    this test fails, aiocoap has fixed it and the replacement can be reconsidered."""
    server_id, thing = EdhocIdentity.generate(b"\x32"), EdhocIdentity.generate(b"\x2b")

    async def body() -> int:
        site = resource.Site()
        site.add_resource(["echo"], Echo())
        stock = credentials.CredentialsMap()
        context = await create_context(site=OscoreSiteWrapper(site, stock), bind=("::1", 0))
        uri = f"coap://[::1]:{bound_port(context)}"
        stock[uri + "/*"] = EdhocCredentials(
            suite=2,
            method=3,
            own_cred_style="by-key-id",
            own_cred={KCCS: server_id.credential.claims()},
            peer_cred={KCCS: thing.credential.claims()},
            private_key=server_id.cose_key(),
        )
        try:
            for attempt in range(1, 60):
                client = await EdhocOscoreClient.connect(thing, server_id.credential, uri)
                try:
                    await client.request(aiocoap.POST, "/echo")
                except HandshakeRefused as refused:
                    assert refused.code == "5.00"
                    return attempt
                finally:
                    await client.close()
            return 0
        finally:
            await context.shutdown()

    # 49 in most runs, 48 in one CI run: the responder's one-byte C_R values run out (48 of
    # them); one may still be held by a context that is being released. Either way the stock
    # responder cannot serve 49 peers, which is what `sessions` fixes.
    assert asyncio.run(body()) in (48, 49)
