"""The radio medium's memory under a flood of frames from random sources.

    python bench/medium_flood.py [--frames 100000] [--guests 16]

What anyone on a PAN's carrier network can send the medium: ZEP datagrams whose frames claim
any link-layer source, from any UDP endpoint. The hub under test is the real one
(``frontend.MediumHub`` on asyncio, bound to 127.0.0.1, with the border router's station
attached in process, as in a border router), fed through its datagram callback with invented
endpoints (127.x.y.z addresses and ports: the hub sees nothing else of a sender). Three floods
of ``--frames`` datagrams each, every one on a fresh hub:

- ``sources``: one endpoint, every frame an RFC 4944 first fragment of a 2,047-byte datagram
  to the router, from a random short or extended source address (the reassembly-exhaustion
  attack with spoofed sources);
- ``endpoints``: the same frames, each from a random endpoint as well (a station per datagram);
- ``hellos``: ZEP HELLOs with random EUI-64s from random endpoints (registration flood).

After each tenth of the flood the medium runs to its next idle point, ``gc.collect()`` runs,
and the hub's live Python allocations (tracemalloc, traced from before the hub existed) and
its tables are printed: stations the medium knows, link-layer addresses it maps, directed link
states, the router's open reassembly datagrams and buffered bytes. Bounded means: flat after
the first tenth. The refusals by cause are what ``testbed_radio_datagrams_refused_total``
would show. Exit status 1 if a table grew past the PAN's station limits.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import struct
import sys
import time
import tracemalloc
from typing import Any

from testbed.contracts.radio import RadioPanConfig
from testbed.node.radio import mac, zep
from testbed.node.radio.frag import FRAG1_DISPATCH
from testbed.node.radio.frontend import MediumHub
from testbed.node.radio.port import StationPort

ROUTER_SHORT = 0x0010
PLANNED = 6  # things of the default building's PAN
CHANNEL, PAN_ID = 15, 0xABCD


def config(guests: int) -> RadioPanConfig:
    names = {f"{ROUTER_SHORT:04x}": "br1"}
    names |= {f"{0x11 + i:04x}": f"thing-{i}" for i in range(PLANNED)}
    return RadioPanConfig(
        pan="bench",
        address=f"fd00:0:0:10:0:ff:fe00:{ROUTER_SHORT:x}/64",
        short=ROUTER_SHORT,
        medium="127.0.0.1",
        port=0,
        channel=CHANNEL,
        pan_id=PAN_ID,
        names=names,
        guest_stations=guests,
        # As the planner writes it: the planned things' carrier addresses (not used here, so
        # that a claim of their addresses from anywhere is a hijack attempt).
        **carriers(),
    )


def carriers() -> dict[str, Any]:
    if "carriers" not in RadioPanConfig.__dataclass_fields__:
        return {}  # older code: no binding of planned stations to their endpoints
    return {"carriers": {f"thing-{i}": f"127.0.1.{0x11 + i}" for i in range(PLANNED)}}


def first_fragment(rng: random.Random, src: bytes) -> bytes:
    header = bytes([0x60]) + bytes(39)
    payload = struct.pack("!HH", FRAG1_DISPATCH << 11 | 2047, rng.randrange(1 << 16))
    payload += b"\x41" + header + bytes(48)
    frame = mac.encode_data(
        seq=rng.randrange(256),
        pan_id=PAN_ID,
        src=src,
        dst=ROUTER_SHORT.to_bytes(2, "big"),
        payload=payload,
    )
    return zep.encode_data(frame, channel=CHANNEL)


def random_source(rng: random.Random) -> bytes:
    return rng.randbytes(2) if rng.random() < 0.5 else rng.randbytes(8)


def random_endpoint(rng: random.Random) -> tuple[str, int]:
    return (
        f"127.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        rng.randrange(1024, 65536),
    )


def hub_memory() -> int:
    """Live traced bytes allocated outside this script: what the hub, the medium and the
    router's station hold (the rows this script keeps would otherwise show as growth)."""
    snapshot = tracemalloc.take_snapshot().filter_traces((tracemalloc.Filter(False, __file__),))
    return sum(stat.size for stat in snapshot.statistics("filename"))


