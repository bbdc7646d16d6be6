"""The SLIP uplink against the real kernel: a board played on the master side of a
pseudo-terminal speaks SLIP and IPv6 to the uplink, which routes it through the kernel of a
network namespace of its own (unshare) with forwarding on, as in the border router. A second
TUN stands for the backbone, so packets really cross the router (hop limit decremented) both
ways: the board pings a backbone host and is pinged by it, 600-byte payloads full of END and
ESC bytes included. The line's refusals (garbled SLIP, foreign source) and its loss (the
pseudo-terminal closed) are counted, the router runs on. Skipped where namespaces or
/dev/net/tun are not available."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.unit.node.radio.namespace import run_in_namespace

ROOT = Path(__file__).resolve().parents[4]

SCRIPT = textwrap.dedent(
    """
    import asyncio, ipaddress, os, pty, struct, subprocess
    from testbed.node.radio import slip
    from testbed.node.radio.iphc import internet_checksum
    from testbed.node.radio.slipuplink import SlipUplink
    from testbed.node.radio.tun import Tun

    # Self-contained (no tests/ import): it also runs inside the node image.
    def ip6(text):
        return ipaddress.IPv6Address(text).packed

    def echo(src, dst, kind, ident, seq, data):
        body = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + data
        pseudo = src + dst + struct.pack("!IxxxB", len(body), 58)
        csum = internet_checksum(pseudo + body).to_bytes(2, "big")
        head = struct.pack("!IHBB", 6 << 28, len(body), 58, 64)
        return head + src + dst + body[:2] + csum + body[4:]

    def is_echo(packet, kind):
        return len(packet) > 44 and packet[6] == 58 and packet[40] == kind

    BOARD, ROUTER, HOST = ip6("fd00:5::2"), ip6("fd00:5::1"), ip6("fd00:1::2")

    async def until(check, timeout=5.0):
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.01)

    async def main():
        if not os.environ.get("FORWARDING_SET"):  # a container gets it from Docker
            subprocess.run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"], check=True)
        master, slave = pty.openpty()
        os.set_blocking(master, False)
        lost = []
        uplink = SlipUplink("board-1", os.ttyname(slave), "fd00:5::/64", "sliptest0", lost.append)
        await uplink.start()
        backbone = []
        bb = Tun("bbtest0", backbone.append)
        await bb.open("fd00:1::1/64")
        decoder, line = slip.SlipDecoder(), []
        loop = asyncio.get_running_loop()
        loop.add_reader(master, lambda: line.extend(decoder.feed(os.read(master, 4096))))

        # The board asks for its prefix: tunslip6's answer.
        os.write(master, slip.encode(b"?P"))
        await until(lambda: b"!P" + ip6("fd00:5::")[:8] in line)

        # Board -> backbone host, forwarded by the router, and the reply back.
        data = bytes(range(256)) * 2 + b"\\xc0\\xdb" * 44  # 600 B with END and ESC bytes
        os.write(master, slip.encode(echo(BOARD, HOST, 128, 7, 1, data)))
        await until(lambda: any(is_echo(p, 128) for p in backbone))
        request = next(p for p in backbone if is_echo(p, 128))
        assert request[8:40] == BOARD + HOST and request[7] == 63, request[:40].hex()
        assert request[48:] == data
        bb.write(echo(HOST, BOARD, 129, 7, 1, data))
        await until(lambda: any(is_echo(p, 129) for p in line))
        reply = next(p for p in line if is_echo(p, 129))
        assert reply[8:40] == HOST + BOARD and reply[7] == 63 and reply[48:] == data

        # Backbone host -> board: the router forwards into the uplink, the board answers.
        bb.write(echo(HOST, BOARD, 128, 8, 1, data))
        await until(lambda: any(is_echo(p, 128) for p in line))
        request = next(p for p in line if is_echo(p, 128))
        assert request[8:40] == HOST + BOARD and request[48:] == data
        os.write(master, slip.encode(echo(BOARD, HOST, 129, 8, 1, data)))
        await until(lambda: any(is_echo(p, 129) for p in backbone))
        assert next(p for p in backbone if is_echo(p, 129))[48:] == data

        # The router itself answers the board (its address on the uplink).
        os.write(master, slip.encode(echo(BOARD, ROUTER, 128, 9, 1, b"hi")))
        await until(lambda: any(is_echo(p, 129) and p[8:24] == ROUTER for p in line))
        assert uplink.packets_from_line == 3 and uplink.prefix_requests == 1

        # Refused and counted: garbled SLIP, a frame that is not IPv6, a forged source.
        os.write(master, b"\\xc0\\xdb\\x41\\xc0" + slip.encode(b"\\x45\\x00\\x00\\x14"))
        os.write(master, slip.encode(echo(ip6("fd00:6::2"), HOST, 128, 1, 1, b"x")))
        os.write(master, slip.encode(b"\\rdebug line"))
        await until(lambda: uplink.refused["foreign-source"] == 1 and uplink.debug)
        assert uplink.refused["slip-bad-escape"] == 1 and uplink.refused["slip-not-ipv6"] == 1
        assert uplink.debug == ["debug line"] and uplink.packets_from_line == 3

        # Unplugged: the line ends; reported once, counted, packets for it refused, TUN stays.
        loop.remove_reader(master)
        os.close(master)
        await until(lambda: lost)
        assert uplink.refused["line-lost"] == 1 and uplink.lost
        bb.write(echo(HOST, BOARD, 128, 10, 1, b"gone"))
        await until(lambda: uplink.refused["closed"] >= 1)
        assert len(lost) == 1
        uplink.close()
        bb.close()
        os.close(slave)
        print("ok")

    asyncio.run(main())
    """
)


def test_a_board_on_a_pty_is_routed_through_the_uplink_both_ways() -> None:
    run_in_namespace(SCRIPT, ROOT)
