"""Throughput of the radio layer on one core of this machine.

    python bench/radio.py [--seconds 1.0]

For IPv6/UDP packets of several sizes (link-local addresses from short MAC addresses, the
common case on the PAN): frames per second for send (IPHC compression + RFC 4944 fragmentation
+ 802.15.4 framing with FCS) and for receive (FCS check + MAC parsing + reassembly +
decompression), then frames per second through the medium model (queueing, airtime, loss draws,
ACK emulation) with N attached stations. One 802.15.4 channel carries at most about 235 full
frames per second (4.256 ms each), so these are the headroom factors per channel.
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Callable
from functools import partial

from testbed.node.radio.addressing import link_local
from testbed.node.radio.iphc import internet_checksum
from testbed.node.radio.links import LinkConfig
from testbed.node.radio.medium import Medium
from testbed.node.radio.medium_types import MediumConfig
from testbed.node.radio.station import Station, StationConfig

CHANNEL_FRAMES_PER_S = 1 / 4.256e-3


def udp6(src: bytes, dst: bytes, size: int) -> bytes:
    payload = bytes(i & 0xFF for i in range(size - 48))
    length = size - 40
    body = struct.pack("!HHHH", 5683, 5683, length, 0) + payload
    pseudo = src + dst + struct.pack("!IxxxB", length, 17)
    body = body[:6] + (internet_checksum(pseudo + body) or 0xFFFF).to_bytes(2, "big") + body[8:]
    return struct.pack("!IHBB", 6 << 28, length, 17, 64) + src + dst + body


def timed(seconds: float, op: Callable[[], int]) -> tuple[float, float]:
    """(operations per second, frames per second) of ``op``, which returns its frame count."""
    op()
    ops = frames = 0
    start = time.perf_counter()
    while True:
        frames += op()
        ops += 1
        if ops % 8 == 0 and time.perf_counter() - start >= seconds:
            break
    elapsed = time.perf_counter() - start
    return ops / elapsed, frames / elapsed


def ext(i: int) -> bytes:
    return bytes.fromhex("02000000000000") + bytes((i & 0xFF,))


def short(i: int) -> bytes:
    return (i + 1).to_bytes(2, "big")


def send_once(station: Station, pkt: bytes, dst: bytes) -> int:
    return len(station.send(pkt, dst))


def receive_once(
    station: Station, batches: list[list[bytes]], pkt: bytes, clock: list[float]
) -> int:
    # Consecutive sends (distinct sequence numbers and tags: a repeated frame would be dropped
    # as a MAC duplicate), taken in turn.
    frames = batches[int(clock[0]) % len(batches)]
    clock[0] += 1.0
    out = None
    for f in frames:
        out = station.receive(f, clock[0]) or out
    assert out == pkt
    return len(frames)


def bench_station(seconds: float) -> None:
    a = Station(StationConfig(ext(1), short(1)))
    b = Station(StationConfig(ext(2), short(2)))
    print(f"{'packet':>8} {'frames':>6} {'send pkt/s':>11} {'send frames/s':>14} "
          f"{'recv pkt/s':>11} {'recv frames/s':>14}")  # fmt: skip
    for size in (100, 600, 1280):
        pkt = udp6(link_local(short(1)), link_local(short(2)), size)
        batches = [a.send(pkt, short(2)) for _ in range(64)]
        frames = batches[0]
        send_ops, send_frames = timed(seconds, partial(send_once, a, pkt, short(2)))
        recv_ops, recv_frames = timed(seconds, partial(receive_once, b, batches, pkt, [0.0]))
        print(f"{size:>7}B {len(frames):>6} {send_ops:>11,.0f} {send_frames:>14,.0f} "
              f"{recv_ops:>11,.0f} {recv_frames:>14,.0f}")  # fmt: skip


def medium_round(m: Medium, frames: list[tuple[str, list[bytes]]], clock: list[float]) -> int:
    """Every node submits one 600-byte packet's frames; the medium runs until they are done."""
    n = 0
    for name, fs in frames:
        for f in fs:
            m.submit(name, f, clock[0])
            n += 1
    m.run_all()  # every frame delivered or given up before the next round
    clock[0] = m.now + 1.0
    return n


def bench_medium(seconds: float) -> None:
    print(f"\n{'nodes':>6} {'loss':>5} {'medium frames/s':>16} {'x one channel':>14}")
    for nodes in (2, 10, 50):
        for loss in (0.0, 0.2):
            m = Medium(MediumConfig(seed=1, default_link=LinkConfig(delivery=1 - loss)))
            frames = []
            for i in range(nodes):
                m.attach(f"n{i}", ext(i), short(i))
                st = Station(StationConfig(ext(i), short(i), seed=i))
                pkt = udp6(link_local(short(i)), link_local(short((i + 1) % nodes)), 600)
                frames.append((f"n{i}", st.send(pkt, short((i + 1) % nodes))))
            _, fps = timed(seconds, partial(medium_round, m, frames, [0.0]))
            print(f"{nodes:>6} {loss:>5.0%} {fps:>16,.0f} {fps / CHANNEL_FRAMES_PER_S:>14,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    seconds = parser.parse_args().seconds
    bench_station(seconds)
    bench_medium(seconds)


if __name__ == "__main__":
    main()
