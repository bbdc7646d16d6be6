"""Benchmark: what a request to a thing costs through the border router's CoAP proxy.

Three paths to one luminaire, on loopback with the real stacks (aiocoap OSCORE, Mbed TLS DTLS
PSK, the testbed's proxy, thing servers and backend client; the rig of tests/unit/node/proxy):

    direct       OSCORE from the backend to the thing (no proxy)
    end-to-end   OSCORE through the proxy (it forwards what it cannot read)
    hop-by-hop   DTLS backend -> proxy, DTLS proxy -> thing (it reads everything)

For each path it prints UDP payload bytes and datagrams of the first request (DTLS handshakes
included) and the median of ``--requests`` further GETs and PUTs, on the backend's socket and
on the proxy's thing-side socket (the leg that crosses the PAN), and the round trips the
backend waits for. No loss, no radio: the PAN's frame cost follows from the thing-side bytes
(docs/proxy.md).

    .venv/bin/python bench/proxy.py [--requests 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiocoap  # noqa: E402

from tests.unit.node.proxy.rig import Rig, rig  # noqa: E402


class Sink:
    def __init__(self) -> None:
        self.bytes = 0
        self.datagrams = 0

    def record(self, direction: str, peer: Any, data: bytes) -> None:
        self.bytes += len(data)
        self.datagrams += 1

    def take(self) -> tuple[int, int]:
        out = (self.bytes, self.datagrams)
        self.bytes = self.datagrams = 0
        return out


def _thing_leg(r: Rig, path: str) -> tuple[int, int]:
    leg = {"end-to-end": "thing-coap", "hop-by-hop": "thing-coaps"}.get(path)
    if leg is None:
        return 0, 0
    sink = r.proxy.sinks[leg]
    out = (sum(sink.bytes.values()), sum(sink.datagrams.values()))
    for d in sink.bytes:
        sink.bytes[d] = sink.datagrams[d] = 0
    return out


async def measure(path: str, requests: int) -> dict[str, Any]:
    sink = Sink()
    with tempfile.TemporaryDirectory() as tmp:
        async with rig(Path(tmp), backend_sink=sink) as r:
            send = {"direct": r.direct, "end-to-end": r.oscore, "hop-by-hop": r.dtls}[path]
            reply = await send(aiocoap.GET, "light")
            assert reply.code == "2.05", reply
            first = (*sink.take(), *_thing_leg(r, path))
            rows: dict[str, list[tuple[int, int, int, int]]] = {"GET": [], "PUT": []}
            for i in range(requests):
                for method, value in (("GET", None), ("PUT", {"on": i % 2 == 0, "level": i})):
                    code = aiocoap.GET if method == "GET" else aiocoap.PUT
                    reply = await send(code, "light", value)
                    assert reply.code.startswith("2."), reply
                    rows[method].append((*sink.take(), *_thing_leg(r, path)))
            handshakes = r.proxy.pool.handshakes if r.proxy.pool else 0
    return {"first": first, "rows": rows, "handshakes": handshakes}


def _median(rows: list[tuple[int, int, int, int]], i: int) -> float:
    return statistics.median(row[i] for row in rows)


async def main(requests: int) -> None:
    print(f"{requests} GETs and {requests} PUTs per path after a first GET; loopback, no loss")
    print(
        "| path | first GET: backend B / dgrams | thing leg B / dgrams | "
        "GET backend B / dgrams | GET thing leg B / dgrams | PUT backend B | PUT thing leg B |"
    )
    print("|---|---|---|---|---|---|---|")
    for path in ("direct", "end-to-end", "hop-by-hop"):
        m = await measure(path, requests)
        f, g, p = m["first"], m["rows"]["GET"], m["rows"]["PUT"]
        thing = "(same socket)" if path == "direct" else f"{f[2]} / {f[3]}"
        g_thing = "-" if path == "direct" else f"{_median(g, 2):.0f} / {_median(g, 3):.0f}"
        p_thing = "-" if path == "direct" else f"{_median(p, 2):.0f}"
        print(
            f"| {path} | {f[0]} / {f[1]} | {thing} | {_median(g, 0):.0f} / {_median(g, 1):.0f} "
            f"| {g_thing} | {_median(p, 0):.0f} | {p_thing} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    asyncio.run(main(parser.parse_args().requests))
