"""DTLS record framing against the record layout of RFC 6347 4.1 and 4.2.2, on handshakes
Mbed TLS really makes (in memory, no network)."""

from __future__ import annotations

import itertools

import pytest
from mbedtls import tls

from testbed.node.dtls import records as R
from testbed.node.dtls.classify import DtlsClassifier

PSK = ("0a0b", b"k" * 16)


def _configs() -> tuple[tls.DTLSConfiguration, tls.DTLSConfiguration]:
    common = {
        "ciphers": ("TLS-PSK-WITH-AES-128-CCM-8",),
        "lowest_supported_version": tls.DTLSVersion.DTLSv1_2,
        "validate_certificates": False,
    }
    server = tls.DTLSConfiguration(pre_shared_key_store={PSK[0]: PSK[1]}, **common)
    client = tls.DTLSConfiguration(pre_shared_key=PSK, **common)
    return server, client


def _step(buffer: tls.TLSWrappedBuffer) -> None:
    for _ in range(64):
        if buffer._handshake_state is tls.HandshakeStep.HANDSHAKE_OVER:
            return
        try:
            buffer.do_handshake()
        except tls.WantWriteError:
            pass
        except tls.WantReadError:
            return


def _out(buffer: tls.TLSWrappedBuffer) -> bytes:
    data = bytes(buffer.peek_outgoing(1 << 16))
    buffer.consume_outgoing(len(data))
    return data


def handshake(mtu: int | None = None) -> list[tuple[str, bytes]]:
    """The byte streams of a PSK handshake with cookie exchange, in order, by sender."""
    server_conf, client_conf = _configs()
    server = tls.ServerContext(server_conf).wrap_buffers()
    client = tls.ClientContext(client_conf).wrap_buffers(None)
    if mtu is not None:
        server.setmtu(mtu)
        client.setmtu(mtu)
    server.setcookieparam(b"client")
    streams: list[tuple[str, bytes]] = []
    for _ in range(8):
        _step(client)
        out = _out(client)
        if out:
            streams.append(("client", out))
            server.receive_from_network(out)
        try:
            _step(server)
        except tls.HelloVerifyRequest:
            server.setcookieparam(b"client")
        out = _out(server)
        if out:
            streams.append(("server", out))
            client.receive_from_network(out)
        done = tls.HandshakeStep.HANDSHAKE_OVER
        if client._handshake_state is done and server._handshake_state is done:
            return streams
    raise AssertionError("handshake did not finish")


def test_records_of_a_real_handshake_follow_rfc_6347() -> None:
    streams = handshake()
    labels = []
    for sender, stream in streams:
        records, rest = R.split(stream)
        assert rest == b"" and b"".join(r.encode() for r in records) == stream
        for record in records:
            # 13-byte header: type, version, epoch, 48-bit sequence, length of the fragment
            assert stream.find(record.encode()) >= 0
            assert record.version in (R.DTLS_1_0, R.DTLS_1_2)
            assert record.size == R.RECORD_HEADER_BYTES + record.length
            labels.append((sender, record.label(), record.epoch))
    assert labels == [
        ("client", "client_hello", 0),
        ("server", "hello_verify_request", 0),
        ("client", "client_hello", 0),
        ("server", "server_hello", 0),
        ("server", "server_hello_done", 0),
        ("client", "client_key_exchange", 0),
        ("client", "change_cipher_spec", 0),
        ("client", "finished", 1),  # encrypted under the new epoch
        ("server", "change_cipher_spec", 0),
        ("server", "finished", 1),
    ]


def test_sequence_numbers_increase_within_an_epoch_and_restart_with_the_next() -> None:
    for sender in ("client", "server"):
        records = [r for s, stream in handshake() if s == sender for r in R.split(stream)[0]]
        by_epoch: dict[int, list[int]] = {}
        for record in records:
            by_epoch.setdefault(record.epoch, []).append(record.sequence)
        assert by_epoch[1][0] == 0  # RFC 6347 4.1: reset to zero after each epoch change
        for sequence in by_epoch.values():
            assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)


def test_handshake_header_of_the_client_hello() -> None:
    (record,), _ = R.split(handshake()[0][1])
    fragment = record.handshake()
    assert fragment is not None
    assert fragment.msg_type == R.HandshakeType.CLIENT_HELLO and fragment.message_seq == 0
    # unfragmented: offset 0, fragment length = message length = record length - 12
    assert (fragment.fragment_offset, fragment.fragment_length) == (0, fragment.length)
    assert fragment.length == record.length - R.HANDSHAKE_HEADER_BYTES


@pytest.mark.parametrize("mtu", [60, 100, 1232])
def test_packing_keeps_every_datagram_within_the_mtu(mtu: int) -> None:
    for _sender, stream in handshake(mtu=mtu):
        packer = R.Packer(mtu)
        datagrams = packer.feed(stream[:7]) + packer.feed(stream[7:])  # split mid-header
        assert packer.pending == 0
        assert b"".join(datagrams) == stream
        for datagram in datagrams:
            records = R.parse_datagram(datagram)  # whole records only (RFC 6347 4.1.1)
            # Mbed TLS does not fragment a ClientHello: a record over the MTU travels alone.
            assert len(datagram) <= mtu or len(records) == 1


def test_fragments_of_a_small_mtu_reassemble_to_the_whole_message() -> None:
    fragments = [
        f
        for _, stream in handshake(mtu=60)
        for r in R.split(stream)[0]
        if (f := r.handshake()) is not None
    ]
    by_message: dict[tuple[int, int], list[R.HandshakeFragment]] = {}
    for f in fragments:
        by_message.setdefault((f.msg_type, f.message_seq), []).append(f)
    assert any(len(parts) > 1 for parts in by_message.values())
    for parts in by_message.values():
        covered = sorted((p.fragment_offset, p.fragment_offset + p.fragment_length) for p in parts)
        assert covered[0][0] == 0 and covered[-1][1] == parts[0].length
        assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))


def test_bad_input_is_a_framing_error() -> None:
    with pytest.raises(R.FramingError):
        R.parse_datagram(b"\x17\xfe\xfd" + b"\x00" * 8 + b"\x00\x05abc")  # truncated
    with pytest.raises(R.FramingError):
        R.parse_datagram(b"\x99" + b"\x00" * 12)  # no content type 0x99
    with pytest.raises(ValueError):
        R.pack([], 10)


def test_classifier_names_flights_and_spots_a_retransmitted_flight() -> None:
    streams = handshake()
    client, server = DtlsClassifier(local_is_server=False), DtlsClassifier(local_is_server=True)
    names = [
        (client if s == "client" else server).classify("sent", ("::1", 1), d).message
        for s, stream in streams
        for d in R.pack(R.split(stream)[0], 1232)
    ]
    assert names == [
        "dtls_client_hello",
        "dtls_hello_verify_request",
        "dtls_client_hello_cookie",
        "dtls_server_hello",
        "dtls_client_finished",
        "dtls_server_finished",
    ]
    first = client.classify("sent", ("::1", 1), streams[0][1])
    assert first.copy_key == client.classify("sent", ("::1", 1), streams[0][1]).copy_key
