"""Wire accounting: every datagram on the socket, named, with retransmissions counted."""

from __future__ import annotations

import asyncio

import aiocoap

from testbed.node.bootstrap.accounting import (
    Classification,
    DatagramRecord,
    WireLog,
    summarize,
)
from testbed.node.coap.classify import CoapClassifier
from testbed.node.coap.credentials import EdhocIdentity, PeerTable
from testbed.node.coap.edhoc_client import EdhocOscoreClient

from .harness import LossyRelay, edhoc_server


def test_lost_message_1_is_retransmitted_and_counted() -> None:
    async def body() -> tuple[WireLog, int]:
        thing = EdhocIdentity.generate(b"\x2b")
        async with edhoc_server(PeerTable([thing.credential])) as h:
            relay = LossyRelay(h.server.port, drop_first=1)
            port = await relay.start()
            log = WireLog(CoapClassifier())
            client = await EdhocOscoreClient.connect(
                thing, h.identity.credential, f"coap://[::1]:{port}", sink=log
            )
            try:
                response = await client.request(aiocoap.POST, "/echo", b"x")
            finally:
                await client.close()
                relay.close()
            assert response.code == aiocoap.CHANGED
            return log, h.received("edhoc_message_1")

    log, server_saw = asyncio.run(body())
    costs = {(c.message, c.direction): c for c in log.costs()}
    m1 = costs["edhoc_message_1", "sent"]
    # Sent twice (the first copy was dropped on the way), identical bytes, counted once as
    # the message and once as a retransmission; the server saw only the copy that arrived.
    assert (m1.datagrams, m1.retransmissions, m1.message_bytes) == (2, 1, 38)
    assert m1.bytes == 2 * log.records[0].size
    assert server_saw == 1
    assert costs["edhoc_message_2", "received"].retransmissions == 0
    assert sum(c.retransmissions for c in log.costs()) == 1


def test_summary_keeps_order_of_first_appearance_and_sums_per_direction() -> None:
    peer = ("::1", 5683)

    def rec(direction: str, message: str, size: int, again: bool = False) -> DatagramRecord:
        return DatagramRecord(0.0, direction, peer, size, message, None, again)  # type: ignore[arg-type]

    costs = summarize(
        [
            rec("sent", "a", 10),
            rec("received", "b", 20),
            rec("sent", "a", 10, again=True),
            rec("sent", "c", 5),
        ]
    )
    assert [(c.message, c.direction, c.bytes, c.datagrams, c.retransmissions) for c in costs] == [
        ("a", "sent", 20, 2, 1),
        ("b", "received", 20, 1, 0),
        ("c", "sent", 5, 1, 0),
    ]


def test_copy_memory_is_bounded() -> None:
    class Same:
        def classify(self, direction: str, peer: object, data: bytes) -> Classification:
            return Classification("x", None, data)

    log = WireLog(Same(), remembered_copies=2)
    peer = ("::1", 1)
    for data in (b"1", b"2", b"3", b"1"):  # b"1" was forgotten by the time it recurs
        log.record("sent", peer, data)
    assert [r.retransmission for r in log.records] == [False, False, False, False]
    log.record("sent", peer, b"3")
    assert log.records[-1].retransmission


def test_classifier_names_unparsable_and_plain_coap() -> None:
    classifier = CoapClassifier()
    peer = ("::1", 5683)
    assert classifier.classify("received", peer, b"\x00").message == "unparsable"
    # Hand-made datagrams (RFC 7252 Section 3): CON GET /x, its piggybacked 2.05, an empty ACK.
    get = bytes([0x41, 0x01, 0x00, 0x07, 0x01, 0xB1]) + b"x"
    assert classifier.classify("sent", peer, get).message == "coap_request"
    answer = bytes([0x61, 0x45, 0x00, 0x07, 0x01])
    assert classifier.classify("received", peer, answer).message == "coap_response"
    empty = bytes([0x60, 0x00, 0x00, 0x08])
    assert classifier.classify("received", peer, empty).message == "coap_ack"
