"""The medium's behaviour, exactly: airtime, one frame at a time, ACK/retry timing, queues,
who receives what, live link changes, counters."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.node.radio import mac
from testbed.node.radio.links import LinkConfig
from testbed.node.radio.medium import Medium
from testbed.node.radio.medium_types import Delivery, MediumConfig, OnAir, TxStatus
from testbed.node.radio.phy import ACK_AIRTIME_S, ACK_WAIT_S, TURNAROUND_S, airtime
from tests.unit.node.radio.packets import filler, ipv6
from tests.unit.node.radio.pan import Pan, ext_of, short_of

FULL = 4.256e-3


def frame(src: int, dst: bytes, seq: int = 1, size: int = 127, ar: bool | None = None) -> bytes:
    payload = bytes(size - 11) if len(dst) == 2 else bytes(size - 11 - 6)
    return mac.encode_data(
        seq=seq, pan_id=0x23, src=short_of(src), dst=dst, payload=payload, ack_request=ar
    )


def medium(n: int = 3, **kw: object) -> Medium:
    m = Medium(MediumConfig(record_air=True, **kw))  # type: ignore[arg-type]
    for i in range(n):
        m.attach(f"n{i}", ext_of(i), short_of(i))
    return m


def test_phy_constants() -> None:
    assert airtime(127) == pytest.approx(FULL, abs=1e-12)
    assert pytest.approx(352e-6) == ACK_AIRTIME_S
    assert pytest.approx(192e-6) == TURNAROUND_S and pytest.approx(864e-6) == ACK_WAIT_S


def test_full_frame_occupies_the_channel_4256_us() -> None:
    m = medium()
    m.submit("n0", frame(0, b"\xff\xff"), 1.0)
    events = m.run_all()
    (air,) = [e for e in events if isinstance(e, OnAir)]
    assert (air.start, air.end - air.start) == (1.0, pytest.approx(FULL, abs=1e-12))
    deliveries = [e for e in events if isinstance(e, Delivery)]
    assert {d.dst for d in deliveries} == {"n1", "n2"}
    assert all(d.time == pytest.approx(1.0 + FULL) for d in deliveries)


def test_one_frame_at_a_time_in_arrival_order() -> None:
    m = medium()
    for seq in range(3):
        m.submit("n0", frame(0, b"\xff\xff", seq), 0.0)
    m.submit("n2", frame(2, b"\xff\xff", 9), 0.0)
    airs = [e for e in m.run_all() if isinstance(e, OnAir)]
    # n0's head, then n2 (waiting since 0), then n0's next two frames.
    assert [(a.node, mac.decode(a.frame).seq) for a in airs] == [
        ("n0", 0), ("n2", 9), ("n0", 1), ("n0", 2),
    ]  # fmt: skip
    assert [a.start for a in airs] == pytest.approx([0, FULL, 2 * FULL, 3 * FULL])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(12, 127), st.floats(0, 0.05)),
        min_size=1,
        max_size=40,
    )
)
def test_channel_never_carries_two_frames(subs: list[tuple[int, int, float]]) -> None:
    m = medium(default_link=LinkConfig(delivery=0.7), seed=3)
    for i, (node, size, at) in enumerate(subs):
        m.submit(f"n{node}", frame(node, short_of((node + 1) % 3), i, size), at)
    airs = sorted((e for e in m.run_all() if isinstance(e, OnAir)), key=lambda a: a.start)
    for a, b in itertools.pairwise(airs):
        assert b.start >= a.end - 1e-12
    for a in airs:
        assert a.end - a.start == pytest.approx(airtime(len(a.frame)), abs=1e-12)


def test_acknowledged_exchange_timing() -> None:
    m = medium()
    m.submit("n0", frame(0, short_of(1), seq=5), 0.0)
    events = m.run_all()
    airs = [e for e in events if isinstance(e, OnAir)]
    assert [a.node for a in airs] == ["n0", "n1"]
    assert airs[1].start == pytest.approx(FULL + TURNAROUND_S)
    assert mac.decode(airs[1].frame).frame_type == mac.FRAME_ACK
    (status,) = [e for e in events if isinstance(e, TxStatus)]
    assert status.ok and status.attempts == 1
    assert status.time == pytest.approx(FULL + 192e-6 + 352e-6)
    ack = [e for e in events if isinstance(e, Delivery) and e.dst == "n0"]
    assert len(ack) == 1 and mac.decode(ack[0].frame).seq == 5


def test_retries_then_exhausted() -> None:
    m = medium(default_link=LinkConfig(delivery=0.0))
    m.submit("n0", frame(0, short_of(1), seq=5), 0.0)
    events = m.run_all()
    starts = [e.start for e in events if isinstance(e, OnAir)]
    assert starts == pytest.approx([i * (FULL + ACK_WAIT_S) for i in range(4)])
    (status,) = [e for e in events if isinstance(e, TxStatus)]
    assert (status.ok, status.attempts, status.reason) == (False, 4, "retries-exhausted")
    snap = m.snapshot()
    node = snap["nodes"]["n0"]  # type: ignore[index]
    assert node["transmissions"] == 4 and node["retries"] == 3
    assert node["dropped"] == {"channel-loss": 4, "retries-exhausted": 1}
    link = snap["links"]["n0->n1"]  # type: ignore[index]
    assert link["frames"] == 4 and link["dropped"]["retries-exhausted"] == 1


def test_other_nodes_use_the_channel_while_a_sender_waits_for_its_ack() -> None:
    m = medium(n=3)
    m.set_link("n0", "n1", LinkConfig(delivery=0.0))
    m.submit("n0", frame(0, short_of(1), seq=1), 0.0)
    m.submit("n2", frame(2, short_of(1), seq=2, size=20), 0.001)
    airs = [e for e in m.run_all() if isinstance(e, OnAir)]
    # n2 goes right after n0's first attempt; its ACK follows; then n0 retries.
    assert [a.node for a in airs[:3]] == ["n0", "n2", "n1"]
    assert airs[1].start == pytest.approx(FULL)


def test_lost_ack_causes_a_duplicate_that_the_station_drops() -> None:
    pan = Pan(n=2)
    pan.medium.set_link("n1", "n0", LinkConfig(delivery=0.0))  # every ACK lost
    pkt = ipv6(bytes.fromhex("fe80000000000000") + bytes(8), bytes(16), 59, filler(20))
    pan.send("n0", "n1", pkt, 0.0)
    pan.run()
    assert [p for _, _, p in pan.received] == [pkt]
    assert pan.stations["n1"].dropped["duplicate"] == 3
    (status,) = pan.statuses()
    assert not status.ok and status.attempts == 4


def test_queue_limit() -> None:
    m = medium(queue_limit=2)
    for seq in range(3):
        m.submit("n0", frame(0, b"\xff\xff", seq), 0.0)
    statuses = [e for e in m.run_all() if isinstance(e, TxStatus)]
    assert next((s.seq, s.ok, s.reason) for s in statuses) == (2, False, "queue-full")
    node = m.snapshot()["nodes"]["n0"]  # type: ignore[index]
    assert node["dropped"]["queue-full"] == 1 and node["queue_max"] == 2


def test_unknown_destination_is_transmitted_and_given_up() -> None:
    m = medium()
    m.submit("n0", frame(0, b"\x77\x77"), 0.0)
    statuses = [e for e in m.run_all() if isinstance(e, TxStatus)]
    assert statuses[0].reason == "retries-exhausted"
    assert m.snapshot()["nodes"]["n0"]["no_receiver"] == 4  # type: ignore[index]


def test_riot_style_sender_gets_one_attempt_and_a_synthesised_ack() -> None:
    m = Medium(MediumConfig(record_air=True))
    m.attach("riot", ext_of(5), emulate_mac=False)
    m.attach("station", ext_of(1), short_of(1))
    m.set_link("riot", "station", LinkConfig(delivery=0.0))
    f = mac.encode_data(seq=3, pan_id=0x23, src=ext_of(5), dst=short_of(1), payload=b"\x41")
    m.submit("riot", f, 0.0)
    events = m.run_all()
    assert len([e for e in events if isinstance(e, OnAir)]) == 1  # RIOT retries by itself
    m.reset_link("riot", "station")
    m.submit("riot", f, 1.0)
    acks = [e for e in m.run_all() if isinstance(e, Delivery) and e.dst == "riot"]
    assert len(acks) == 1 and mac.decode(acks[0].frame).frame_type == mac.FRAME_ACK
    # An ACK frame a RIOT node sends is carried like any frame, to everybody.
    m.attach("other", ext_of(2))
    m.submit("riot", mac.encode_ack(9), 2.0)
    got = [e.dst for e in m.run_all() if isinstance(e, Delivery)]
    assert sorted(got) == ["other", "station"]


def test_garbled_submissions_are_counted_not_raised() -> None:
    m = medium()
    assert m.submit("n0", b"\x01\x02", 0.0) == "garbled"
    good = frame(0, b"\xff\xff")
    assert m.submit("n0", good[:-1] + bytes((good[-1] ^ 1,)), 0.0) == "garbled"
    assert m.garbled == {"truncated": 1, "bad-fcs": 1}
    assert m.snapshot()["nodes"]["n0"]["dropped"] == {"garbled": 2}  # type: ignore[index]
    assert m.run_all() == []


def test_live_link_change_and_reset() -> None:
    m = medium(n=2)
    m.set_link("n0", "n1", LinkConfig(delivery=0.0))
    m.submit("n0", frame(0, b"\xff\xff"), 0.0)
    assert not [e for e in m.run_all() if isinstance(e, Delivery)]
    m.reset_link("n0", "n1")
    m.submit("n0", frame(0, b"\xff\xff"), 1.0)
    assert [e.dst for e in m.run_all() if isinstance(e, Delivery)] == ["n1"]


def test_detach_while_transmitting_is_harmless() -> None:
    m = medium()
    m.submit("n0", frame(0, short_of(1)), 0.0)
    m.submit("n1", frame(1, short_of(0)), 0.0)
    m.run(0.001)
    m.detach("n0")
    m.run_all()
    assert "n0" not in m.nodes()


def test_run_until_and_next_event_time() -> None:
    m = medium()
    m.submit("n0", frame(0, b"\xff\xff"), 0.5)
    assert m.next_event_time() == 0.5
    assert m.run(0.4) == [] and m.now == 0.4
    events = m.run(0.5 + FULL)
    assert any(isinstance(e, Delivery) for e in events)


def test_snapshot_is_plain_data_with_the_counters() -> None:
    pan = Pan(n=3, default=LinkConfig(delivery=0.5), seed=1)
    for i in range(20):
        pan.send("n0", "n1", ipv6(bytes(16), bytes(16), 59, filler(300)), i * 0.1)
    pan.run()
    snap = pan.medium.snapshot()
    json.dumps(snap)  # plain data
    node = snap["nodes"]["n0"]  # type: ignore[index]
    for key in ("frames_submitted", "frames_sent", "transmissions", "frames_received",
                "airtime_s", "queue_length", "queue_max", "dropped"):  # fmt: skip
        assert key in node
    assert set(node["dropped"]) <= {"channel-loss", "retries-exhausted", "queue-full", "garbled"}
    link = snap["links"]["n0->n1"]  # type: ignore[index]
    assert link["frames"] > 0 and link["airtime_s"] > 0
    station = pan.stations["n0"].snapshot()
    assert station["fragments_per_packet"] == {4: 20}
    json.dumps(pan.stations["n1"].snapshot())


def test_source_addresses_are_learned_first_come_first_served() -> None:
    m = Medium(MediumConfig())
    m.attach("riot", ext_of(5), emulate_mac=False)
    m.attach("station", ext_of(1), short_of(1))
    m.attach("spoofer", ext_of(2))
    f = mac.encode_data(seq=1, pan_id=0x23, src=b"\x05\x05", dst=short_of(1), payload=b"\x41")
    m.submit("riot", f, 0.0)
    m.run_all()
    assert m.owner(b"\x05\x05") == "riot"
    m.submit("spoofer", f, 1.0)
    m.run_all()
    assert m.owner(b"\x05\x05") == "riot"
    back = mac.encode_data(seq=2, pan_id=0x23, src=short_of(1), dst=b"\x05\x05", payload=b"")
    m.submit("station", back, 2.0)
    assert [e.dst for e in m.run_all() if isinstance(e, Delivery)] == ["riot", "station"]


def test_the_periodic_node_snapshot_does_not_walk_the_links() -> None:
    m = Medium(MediumConfig())
    for i in range(6):
        m.attach(f"n{i}", short_of(i + 1))
    m.submit(
        "n0", mac.encode_data(seq=1, pan_id=0x23, src=short_of(1), dst=b"\xff\xff", payload=b"\x41")
    )
    m.run_all()
    assert len(m.snapshot()["links"]) == 5  # type: ignore[arg-type]
    light = m.snapshot(links=False)
    assert "links" not in light and len(light["nodes"]) == 6  # type: ignore[arg-type]
    assert "fates" not in light and "fates" in m.snapshot()
