"""`radios:` of a PAN: the topology key, what the planner makes of it (the device passed into the
border router, the dongles in its radio attribute) and the PAN starting its bridges (with the
simulated ot-rcp behind a pseudo-terminal; a dongle that fails stays out, the PAN runs on)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from testbed.contracts.radio import RadioPanConfig, radio_pans
from testbed.errors import TopologyError
from testbed.node.radio.attach import _Pan
from testbed.plan.planner import make_plan
from testbed.topology import parse_topology
from tests.unit.node.radio.test_dongle import CHANNEL, PAN_ID, Air, frame, needs_rcp, rcp, until

__all__ = ["rcp"]  # the fixture, shared with test_dongle
ROOT = Path(__file__).parents[4]
RADIOS = """
    radios:
      - device: /dev/serial/by-id/usb-Nordic_nRF52840_Dongle-if00
        station: dongle-1
"""


def topology(extra: str = RADIOS, medium: str = "radio") -> str:
    text = (ROOT / "topologies" / "default.yaml").read_text()
    return text.replace("    medium: radio\n", f"    medium: {medium}\n" + extra.lstrip("\n"), 1)


def test_radios_plan_into_the_border_router() -> None:
    plan = make_plan(parse_topology(topology()), "t")
    br = next(n for n in plan.nodes if n.name == "br1")
    assert br.devices == ("/dev/serial/by-id/usb-Nordic_nRF52840_Dongle-if00",)
    [pan] = radio_pans(dict(br.config.attributes))
    assert pan.radios == [
        {
            "device": "/dev/serial/by-id/usb-Nordic_nRF52840_Dongle-if00",
            "protocol": "spinel",
            "station": "dongle-1",
            "loss_model": False,
        }
    ]
    assert all(n.devices == () for n in plan.nodes if n.name != "br1")
    # Without radios nothing changes (no key in the attribute, no device).
    plain = make_plan(parse_topology(topology("")), "t")
    br = next(n for n in plain.nodes if n.name == "br1")
    assert br.devices == () and "radios" not in dict(br.config.attributes)["radio-floor1"]


@pytest.mark.parametrize(
    ("extra", "medium", "message"),
    [
        (RADIOS, "bridge", "medium: radio only"),
        ("    radios:\n      - device: ttyACM0\n        station: d\n", "radio", "device"),
        ("    radios:\n      - device: /dev/ttyACM0\n        station: d\n        protocol: zb\n",
         "radio", "protocol"),
        ("    radios:\n      - device: /dev/a\n        station: d\n      - device: /dev/b\n"
         "        station: d\n", "radio", "station name of its own"),
    ],
)  # fmt: skip
def test_bad_radios_are_refused_with_the_key(extra: str, medium: str, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        parse_topology(topology(extra, medium))


def pan_config(device: str) -> RadioPanConfig:
    return RadioPanConfig(
        pan="floor1", address="fd00:0:0:1::ff:fe00:10/64", short=0x10, medium="::1",
        channel=CHANNEL, pan_id=PAN_ID, names={"0010": "br"},
        radios=[
            {"device": "/dev/nonexistent-dongle", "station": "gone", "protocol": "spinel"},
            {"device": device, "station": "dongle-1", "protocol": "spinel"},
        ],
    )  # fmt: skip


@needs_rcp
def test_the_pan_starts_its_dongles_and_runs_on_without_a_broken_one(
    rcp: tuple[str, Air, object],
) -> None:
    path, air, _ = rcp

    async def main() -> None:
        pan = _Pan("br1", pan_config(path), 0, hub=True)
        assert pan.hub is not None
        await pan.hub.open(("::1", 0))
        heard: list[bytes] = []
        pan.hub.attach_local("br1", (b"\x00\x10",), lambda f, t, _sender: heard.append(f))
        try:
            await pan._start_bridges()
            assert [b.name for b in pan.bridges] == ["dongle-1"]
            assert pan.radio_errors == [
                "gone: cannot open /dev/nonexistent-dongle: No such file or directory"
            ]
            air.send(frame(1, b"\x00\x22"))
            await until(lambda: heard)
            assert heard == [frame(1, b"\x00\x22")]
            snap = pan.snapshot()
            assert snap["radios"][0]["frames_received"] == 1 and snap["radio_errors"]
        finally:
            for bridge in pan.bridges:
                bridge.close()
            pan.hub.close()

    asyncio.run(main())
