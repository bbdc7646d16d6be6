"""Packed things hear group requests: a CoAP server bound to a unicast address, with groups to
join, gets a socket of its own per group (testbed.node.coap.transport.create_context).

In a network namespace of its own: two servers bound to two addresses of one TUN (two packmates
of a thing host) each receive one multicast request to ff05::fd, and a unicast request still
reaches only the server it is addressed to. An answer to the group request leaves each server
from its own address (its packmates share the TUN: the kernel would pick any of theirs)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.node.radio.namespace import run_in_namespace

ROOT = Path(__file__).resolve().parents[4]

SCRIPT = r"""
import asyncio, socket, subprocess
import aiocoap, aiocoap.resource as r
from testbed.node.coap.transport import create_context

def sh(*a): subprocess.run(a, check=True)
sh("ip", "tuntap", "add", "pan0", "mode", "tun")
sh("ip", "link", "set", "pan0", "multicast", "on", "up")
for a in ("fd00::1", "fd00::2", "fd00::3"):
    sh("ip", "-6", "addr", "add", a + "/64", "dev", "pan0", "nodad")

class Light(r.Resource):
    def __init__(self, seen, who):
        super().__init__()
        self.seen, self.who = seen, who
    async def render_put(self, request):
        self.seen.append((self.who, request.payload))
        return aiocoap.Message(code=aiocoap.CHANGED)

async def main():
    seen = []
    servers = []
    for who in ("fd00::1", "fd00::2"):
        site = r.Site()
        site.add_resource(["light"], Light(seen, who))
        servers.append(await create_context(
            site=site, bind=(who, 5683), multicast=[("ff05::fd", "pan0")]))
    # fd00::3 serves unicast only: it joined no group, it must not hear the group.
    site = r.Site()
    site.add_resource(["light"], Light(seen, "fd00::3"))
    servers.append(await create_context(site=site, bind=("fd00::3", 5683)))
    sender = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sender.bind(("fd00::3", 40000))
    sender.setblocking(False)
    sender.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex("pan0"))
    sender.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
    request = aiocoap.Message(code=aiocoap.PUT, uri_path=("light",), payload=b"group")
    request.mtype, request.mid, request.token = aiocoap.NON, 7, b"\x01"
    sender.sendto(request.encode(), ("ff05::fd", 5683))
    replies = []
    for _ in range(200):
        try:
            data, peer = sender.recvfrom(2000)
            replies.append((peer[0], aiocoap.Message.decode(data).code))
        except BlockingIOError:
            await asyncio.sleep(0.05)
        if len(seen) >= 2 and len(replies) >= 2:
            break
    # Each answers from its own address, not from whichever the kernel would pick.
    assert sorted(replies) == [("fd00::1", aiocoap.CHANGED), ("fd00::2", aiocoap.CHANGED)], replies
    client = await create_context()
    answer = await client.request(aiocoap.Message(
        code=aiocoap.PUT, uri="coap://[fd00::2]/light", payload=b"unicast")).response
    await asyncio.sleep(0.2)
    assert answer.code == aiocoap.CHANGED, answer
    assert sorted(seen) == [
        ("fd00::1", b"group"), ("fd00::2", b"group"), ("fd00::2", b"unicast")], seen
    for context in (*servers, client):
        await context.shutdown()
    print("ok")

asyncio.run(main())
"""


def test_each_unicast_bound_server_gets_its_copy_of_a_group_request() -> None:
    run_in_namespace(SCRIPT, ROOT)
