"""The server-side bootstrap tracker: attempts from message_1 to answer, retransmissions,
bounded memory."""

from __future__ import annotations

import aiocoap
from aiocoap import ACK, CON

from testbed.node.trust_center.bootstraps import Answer, BootstrapReport, BootstrapTracker

PEER = ("fd00::7", 40000)
ANSWER = Answer("/.well-known/est/sen", "success", None, "SN-1", b"\x01", "acme", "t-1000")


def _wire(
    code: aiocoap.numbers.Code, mtype: aiocoap.numbers.Type, mid: int, payload: bytes = b""
) -> aiocoap.Message:
    # Attributes set after construction: aiocoap deprecates them as constructor arguments.
    message = aiocoap.Message(code=code, payload=payload)
    message.mtype, message.mid, message.token = mtype, mid, b"\x01" if payload else b""
    return message


def _message_1(mid: int) -> bytes:
    message = _wire(aiocoap.POST, CON, mid, b"\xf5" + bytes(37))
    message.opt.uri_path = (".well-known", "edhoc")
    return bytes(message.encode())


def _response(mid: int) -> bytes:
    return bytes(_wire(aiocoap.CHANGED, ACK, mid, bytes(45)).encode())


def _empty_ack(mid: int) -> bytes:
    return bytes(_wire(aiocoap.EMPTY, ACK, mid).encode())


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_attempt_runs_from_message_1_to_the_answer_and_counts_copies() -> None:
    done: list[BootstrapReport] = []
    clock = Clock()
    tracker = BootstrapTracker(done.append, clock=clock, wall_clock=lambda: 1e9)
    tracker.record("received", PEER, _message_1(1))
    clock.now += 2.0
    tracker.record("received", PEER, _message_1(1))  # CoAP retransmission, same MID
    tracker.record("sent", PEER, _response(1))
    assert done == []  # not answered by an enrollment resource yet
    tracker.answered(PEER, ANSWER)
    tracker.record("sent", PEER, _empty_ack(9))
    assert done == []  # an empty ACK is not the answer
    clock.now += 0.5
    tracker.record("sent", PEER, _response(2))
    (report,) = done
    assert report.duration_s == 2.5 and report.edhoc and report.answer is ANSWER
    assert report.retransmissions == 1
    assert report.total("received") == (2 * len(_message_1(1)), 2)
    assert len(tracker) == 0


def test_answer_without_handshake_and_bounded_open_attempts() -> None:
    done: list[BootstrapReport] = []
    clock = Clock()
    tracker = BootstrapTracker(done.append, clock=clock, max_open=3, stale_after=10)
    tracker.answered(PEER, ANSWER, received_at=99.0)
    tracker.record("sent", PEER, _response(1))
    assert done[0].edhoc is False and done[0].duration_s == 1.0

    for port in range(10):  # a flood of message_1s that never enroll
        tracker.record("received", ("fd00::66", port), _message_1(port))
    assert len(tracker) == 3
    clock.now += 11
    tracker.record("received", ("fd00::67", 1), _message_1(1))
    assert len(tracker) == 1
