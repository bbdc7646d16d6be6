"""EDHOC message sizes as measured on the wire, against RFC 9529's method 3 trace.

RFC 9529 Section 3 (static DH both sides, suite 2, credentials by kid, one-byte C_I, C_R and
kids): message_1 37 B, message_2 45 B, message_3 19 B. We measure the EDHOC messages inside
the CoAP datagrams the client's socket sent and received, with the RFC's kids (0x2b, 0x32):

- message_2 and message_3 are exactly 45 and 19 bytes.
- message_1 is 38 bytes: aiocoap's initiator always appends one EAD_1 item, label 15
  (CRED_BY_VALUE, non-critical, no value: one byte), offering to take the responder's
  credential by value. The test parses message_1 and checks that this item is the whole
  difference.

Around them, CoAP over UDP adds per datagram: 4 B header, the token (aiocoap: 1-8 B), the
options, 1 B payload marker; message_1 also carries CBOR true (0xf5) in front of it (RFC 9528
Appendix A.2), and message_3 travels inside the first OSCORE request (RFC 9668). The test
asserts each of these parts, byte for byte, and prints the resulting table.
"""

from __future__ import annotations

import asyncio
import io

import aiocoap
import cbor2
from aiocoap.numbers.eaditem import EADLabel

from testbed.node.bootstrap.accounting import IPV6_UDP_HEADER_BYTES, WireLog
from testbed.node.coap.classify import CoapClassifier
from testbed.node.coap.credentials import EdhocIdentity, PeerTable
from testbed.node.coap.edhoc_client import EdhocOscoreClient

from .harness import RFC9529_KID_I, Capture, Tee, edhoc_server

RFC9529_METHOD3 = {"message_1": 37, "message_2": 45, "message_3": 19}

COAP_HEADER = 4
PAYLOAD_MARKER = 1
CBOR_TRUE_PREFIX = 1
# Uri-Path ".well-known" (1 B option header + 11) and "edhoc" (1 + 5)
URI_PATH_EDHOC = (1 + 11) + (1 + 5)
# OSCORE option: 1 B header, then flags, 1 B partial IV, kid = C_R (1 B); EDHOC option: 1 B
OSCORE_OPTION_ONE_BYTE_KID = 1 + 1 + 1 + 1
EDHOC_OPTION = 1
AEAD_TAG = 8  # AES-CCM-16-64-128


def _cbor_sequence(data: bytes) -> list[object]:
    stream, items = io.BytesIO(data), []
    while stream.tell() < len(data):
        items.append(cbor2.load(stream))
    return items


def test_edhoc_message_sizes_agree_with_rfc9529_method_3() -> None:
    async def body() -> tuple[Capture, WireLog]:
        thing = EdhocIdentity.generate(RFC9529_KID_I, "42-50-31-FF-EF-37-32-39")
        async with edhoc_server(PeerTable([thing.credential])) as h:
            capture = Capture()
            log = WireLog(CoapClassifier())
            client = await EdhocOscoreClient.connect(
                thing, h.identity.credential, h.uri, sink=Tee(capture, log)
            )
            try:
                await client.request(aiocoap.POST, "/echo")
            finally:
                await client.close()
        return capture, log

    capture, log = asyncio.run(body())
    datagrams = [(d, data) for d, _, data in capture.datagrams]
    assert [d for d, _ in datagrams] == ["sent", "received", "sent", "received"]
    m1_dgram, m2_dgram, m3_dgram, resp_dgram = (data for _, data in datagrams)
    req1, resp2 = aiocoap.Message.decode(m1_dgram), aiocoap.Message.decode(m2_dgram)
    req3 = aiocoap.Message.decode(m3_dgram)

    # -- The EDHOC messages themselves
    assert req1.payload[:1] == b"\xf5"
    message_1 = req1.payload[1:]
    method, suites, g_x, c_i, *ead_1 = _cbor_sequence(message_1)
    assert (method, suites) == (3, 2) and isinstance(g_x, bytes) and len(g_x) == 32
    assert isinstance(c_i, int) and len(cbor2.dumps(c_i)) == 1  # one-byte C_I as in the RFC
    assert ead_1 == [EADLabel.CRED_BY_VALUE]  # aiocoap's EAD_1 item ...
    assert len(message_1) - len(cbor2.dumps(ead_1[0])) == RFC9529_METHOD3["message_1"]  # ... +1
    assert len(message_1) == 38

    message_2 = resp2.payload
    assert len(message_2) == RFC9529_METHOD3["message_2"]

    assert req3.opt.edhoc and req3.opt.oscore is not None
    stream = io.BytesIO(req3.payload)
    cbor2.load(stream)
    message_3 = req3.payload[: stream.tell()]
    assert len(message_3) == RFC9529_METHOD3["message_3"]

    # The classifier on the client's socket measured the same three numbers.
    measured = {c.message: c.message_bytes for c in log.costs()}
    assert measured["edhoc_message_1"] == 38
    assert measured["edhoc_message_2"] == 45
    assert measured["edhoc_message_3+oscore_request"] == 19

    # -- CoAP and UDP around them, part by part
    token = len(req1.token)
    assert len(m1_dgram) == (
        COAP_HEADER + token + URI_PATH_EDHOC + PAYLOAD_MARKER + CBOR_TRUE_PREFIX + len(message_1)
    )
    assert len(m2_dgram) == COAP_HEADER + len(resp2.token) + PAYLOAD_MARKER + len(message_2)
    # Inner (encrypted) request: code, Uri-Path "echo" (1 + 4), no payload, then the tag.
    ciphertext = 1 + (1 + 4) + AEAD_TAG
    assert len(req3.opt.oscore) + 1 == OSCORE_OPTION_ONE_BYTE_KID
    assert len(m3_dgram) == (
        COAP_HEADER
        + len(req3.token)
        + OSCORE_OPTION_ONE_BYTE_KID
        + EDHOC_OPTION
        + PAYLOAD_MARKER
        + len(message_3)
        + ciphertext
    )

    rows = [
        ("message_1", len(message_1), len(m1_dgram)),
        ("message_2", len(message_2), len(m2_dgram)),
        ("message_3 (+ OSCORE request)", len(message_3), len(m3_dgram)),
    ]
    print("\nEDHOC method 3, suite 2, by kid      EDHOC B   UDP payload B   IPv6 packet B")
    for name, edhoc_bytes, udp_bytes in rows:
        ip = udp_bytes + IPV6_UDP_HEADER_BYTES
        print(f"{name:<36}{edhoc_bytes:>8}{udp_bytes:>16}{ip:>16}")
    print(f"{'OSCORE response':<36}{'':>8}{len(resp_dgram):>16}")
