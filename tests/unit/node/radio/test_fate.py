"""Fragmented datagrams' fates on the medium (testbed.node.radio.fate): the counting, checked by
hand and against what the receiving node really got, and the loss model against the counts."""

from __future__ import annotations

import random

import pytest

from testbed.node.radio import mac
from testbed.node.radio.fate import (
    DELIVERED,
    LOST_ONE,
    LOST_SEVERAL,
    DatagramFates,
    datagram_loss,
    frame_loss,
    parse_fragment,
)
from testbed.node.radio.frag import fragment
from testbed.node.radio.links import LinkConfig
from testbed.node.radio.medium import Medium
from testbed.node.radio.medium_types import Delivery, MediumConfig
from testbed.scenario.fragfate import chernoff_interval
from tests.unit.node.radio.packets import A_SHORT, B_SHORT, ULA, filler, udp6
from tests.unit.node.radio.pan import ext_of, short_of

MAX_PAYLOAD = 127 - 9 - 2  # short addresses, PAN ID compressed


def payloads(size: int, tag: int) -> list[bytes]:
    packet = udp6(ULA + bytes(6) + A_SHORT, ULA + bytes(6) + B_SHORT, 5683, 5683, filler(size))
    return fragment(packet, A_SHORT, B_SHORT, max_payload=MAX_PAYLOAD, tag=tag)


def test_fragment_headers_are_read_as_rfc4944_writes_them() -> None:
    frags = payloads(600, tag=77)
    parsed = [parse_fragment(p) for p in frags]
    assert len(frags) >= 6 and all(f is not None for f in parsed)
    assert parsed[0] is not None and parsed[0].first and parsed[0].tag == 77
    assert [f.first for f in parsed if f] == [True] + [False] * (len(frags) - 1)
    last = parsed[-1]
    assert last is not None and last.end == last.size == 600 + 48
    middle = parsed[1]
    assert middle is not None and middle.end < middle.size
    assert parse_fragment(payloads(40, tag=1)[0]) is None  # fits one frame: no fragment header
    assert parse_fragment(b"") is None and parse_fragment(b"\xc0\x01") is None


def test_each_datagram_is_counted_once_with_its_fate() -> None:
    fates = DatagramFates()
    n = len(payloads(600, 0))
    patterns = [
        [True] * n,  # delivered
        [True, True, False] + [True] * (n - 3),  # one fragment lost
        [False, True, True, True, False] + [True] * (n - 5),  # two lost
    ]
    for tag, pattern in enumerate(patterns):
        frags = payloads(600, tag)
        for frag in frags:  # handed to the medium in order, done in another order
            fates.queued("a", "b", frag)
        for frag, ok in reversed(list(zip(frags, pattern, strict=True))):
            fates.done("a", "b", frag, ok, 0.1)
    link = fates.links["a", "b"]
    assert link.datagrams == {n: 3} and link.lost == {n: 2} and link.lost_one == {n: 1}
    assert link.fragments == 3 * n and link.fragments_lost == 3
    assert link.expected_lost == pytest.approx(3 * datagram_loss(0.1, n))
    assert fates.by_sender() == {"a": {DELIVERED: 1, LOST_ONE: 1, LOST_SEVERAL: 1}}
    snap = fates.snapshot()["a->b"]
    assert isinstance(snap, dict) and snap["lost_one"] == {str(n): 1}


def test_unfollowed_unmodelled_and_incomplete_datagrams() -> None:
    fates = DatagramFates(open_limit=2)
    frags = payloads(600, tag=5)
    for frag in frags[1:]:  # its first fragment went before we looked: not counted
        fates.frame("a", "b", frag, True, 0.0)
    assert ("a", "b") not in fates.links
    for frag in frags:  # a bursty link: counted, not modelled
        fates.frame("a", "b", frag, True, None)
    link = fates.links["a", "b"]
    assert link.datagrams == {len(frags): 1} and link.unmodelled == 1 and link.expected_lost == 0.0
    fates.frame("a", "b", frags[0], True, 0.0)  # its end never comes, its tag is reused
    fates.frame("a", "b", frags[0], True, 0.0)
    for tag in (6, 7):  # the table holds two: the oldest is given up
        fates.frame("a", "b", payloads(600, tag)[0], True, 0.0)
    assert link.incomplete == 2
    for frag in frags[:3]:  # a datagram is decided by its last fragment only
        fates.frame("a", "c", frag, False, 0.5)
    assert ("a", "c") not in fates.links


