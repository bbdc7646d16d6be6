"""Names DTLS 1.2 datagrams by handshake flight (RFC 6347 4.2.4) for the cost accounting.

Flights of a full handshake with cookie exchange::

    client                                   server
    1 dtls_client_hello          -->
                                 <--  2 dtls_hello_verify_request
    3 dtls_client_hello_cookie   -->
                                 <--  4 dtls_server_hello  (ServerHello, Certificate,
                                         ServerKeyExchange, CertificateRequest, ServerHelloDone)
    5 dtls_client_finished       -->     (Certificate, ClientKeyExchange, CertificateVerify,
                                          ChangeCipherSpec, Finished)
                                 <--  6 dtls_server_finished  (ChangeCipherSpec, Finished)

A flight split over several datagrams (small MTU) gives each datagram the flight's name. A
retransmitted flight repeats handshake message_seq and fragment_offset (record sequence
numbers change), which is the copy key; encrypted records show only epoch and length.
"""

from __future__ import annotations

from collections.abc import Hashable

from testbed.node.bootstrap.accounting import Classification, Direction, Peer
from testbed.node.dtls.records import ContentType, FramingError, HandshakeType, parse_datagram

_SERVER_FLIGHT_4 = {
    HandshakeType.SERVER_HELLO,
    HandshakeType.SERVER_KEY_EXCHANGE,
    HandshakeType.CERTIFICATE_REQUEST,
    HandshakeType.SERVER_HELLO_DONE,
}


class DtlsClassifier:
    def __init__(self, *, local_is_server: bool) -> None:
        self.local_is_server = local_is_server

    def classify(self, direction: Direction, peer: Peer, data: bytes) -> Classification:
        try:
            records = parse_datagram(data)
        except FramingError:
            return Classification("unparsable")
        from_server = (direction == "sent") == self.local_is_server
        first = records[0]
        if first.content_type == ContentType.APPLICATION_DATA:
            return Classification("dtls_application_data")
        if first.content_type == ContentType.ALERT:
            # An encrypted close_notify and a plaintext fatal alert look alike to us.
            return Classification("dtls_alert", None, ("alert", first.epoch, first.sequence))
        key: Hashable
        if first.content_type == ContentType.CHANGE_CIPHER_SPEC:
            name = "dtls_server_finished" if from_server else "dtls_client_finished"
            key = ("ccs", first.epoch, len(data))
        else:
            fragment = first.handshake()
            if fragment is None:  # encrypted handshake: Finished
                name = "dtls_server_finished" if from_server else "dtls_client_finished"
                key = ("encrypted", first.epoch, len(data))
            else:
                name = _flight(fragment.msg_type, fragment.message_seq, from_server)
                key = (fragment.msg_type, fragment.message_seq, fragment.fragment_offset)
        return Classification(name, None, key)


def _flight(msg_type: int, message_seq: int, from_server: bool) -> str:
    if msg_type == HandshakeType.CLIENT_HELLO:
        return "dtls_client_hello" if message_seq == 0 else "dtls_client_hello_cookie"
    if msg_type == HandshakeType.HELLO_VERIFY_REQUEST:
        return "dtls_hello_verify_request"
    if from_server:
        return (
            "dtls_server_hello"
            if msg_type in _SERVER_FLIGHT_4 or msg_type == 11
            else ("dtls_server_handshake")
        )
    return "dtls_client_finished"