def tables(hub: MediumHub, router: StationPort) -> dict[str, int]:
    medium = hub.medium
    reassembly = router.station.reassembler.snapshot()
    return {
        "stations": len(medium.nodes()),
        "addresses": len(getattr(medium, "_owner", {})),
        "links": len(medium.links.states()),
        "open": int(reassembly["open_datagrams"]),  # type: ignore[call-overload]
        "buffered": int(reassembly["buffered_bytes"]),  # type: ignore[call-overload]
        "queued": sum(medium.queue_length(n) for n in medium.nodes()),
    }


async def flood(kind: str, frames: int, guests: int, seed: int) -> list[dict[str, Any]]:
    gc.collect()
    tracemalloc.start()
    base = hub_memory()
    hub = MediumHub(config(guests))
    await hub.open(("127.0.0.1", 0))
    router = StationPort(hub.config, lambda frame: transmit(frame), lambda packet: None)
    transmit = hub.attach_local(
        "br1", (router.config.short_addr, router.config.ext_addr), router.receive_frame
    )
    rng = random.Random(seed)
    one = random_endpoint(rng)
    rows: list[dict[str, Any]] = []
    raised = 0
    step = max(1, frames // 10)
    started = time.process_time()
    try:
        for sent in range(1, frames + 1):
            try:  # asyncio would log an exception of the callback and go on: so do we
                if kind == "hellos":
                    hello = zep.encode_hello(rng.randbytes(8))
                    hub.datagram_received(hello, random_endpoint(rng))
                else:
                    data = first_fragment(rng, random_source(rng))
                    hub.datagram_received(data, one if kind == "sources" else random_endpoint(rng))
            except Exception:
                raised += 1
            if sent % 100 == 0:
                await asyncio.sleep(0)  # the event loop runs as between datagrams in a router
            if sent % step == 0 or sent == frames:
                # Let the medium put what it admitted on the air (virtual time runs with the
                # loop's clock): run it to its next idle point at once.
                while (t := hub.medium.next_event_time()) is not None:
                    hub.medium.run(t)
                gc.collect()
                rows.append(
                    {
                        "frames": sent,
                        "kib": (hub_memory() - base) / 1024,
                        **tables(hub, router),
                    }
                )
        cpu = time.process_time() - started
    finally:
        hub.close()
        tracemalloc.stop()
    refused = dict(hub.dropped)
    if raised:
        refused["(exception raised by the hub)"] = raised
    rows.append({"refused": refused, "cpu_s": cpu})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000, help="datagrams per flood")
    parser.add_argument("--guests", type=int, default=16, help="the PAN's guest_stations")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    limit_stations = 1 + PLANNED + args.guests
    ok = True
    print(
        f"MediumHub with the router's station, {PLANNED} planned things, guest_stations "
        f"{args.guests}; {args.frames:,} datagrams per flood (tracemalloc: live Python memory)"
    )
    for kind in ("sources", "endpoints", "hellos"):
        rows = asyncio.run(flood(kind, args.frames, args.guests, args.seed))
        summary = rows.pop()
        print(f"\nflood '{kind}'  ({summary['cpu_s']:.1f} CPU-s)")
        print(
            f"{'frames':>8} {'KiB':>9} {'stations':>8} {'addresses':>9} {'links':>6} "
            f"{'open':>5} {'buffered':>8} {'queued':>6}"
        )
        for r in rows:
            print(
                f"{r['frames']:>8,} {r['kib']:>9.1f} {r['stations']:>8} {r['addresses']:>9} "
                f"{r['links']:>6} {r['open']:>5} {r['buffered']:>8} {r['queued']:>6}"
            )
        refused = ", ".join(f"{c} {n:,}" for c, n in sorted(summary["refused"].items()))
        print(f"refused: {refused or 'nothing'}")
        last = rows[-1]
        bounded = (
            last["stations"] <= limit_stations
            and last["addresses"] <= 2 * limit_stations
            and last["links"] <= limit_stations * (limit_stations - 1)
            and last["buffered"] <= hub_total_bytes()
        )
        if not bounded:
            print(f"NOT BOUNDED: the tables exceed the PAN's {limit_stations} stations")
            ok = False
    return 0 if ok else 1


def hub_total_bytes() -> int:
    return int(getattr(config(0), "reassembly_buffer", 8 * 1280))  # (older code: the default)


if __name__ == "__main__":
    sys.exit(main())
