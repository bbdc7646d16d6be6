"""Benchmark: EDHOC + OSCORE handshakes against one responder, on ::1.

For N = 10, 50, 200 distinct initiators (each its own key, CCS and UDP socket) against one
server, it measures each handshake from message_1 to the first OSCORE response (message_3
rides on that request, RFC 9668, so that is when both sides hold the context) and prints the
median and 95th percentile, and the bytes per handshake: each EDHOC message alone (median) and
UDP payload on the initiator's socket. Run: .venv/bin/python bench/edhoc.py [--concurrency K]

Sizes differ from RFC 9529's 37/45/19 in known ways: message_1 +1 (aiocoap's EAD_1 item);
message_3 +2 because 200 initiators need two-byte kids (a one-byte kid is sent as a CBOR int);
message_2 +2 from the 49th session on, when the responder's one-byte C_R are all in use.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiocoap
from aiocoap import resource

from testbed.node.bootstrap.accounting import WireLog
from testbed.node.coap.classify import CoapClassifier
from testbed.node.coap.credentials import EdhocIdentity, PeerTable
from testbed.node.coap.edhoc_client import EdhocOscoreClient
from testbed.node.coap.edhoc_server import ProtectedResource, start_edhoc_server

EDHOC_MESSAGES = ("edhoc_message_1", "edhoc_message_2", "edhoc_message_3+oscore_request")


class Ping(ProtectedResource):
    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(code=aiocoap.CHANGED)


async def _one(thing: EdhocIdentity, server: EdhocIdentity, uri: str) -> tuple[float, WireLog]:
    log = WireLog(CoapClassifier())
    client = await EdhocOscoreClient.connect(thing, server.credential, uri, sink=log)
    try:
        started = time.perf_counter()
        await client.establish()
        await client.request(aiocoap.POST, "/ping")
        return time.perf_counter() - started, log
    finally:
        await client.close()


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


async def run(n: int, concurrency: int) -> None:
    server_id = EdhocIdentity.generate(b"\x32", "trust-center")
    things = [EdhocIdentity.generate(i.to_bytes(2, "big"), f"thing-{i}") for i in range(n)]
    site = resource.Site()
    site.add_resource(["ping"], Ping())
    server = await start_edhoc_server(
        site, server_id, PeerTable(t.credential for t in things), bind=("::1", 0)
    )
    uri = f"coap://[::1]:{server.port}"
    limit = asyncio.Semaphore(concurrency)

    async def bounded(thing: EdhocIdentity) -> tuple[float, WireLog]:
        async with limit:
            return await _one(thing, server_id, uri)

    try:
        results = await asyncio.gather(*(bounded(t) for t in things))
    finally:
        await server.close()

    durations = [d * 1000 for d, _ in results]
    per_message: dict[str, list[int]] = {name: [] for name in EDHOC_MESSAGES}
    udp_sent, udp_received, datagrams = [], [], []
    for _, log in results:
        costs = log.costs()
        for cost in costs:
            if cost.message in per_message and cost.message_bytes is not None:
                per_message[cost.message].append(cost.message_bytes)
        udp_sent.append(sum(c.bytes for c in costs if c.direction == "sent"))
        udp_received.append(sum(c.bytes for c in costs if c.direction == "received"))
        datagrams.append(sum(c.datagrams for c in costs))
    sizes = "/".join(f"{statistics.median(v):.0f}" for v in per_message.values())
    print(
        f"{n:>5} {concurrency:>5} {statistics.median(durations):>9.2f} {_p95(durations):>9.2f}"
        f" {sizes:>12} {statistics.median(udp_sent):>8.0f} {statistics.median(udp_received):>8.0f}"
        f" {statistics.median(datagrams):>6.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--concurrency", type=int, default=1, help="handshakes in flight")
    args = parser.parse_args()
    print("handshake = message_1 .. first OSCORE response; bytes per handshake (median)")
    print("    N  conc  median ms    p95 ms  EDHOC m1/2/3  UDP sent  UDP recv  dgrams")
    for n in args.sizes:
        asyncio.run(run(n, args.concurrency))


if __name__ == "__main__":
    main()
