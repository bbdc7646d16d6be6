"""What a refusal flood costs the trust center's event loop, and what the gate costs.

    python bench/refusals.py [--count 5000]

1. ``--count`` refusals written the synchronous way (one fsync'd SQLite transaction each, on
   the calling thread, as the registry does for its own writes) against the same refusals
   handed to ``RefusalLog`` (queue + batch writer in a worker thread): event-loop time per
   refusal, wall time until every row (or summary row) is on disk, rows written.
2. ``HandshakeGate.check`` per message_1 (rate limit and Echo verification), in microseconds.

Runs in a temporary directory on this machine's disk; nothing touches the network.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiocoap

from testbed.node.coap.handshake_gate import GateConfig, HandshakeGate
from testbed.node.trust_center.refusal_log import RefusalLog
from testbed.node.trust_center.registry import Refusal, Registry


def _refusal(i: int) -> Refusal:
    return Refusal(time.time(), i.to_bytes(4, "big"), None, None, "unknown-device", f"#{i}")


def synchronous(directory: Path, n: int) -> tuple[float, int]:
    registry = Registry.open(directory)
    try:
        start = time.perf_counter()
        for i in range(n):
            r = _refusal(i)
            registry.record_refusal(
                kid=r.kid, serial=None, vendor=None, reason=r.reason, detail=r.detail
            )
        elapsed = time.perf_counter() - start
        return elapsed, len(registry.refusals())
    finally:
        registry.close()


async def queued(directory: Path, n: int) -> tuple[float, float, int]:
    Registry.open(directory).close()
    log = RefusalLog(directory / "registry.sqlite")
    log.start()
    start = time.perf_counter()
    on_loop = 0.0
    for i in range(n):
        t = time.perf_counter()
        log.submit(_refusal(i))
        on_loop += time.perf_counter() - t
        if i % 64 == 0:
            await asyncio.sleep(0)  # a flood arrives datagram by datagram
    await log.close()
    wall = time.perf_counter() - start
    registry = Registry.open(directory)
    try:
        return on_loop, wall, len(registry.refusals())
    finally:
        registry.close()


def gate_cost(n: int) -> tuple[float, float]:
    class Remote:
        def __init__(self, host: str) -> None:
            self.sockaddr = (host, 5683)

    gate = HandshakeGate(GateConfig(return_routability=True, rate_per_source=1e9, burst=10**6))
    remote = Remote("fd00::1")
    echo = gate.echo_for("fd00::1")
    messages = []
    for _ in range(n):
        m = aiocoap.Message(code=aiocoap.POST, payload=b"x", echo=echo)
        m.remote = remote
        messages.append(m)
    start = time.perf_counter()
    for m in messages:
        assert gate.check(m) is None
    admitted = (time.perf_counter() - start) / n
    for m in messages:
        m.opt.echo = None
    start = time.perf_counter()
    for m in messages:
        assert gate.check(m) is not None
    challenged = (time.perf_counter() - start) / n
    return admitted, challenged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    n = args.count
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        sync_s, sync_rows = synchronous(Path(a), n)
        loop_s, wall_s, rows = asyncio.run(queued(Path(b), n))
    print(f"{n} refusals")
    print(
        f"  synchronous: {sync_s / n * 1e6:8.1f} us per refusal on the loop,"
        f" {sync_s:.2f} s, {sync_rows} rows"
    )
    print(
        f"  queued:      {loop_s / n * 1e6:8.1f} us per refusal on the loop,"
        f" {wall_s:.2f} s until on disk, {rows} rows (rows beyond the queue summarised)"
    )
    admitted, challenged = gate_cost(20_000)
    print(
        f"gate: {admitted * 1e6:.1f} us per admitted message_1 (rate limit + Echo check),"
        f" {challenged * 1e6:.1f} us per challenge"
    )


if __name__ == "__main__":
    main()
