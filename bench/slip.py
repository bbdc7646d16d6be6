"""Throughput of the SLIP codec (testbed.node.radio.slip) on one core of this machine.

    python bench/slip.py [--seconds 1.0]

For IPv6 packets of several sizes, with ordinary bytes and with every byte an END or ESC (the
worst case: every byte is stuffed to two): packets per second and line bytes per second for
``encode`` and for ``SlipDecoder.feed`` + ``classify`` (the decoder runs a Python loop per
byte). A serial line at 115200 baud, 8N1, carries 11,520 bytes per second, so the decoder's
bytes per second divided by that is the headroom per board.
"""

from __future__ import annotations

import argparse
import struct
import time

from testbed.node.radio import slip

LINE_BYTES_PER_S = 115200 / 10  # 8N1: ten bits per byte


def packet(size: int, worst: bool) -> bytes:
    payload = bytes((slip.END, slip.ESC)) * ((size - 40) // 2) if worst else bytes(size - 40)
    head = struct.pack("!IHBB", 6 << 28, len(payload), 59, 64)
    return head + bytes.fromhex("fd00" + "00" * 13 + "02") + bytes(16) + payload


def rate(seconds: float, op: object) -> float:
    assert callable(op)
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        op()
        done += 1
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = parser.parse_args()
    print(f"{'size':>5} {'kind':>7} {'line B':>7} {'enc pkt/s':>10} {'dec pkt/s':>10} "
          f"{'dec line B/s':>13} {'x 115200 baud':>13}")  # fmt: skip
    for size in (80, 600, 1280):
        for worst in (False, True):
            p = packet(size, worst)
            line = slip.encode(p)
            decoder = slip.SlipDecoder()

            def decode(line: bytes = line, decoder: slip.SlipDecoder = decoder) -> None:
                for frame in decoder.feed(line):
                    slip.classify(frame)

            enc = rate(args.seconds, lambda p=p: slip.encode(p))
            dec = rate(args.seconds, decode)
            assert decoder.frames and not decoder.refused
            kind = "END/ESC" if worst else "plain"
            bps = dec * len(line)
            print(f"{size:>5} {kind:>7} {len(line):>7} {enc:>10,.0f} {dec:>10,.0f} "
                  f"{bps:>13,.0f} {bps / LINE_BYTES_PER_S:>13,.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
