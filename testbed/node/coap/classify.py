"""Names the CoAP, EDHOC and OSCORE message in a UDP datagram, for ``bootstrap.accounting``.

By content, as a capture tool would see it:

- POST /.well-known/edhoc whose payload starts with CBOR true (0xf5): ``edhoc_message_1``
  (RFC 9528 Appendix A.2); its success response: ``edhoc_message_2``.
- POST /.well-known/edhoc otherwise: ``edhoc_message_3`` (payload C_R || message_3); its
  success response: ``edhoc_message_4``. Error responses to either: ``edhoc_error``.
- A request with the OSCORE and the EDHOC option: ``edhoc_message_3+oscore_request``, message_3
  combined with the first OSCORE request (RFC 9668), aiocoap's default.
- Requests and responses with the OSCORE option: ``oscore_request`` / ``oscore_response``; an
  unprotected error answering an OSCORE request: ``oscore_error``.
- Empty messages: ``coap_ack``, ``coap_reset``, ``coap_ping``; anything else ``coap_request`` /
  ``coap_response``.

Responses are named after their request, found by (peer, token). CoAP retransmits a
confirmable message, and answers a duplicate with its cached response, under the same
message ID: (type, message ID) is the copy key.
"""

from __future__ import annotations

import io
from collections import OrderedDict

import cbor2
from aiocoap import ACK, CON, EMPTY, RST, Message, error

from testbed.node.bootstrap.accounting import Classification, Direction, Peer

EDHOC_PATH = (".well-known", "edhoc")
_CBOR_TRUE = b"\xf5"
_EDHOC_REQUESTS = {"edhoc_message_1": "edhoc_message_2", "edhoc_message_3": "edhoc_message_4"}
_OSCORE_REQUESTS = ("oscore_request", "edhoc_message_3+oscore_request")


def _first_cbor_item_length(data: bytes) -> int:
    stream = io.BytesIO(data)
    cbor2.load(stream)
    return stream.tell()


class CoapClassifier:
    def __init__(self, remembered_requests: int = 4096) -> None:
        self._requests: OrderedDict[tuple[Peer, bytes], str] = OrderedDict()
        self._remembered = remembered_requests

    def classify(self, direction: Direction, peer: Peer, data: bytes) -> Classification:
        try:
            message = Message.decode(data)
        except error.UnparsableMessage:
            return Classification("unparsable")
        copy_key = (message.mtype, message.mid)
        if message.code == EMPTY:
            name = {ACK: "coap_ack", RST: "coap_reset", CON: "coap_ping"}.get(message.mtype, "coap")
            return Classification(name, None, copy_key)
        if message.code.is_request():
            name, size = self._request(message)
            self._requests[(peer, message.token)] = name
            if len(self._requests) > self._remembered:
                self._requests.popitem(last=False)
        else:
            name, size = self._response(message, self._requests.get((peer, message.token)))
        return Classification(name, size, copy_key)

    @staticmethod
    def _request(message: Message) -> tuple[str, int | None]:
        payload = message.payload
        try:
            if message.opt.uri_path == EDHOC_PATH:
                if payload.startswith(_CBOR_TRUE):
                    return "edhoc_message_1", len(payload) - 1
                return "edhoc_message_3", len(payload) - _first_cbor_item_length(payload)
            if message.opt.oscore is not None:
                if message.opt.edhoc:
                    return "edhoc_message_3+oscore_request", _first_cbor_item_length(payload)
                return "oscore_request", None
        except (cbor2.CBORDecodeError, ValueError):
            return "malformed_request", None
        return "coap_request", None

    @staticmethod
    def _response(message: Message, request: str | None) -> tuple[str, int | None]:
        if message.opt.oscore is not None:
            return "oscore_response", None
        if request in _EDHOC_REQUESTS:
            if message.code.is_successful():
                return _EDHOC_REQUESTS[request], len(message.payload)
            return "edhoc_error", None
        if request in _OSCORE_REQUESTS:
            return "oscore_error", None
        return "coap_response", None