def test_frame_loss_model() -> None:
    assert frame_loss(0.3, 3) == pytest.approx(0.3**4)
    assert frame_loss(0.3, None) == pytest.approx(0.3)
    assert datagram_loss(frame_loss(0.3, 3), 8) == pytest.approx(1 - (1 - 0.0081) ** 8)


def _received(events: list[Delivery]) -> dict[int, int]:
    """Fragments n1 received per datagram tag (a lost ACK makes it receive duplicates)."""
    got: dict[int, set[bytes]] = {}
    for d in events:
        if d.dst == "n1":
            info = mac.decode(d.frame)
            frag = parse_fragment(info.payload)
            if frag is not None:
                got.setdefault(frag.tag, set()).add(info.payload)
    return {tag: len(fr) for tag, fr in got.items()}


@pytest.mark.parametrize(("loss", "retries"), [(0.1, 0), (0.3, 0), (0.5, 3), (0.3, 3)])
def test_medium_counts_what_the_receiver_got_and_the_model_explains_it(
    loss: float, retries: int
) -> None:
    m = Medium(MediumConfig(seed=11, max_frame_retries=retries))
    for i in range(2):
        m.attach(f"n{i}", ext_of(i), short_of(i))
    m.set_link("n0", "n1", LinkConfig(delivery=1 - loss))
    m.set_link("n1", "n0", LinkConfig(delivery=1 - loss))  # ACKs lost too
    events: list[Delivery] = []
    seq = 0
    datagrams, n = 400, len(payloads(600, 0))
    for tag in range(datagrams):
        for frag in payloads(600, tag):
            frame = mac.encode_data(
                seq=seq & 0xFF, pan_id=0x23, src=short_of(0), dst=short_of(1), payload=frag
            )
            seq += 1
            m.submit("n0", frame, at=m.now)
        events += [e for e in m.run_all() if isinstance(e, Delivery)]
    link = m.fates.links["n0", "n1"]
    received = _received(events)
    truly_lost = sum(1 for tag in range(datagrams) if received.get(tag, 0) < n)
    truly_one = sum(1 for tag in range(datagrams) if received.get(tag, 0) == n - 1)
    assert link.datagrams == {n: datagrams}
    assert sum(link.lost.values()) == truly_lost
    assert sum(link.lost_one.values()) == truly_one
    q = frame_loss(loss, retries)
    assert link.expected_lost == pytest.approx(datagrams * datagram_loss(q, n))
    low, high = chernoff_interval(link.expected_lost)
    assert low <= truly_lost <= high
    assert m.snapshot()["fates"]["n0->n1"]["fragments"] == datagrams * n  # type: ignore[index]


def test_queue_overflow_loses_the_fragment() -> None:
    m = Medium(MediumConfig(seed=1, queue_limit=3))
    for i in range(2):
        m.attach(f"n{i}", ext_of(i), short_of(i))
    frags = payloads(600, 9)
    for seq, frag in enumerate(frags):  # 7 fragments into a 3-frame queue
        frame = mac.encode_data(
            seq=seq, pan_id=0x23, src=short_of(0), dst=short_of(1), payload=frag
        )
        m.submit("n0", frame)
    m.run_all()
    link = m.fates.links["n0", "n1"]
    assert link.lost == {len(frags): 1} and link.fragments_lost == len(frags) - 3


def test_outcomes_per_sender_are_the_sum_over_its_links() -> None:
    """by_sender is kept as datagrams close (the metrics read it every publication without a
    walk over the links): it must equal the sum of every link's outcomes, incomplete datagrams
    and links with nothing decided included."""
    rng = random.Random(5)
    fates = DatagramFates(open_limit=8)
    for tag in range(300):
        src, dst = rng.choice("abc"), rng.choice("xyz")
        frags = payloads(rng.choice((300, 600)), tag % 40)
        if rng.random() < 0.2:
            frags = frags[:-1]  # its end never comes: incomplete when evicted or reused
        for frag in frags:
            fates.queued(src, dst, frag)
        for frag in frags:
            fates.done(src, dst, frag, rng.random() < 0.8, 0.2)
    expected: dict[str, dict[str, int]] = {}
    for (src, _), link in fates.links.items():
        counts = expected.setdefault(src, dict.fromkeys((DELIVERED, LOST_ONE, LOST_SEVERAL), 0))
        for outcome, count in link.outcomes().items():
            counts[outcome] += count
    assert fates.by_sender() == expected
    assert sum(link.incomplete for link in fates.links.values()) > 0
    assert sum(c[LOST_SEVERAL] for c in expected.values()) > 0
