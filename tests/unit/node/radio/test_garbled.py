"""Garbled input at every entry point (hypothesis fuzz): random bytes, truncated frames, bad
FCS, bit flips. Each is dropped and counted with a reason; no exception escapes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.node.radio import mac, zep
from testbed.node.radio.errors import MalformedError
from testbed.node.radio.medium import Medium
from testbed.node.radio.medium_types import MediumConfig
from tests.unit.node.radio.packets import filler, ipv6
from tests.unit.node.radio.pan import Pan, ext_of, short_of

VALID = (
    Pan(n=2)
    .stations["n0"]
    .send(
        ipv6(bytes.fromhex("fe80000000000000") + bytes(8), bytes(16), 59, filler(700)), short_of(1)
    )
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=140), min_size=1, max_size=30))
def test_station_drops_and_counts_random_frames(frames: list[bytes]) -> None:
    station = Pan(n=2).stations["n1"]
    for i, f in enumerate(frames):
        station.receive(f, float(i))
    snap = station.snapshot()
    dropped = sum(snap["dropped_frames"].values())  # type: ignore[attr-defined]
    assert dropped + snap["packets_received"] >= len(frames) - snap["frames_received"]  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(0, len(VALID) - 1),
    cut=st.integers(0, 127),
    flip=st.integers(0, 127 * 8 - 1),
    mode=st.sampled_from(["truncate", "flip", "fcs-fixed-flip"]),
)
def test_station_survives_damaged_fragments(index: int, cut: int, flip: int, mode: str) -> None:
    frames = list(VALID)
    f = bytearray(frames[index])
    if mode == "truncate":
        f = f[:cut]
    else:
        f[(flip // 8) % len(f)] ^= 1 << (flip % 8)
        if mode == "fcs-fixed-flip":  # damage the content but keep the FCS valid
            f = bytearray(mac.with_fcs(bytes(f[:-2])))
    frames[index] = bytes(f)
    station = Pan(n=2).stations["n1"]
    out = [station.receive(x, 0.0) for x in frames]
    assert sum(p is not None for p in out) <= 1
    if mode != "fcs-fixed-flip" and frames[index] != VALID[index]:
        # A CRC-16 catches every truncation and single-bit error.
        assert sum(station.snapshot()["garbled"].values()) >= 1  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=140), min_size=1, max_size=30))
def test_medium_drops_and_counts_random_frames(frames: list[bytes]) -> None:
    m = Medium(MediumConfig(seed=1))
    m.attach("a", ext_of(0), short_of(0))
    m.attach("b", ext_of(1), short_of(1))
    rejected = 0
    for i, f in enumerate(frames):
        rejected += m.submit("a", f, i * 0.01) == "garbled"
    m.run_all()
    assert sum(m.garbled.values()) == rejected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_zep_then_mac_decoding_never_raises_anything_else(data: bytes) -> None:
    try:
        msg = zep.decode(data)
        if isinstance(msg, zep.ZepData):
            mac.decode(msg.frame)
    except MalformedError as exc:
        assert exc.reason
