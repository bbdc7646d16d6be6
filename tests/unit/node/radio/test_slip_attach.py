"""A SLIP uplink as the border router's radio attachment starts it from the plan's attribute
(``radios:`` with ``protocol: slip``), in a network namespace of its own (unshare): the uplink's
TUN carries the routed prefix next to the PAN's TUN, a board on a pseudo-terminal gets its
prefix and pings the router's PAN address; when the board goes (the pseudo-terminal closed) the
router logs ``radio.dongle_lost`` once, its state and ``testbed_radio_dongle_refused_total``
say ``line-lost``, and the PAN runs on; plugged in again under the same name, its line is
reopened (``radio.dongle_back``) and the board is served again. A board that is not there at
start is logged and counted while its prefix stays routed. Skipped where namespaces or
/dev/net/tun are not available."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.unit.node.radio.namespace import run_in_namespace

ROOT = Path(__file__).resolve().parents[4]

SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, os, pty, subprocess, tempfile
    from prometheus_client import CollectorRegistry, generate_latest
    from testbed.contracts.node_config import NodeConfig
    from testbed.node.logs import EventLog
    from testbed.node.radio import slip
    from testbed.node.radio.attach import RadioAttachment
    from testbed.contracts.radio import RadioPanConfig
    from tests.unit.node.radio.packets import echo, ip6, is_echo

    async def until(check, timeout=5.0):
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.01)

    class Events(logging.Handler):
        def __init__(self):
            super().__init__()
            self.events = []
        def emit(self, record):
            self.events.append((record.msg, getattr(record, "fields", {})))

    async def main():
        master, slave = pty.openpty()
        os.set_blocking(master, False)
        board_path = os.path.join(tempfile.mkdtemp(), "board")  # as /dev/serial/by-id/...
        os.symlink(os.ttyname(slave), board_path)
        pan = RadioPanConfig(
            pan="floor1", address="fd00:0:0:10::ff:fe00:10/64", short=0x10, medium="::1",
            radios=[{"device": board_path, "protocol": "slip", "station": "board-1",
                     "prefix": "fd00:0:0:200::/64"},
                    {"device": "/dev/nonexistent-board", "protocol": "slip",
                     "station": "board-2", "prefix": "fd00:0:0:201::/64"}],
        )
        config = NodeConfig(run="r", building="b", node="br1", role="border_router",
                            interfaces=(), attributes={pan.key: pan.to_attribute()})
        logger = logging.getLogger("slip-attach")
        events = Events()
        logger.addHandler(events)
        logger.setLevel(logging.INFO)
        radio = RadioAttachment.for_node(config, EventLog(logger))
        registry = CollectorRegistry()
        radio.register_metrics(registry)
        await radio.start()
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        assert "lowpan0" in links and "slip0-0" in links, links
        routes = subprocess.run(["ip", "-6", "route"], capture_output=True, text=True).stdout
        assert "fd00:0:0:200::/64 dev slip0-0" in routes, routes
        # A board that is not there: logged, counted, its prefix still routed to its TUN.
        assert "fd00:0:0:201::/64 dev slip0-1" in routes, routes
        failed = [f for e, f in events.events if e == "radio.dongle_failed"]
        assert len(failed) == 1 and "board-2: cannot open" in failed[0]["error"], failed

        decoder, line = slip.SlipDecoder(), []
        loop = asyncio.get_running_loop()
        loop.add_reader(master, lambda: line.extend(decoder.feed(os.read(master, 4096))))
        os.write(master, slip.encode(b"?P"))
        await until(lambda: b"!P" + ip6("fd00:0:0:200::")[:8] in line)
        board, router = ip6("fd00:0:0:200::2"), ip6("fd00:0:0:10::ff:fe00:10")
        os.write(master, slip.encode(echo(board, router, 128, 1, 1, b"\\xc0" * 100)))
        await until(lambda: any(is_echo(p, 129) for p in line))
        state = radio.snapshot()["floor1"]["radios"][0]
        assert state["protocol"] == "slip" and state["packets_from_line"] == 1, state

        loop.remove_reader(master)
        os.close(master)
        await until(lambda: any(e == "radio.dongle_lost" for e, _ in events.events))
        await asyncio.sleep(1.2)  # two more housekeeping rounds: still reported once
        lost = [f for e, f in events.events if e == "radio.dongle_lost"]
        assert len(lost) == 1 and lost[0]["radio"] == "board-1", events.events
        state = radio.snapshot()["floor1"]["radios"][0]
        assert state["lost"] and state["refused"]["line-lost"] == 1, state
        text = generate_latest(registry).decode()
        assert ('testbed_radio_dongle_refused_total{cause="line-lost",pan="floor1",'
                'radio="board-1"} 1.0') in text, text
        assert ('testbed_radio_dongle_refused_total{cause="open-failed",pan="floor1",'
                'radio="board-2"} 1.0') in text, text

        # Plugged in again (a new pseudo-terminal behind the same name): the line is reopened,
        # logged once, and the board is served again; lost again: reported again.
        os.close(slave)
        master, slave = pty.openpty()
        os.set_blocking(master, False)
        os.symlink(os.ttyname(slave), board_path + ".new")
        os.replace(board_path + ".new", board_path)
        await until(lambda: any(e == "radio.dongle_back" for e, _ in events.events), 10)
        decoder, line = slip.SlipDecoder(), []
        loop.add_reader(master, lambda: line.extend(decoder.feed(os.read(master, 4096))))
        os.write(master, slip.encode(b"?P"))
        await until(lambda: b"!P" + ip6("fd00:0:0:200::")[:8] in line)
        assert radio.snapshot()["floor1"]["radios"][0]["lost"] is None
        loop.remove_reader(master)
        os.close(master)
        await until(lambda: len([e for e, _ in events.events if e == "radio.dongle_lost"]) == 2)
        back = [f for e, f in events.events if e == "radio.dongle_back"]
        assert [f["radio"] for f in back] == ["board-1"], events.events  # board-2: not there
        await radio.stop()
        os.close(slave)
        print("ok")

    asyncio.run(main())
    """
)


def test_the_router_starts_a_slip_uplink_and_reports_its_loss() -> None:
    run_in_namespace(SCRIPT, ROOT)
