"""One group command against N unicast commands on the emulated 802.15.4 PAN.

    python bench/group.py [--members 1,5,10,20,50] [--loss 0,10,20] [--rounds 200]

"All luminaires off" reaches N members of a radio PAN from its border router, three ways:

- ``group``: one Group OSCORE group-mode request (signed, NON, No-Response) to ff05::fd,
  carried as broadcast frames: no MAC ACKs, no retries, no responses (testbed.node.coap.group).
- ``unicast``: one OSCORE request per member under its pairwise context (CON PUT), each
  answered by a protected 2.04: the way the backend commands a thing today.
- ``unicast-nr``: the same requests as NON with No-Response, no answer: the cheapest unicast.

Every datagram is real: protected by aiocoap with the testbed's contexts (pairwise contexts as
the trust center derives them, group context with ECDSA P-256 signatures), wrapped in IPv6/UDP
between the PAN's addresses, compressed and fragmented by the testbed's station
(RFC 6282/4944) and carried by the testbed's medium model (airtime at 250 kbit/s, MAC ACKs and
up to 3 retries for unicast). The figures are the medium's own counters: transmissions (data
frames on the air, retries included, ACKs apart), ACK frames and channel busy time.

With frame loss (``--loss``, independent per link and frame), ``delivered`` is the share of
members that reassembled the command, over ``--rounds`` rounds with seeds 0..rounds-1: a
broadcast has no MAC retries, so each member misses it with probability 1 - (1 - p)^k for k
fragments, where unicast's retries bring that down to about k * p^4.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiocoap
import cbor2
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

from testbed.node.coap import group
from testbed.node.coap.credentials import EdhocIdentity
from testbed.node.radio.addressing import BROADCAST, iid_from_lladdr
from testbed.node.radio.iphc import internet_checksum
from testbed.node.radio.links import LinkConfig
from testbed.node.radio.medium import Medium
from testbed.node.radio.medium_types import Delivery, MediumConfig
from testbed.node.radio.station import Station, StationConfig
from testbed.node.thing import contexts as store
from testbed.node.trust_center import contexts

PREFIX = bytes.fromhex("fd00000000000001")
OFF = cbor2.dumps({"on": False})
STATE = cbor2.dumps({"on": False, "level": 0})


def short(i: int) -> bytes:
    return (i + 1).to_bytes(2, "big")


def ext(i: int) -> bytes:
    return bytes.fromhex("02000000000000") + bytes((i + 1,))


def address(i: int) -> bytes:
    return PREFIX + iid_from_lladdr(short(i))


def udp6(src: bytes, dst: bytes, payload: bytes) -> bytes:
    length = 8 + len(payload)
    body = struct.pack("!HHHH", 5683, 5683, length, 0) + payload
    pseudo = src + dst + struct.pack("!IxxxB", length, 17)
    body = body[:6] + (internet_checksum(pseudo + body) or 0xFFFF).to_bytes(2, "big") + body[8:]
    return struct.pack("!IHBB", 6 << 28, length, 17, 64) + src + dst + body


def finish(message: aiocoap.Message, mtype: Type) -> bytes:
    message.mtype = mtype
    message.mid = secrets.randbits(16)
    if message.code.is_request():
        message.token = secrets.token_bytes(4)
    return bytes(message.encode())


@dataclass
class Datagrams:
    """The UDP payloads one command costs: what the router sends, what each member answers."""

    group: bytes
    unicast: list[tuple[bytes, bytes]]  # (request, response) per member
    unicast_nr: list[bytes]


def datagrams(members: int, workdir: Path) -> Datagrams:
    tc, backend = EdhocIdentity.generate(b"\x01"), EdhocIdentity.generate(b"\x02")
    group_id, secret, salt = contexts.fresh_group()
    key = group.GroupKey(group_id, secret, salt, 1)
    sender = group.commander(
        key, backend.private_key, backend.credential.encoded, tc.credential.encoded
    )
    group_dgram = group.protect(sender, group.command("light", OFF))
    unicast: list[tuple[bytes, bytes]] = []
    unicast_nr: list[bytes] = []
    for index in range(1, members + 1):
        master, msalt = contexts.fresh_keys()
        grant = contexts.thing_view(index, 1, master, msalt)
        thing = store.PersistentContext(store.write_context(workdir / "thing", grant))
        peer = store.PersistentContext(store.write_context(workdir / "backend", grant.mirrored()))
        for confirmable in (True, False):
            request = aiocoap.Message(
                code=Code.PUT, uri="coap://[fd00::1]/light", payload=OFF, content_format=60
            )
            if not confirmable:
                request.opt.no_response = group.NO_RESPONSE_ALL
            outer, _ = peer.protect(request)
            wire = finish(outer, Type.CON if confirmable else Type.NON)
            _plain, request_id = thing.unprotect(aiocoap.Message.decode(wire))
            if not confirmable:
                unicast_nr.append(wire)
                continue
            response = aiocoap.Message(code=Code.CHANGED, payload=STATE, content_format=60)
            protected, _ = thing.protect(response, request_id)
            unicast.append((wire, finish(protected, Type.ACK)))
        thing.close()
        peer.close()
    return Datagrams(group_dgram, unicast, unicast_nr)


@dataclass
class Figures:
    frames: int = 0  # data frames on the air, retries included
    acks: int = 0
    airtime_ms: float = 0.0
    delivered: int = 0  # members that reassembled the command
    offered: int = 0


def run(mode: str, d: Datagrams, members: int, loss: float, seed: int) -> Figures:
    medium = Medium(MediumConfig(seed=seed, default_link=LinkConfig(delivery=1.0 - loss)))
    stations = [Station(StationConfig(ext(i), short(i), seed=i)) for i in range(members + 1)]
    for i in range(members + 1):
        medium.attach(f"n{i}", ext(i), short(i))
    router, t = stations[0], 0.0
    got: set[int] = set()

    def pump() -> list[tuple[int, bytes]]:
        out = []
        for ev in medium.run_all():
            if isinstance(ev, Delivery):
                pkt = stations[int(ev.dst[1:])].receive(ev.frame, ev.time)
                if pkt is not None:
                    out.append((int(ev.dst[1:]), pkt))
        return out

    if mode == "group":
        mcast = ipaddress.IPv6Address(group.ALL_COAP_NODES_SITE).packed
        for frame in router.send(udp6(address(0), mcast, d.group), BROADCAST):
            medium.submit("n0", frame, t)
        got |= {rx for rx, _ in pump() if rx != 0}
    else:
        for m in range(1, members + 1):
            if mode == "unicast":
                request, response = d.unicast[m - 1]
            else:
                request, response = d.unicast_nr[m - 1], b""
            for frame in router.send(udp6(address(0), address(m), request), short(m)):
                medium.submit("n0", frame, medium.now)
            if any(rx == m for rx, _ in pump()):
                got.add(m)
                if response:
                    for frame in stations[m].send(udp6(address(m), address(0), response), short(0)):
                        medium.submit(f"n{m}", frame, medium.now)
                    pump()
    snap: Any = medium.snapshot()
    nodes = snap["nodes"].values()
    return Figures(
        frames=sum(n["transmissions"] for n in nodes),
        acks=sum(n["acks_sent"] for n in nodes),
        airtime_ms=snap["channel"]["busy_s"] * 1e3,
        delivered=len(got),
        offered=members,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="1,5,10,20,50")
    parser.add_argument("--loss", default="0,10,20", help="frame loss per link, percent")
    parser.add_argument("--rounds", type=int, default=200, help="rounds per lossy figure")
    args = parser.parse_args()
    sizes = [int(n) for n in args.members.split(",")]
    losses = [float(p) / 100 for p in args.loss.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        d = datagrams(max(sizes), Path(tmp))
    print(
        f"datagram bytes: group {len(d.group)} (signed, group mode); unicast request "
        f"{len(d.unicast[0][0])}, response {len(d.unicast[0][1])}; unicast NON request "
        f"{len(d.unicast_nr[0])}"
    )
    print()
    print(
        f"{'members':>7} {'loss %':>6} {'mode':<10} {'frames':>8} {'acks':>7} "
        f"{'airtime ms':>11} {'delivered %':>11}"
    )
    for members in sizes:
        for loss in losses:
            rounds = 1 if loss == 0 else args.rounds
            for mode in ("group", "unicast", "unicast-nr"):
                total = Figures()
                for seed in range(rounds):
                    f = run(mode, d, members, loss, seed)
                    total.frames += f.frames
                    total.acks += f.acks
                    total.airtime_ms += f.airtime_ms
                    total.delivered += f.delivered
                    total.offered += f.offered
                print(
                    f"{members:>7} {loss * 100:>6.0f} {mode:<10} {total.frames / rounds:>8.1f} "
                    f"{total.acks / rounds:>7.1f} {total.airtime_ms / rounds:>11.2f} "
                    f"{100 * total.delivered / total.offered:>11.1f}"
                )


if __name__ == "__main__":
    main()
