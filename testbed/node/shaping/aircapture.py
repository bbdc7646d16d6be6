"""``capture``: a radio PAN's transmissions, as the medium in the border router puts them on air.

    capture {pan?, duration: seconds (0 < d <= 300), max_frames?: 1..200000, node?}
        -> {pan, frames, truncated, duration, pcap_b64, context0, node, devices}

The pcap holds one IPv6/UDP/ZEP v2 datagram per transmission (data frames, retries and MAC
ACKs; LINKTYPE_RAW), from the sender's carrier endpoint (address and UDP port: the packed
things of a thing host share its carrier address, each sends from its own port) to the
medium's (the router's own transmissions go to ff02::1, "the air"), stamped with the wall time
of the transmission's start. ``devices`` names the ZEP device id of each sender. With ``node``
only that station's air is kept: the frames it sent, the frames addressed to it (its short or
extended address) and the ACKs of both; broadcasts from others are left out.

Wireshark dissects it as ZEP -> IEEE 802.15.4 -> 6LoWPAN -> IPv6 -> UDP -> CoAP (and
OSCORE/EDHOC inside); ``context0`` is the PAN prefix IPHC compresses against (tshark:
``-o 6lowpan.context0:PREFIX``), without which addresses are shown only partly.

How: the medium already yields ``OnAir`` events when its config says ``record_air``; the hub
ignores every event but deliveries. For the duration we switch ``record_air`` on and wrap the
medium's ``run`` on that one instance to copy OnAir events aside; both are undone afterwards.
(A hook on MediumHub would be the cleaner seam; the radio package is not this module's to
change, and wrapping one instance keeps the medium itself untouched.)
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from testbed.node.errors import ActionError
from testbed.node.radio import mac, zep
from testbed.node.radio.attach import RadioAttachment
from testbed.node.radio.errors import MalformedError
from testbed.node.radio.frontend import MediumHub
from testbed.node.radio.medium_types import MediumEvent, OnAir
from testbed.node.radio.pcap import LINKTYPE_RAW, PcapWriter, zep_udp

Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_DURATION = 300.0
DEFAULT_MAX_FRAMES = 50_000
AIR = ipaddress.IPv6Address("ff02::1").packed


@dataclasses.dataclass(frozen=True, slots=True)
class AirFrame:
    time: float  # wall clock, start of the transmission
    node: str
    frame: bytes


async def record(hub: MediumHub, duration: float, limit: int) -> tuple[list[AirFrame], bool]:
    """The transmissions of the next ``duration`` seconds (at most ``limit``; True: cut)."""
    medium = hub.medium
    frames: list[AirFrame] = []
    cut = False
    wall_zero = time.time() - hub.now()  # wall time of the medium's virtual time 0
    original_config = medium.config
    original_run = medium.run

    def run(until: float) -> list[MediumEvent]:
        nonlocal cut
        events = original_run(until)
        for event in events:
            if isinstance(event, OnAir):
                if len(frames) < limit:
                    frames.append(AirFrame(wall_zero + event.start, event.node, event.frame))
                else:
                    cut = True
        return events

    medium.config = dataclasses.replace(original_config, record_air=True)
    setattr(medium, "run", run)  # noqa: B010 - one instance, undone below
    try:
        await asyncio.sleep(duration)
    finally:
        vars(medium).pop("run", None)
        medium.config = dataclasses.replace(medium.config, record_air=original_config.record_air)
    return frames, cut


def _endpoint(endpoint: str) -> tuple[bytes, int] | None:
    """ "[fd00::5]:17755" -> (16 bytes, 17755)."""
    host, _, port = endpoint.rpartition(":")
    try:
        return ipaddress.IPv6Address(host.strip("[]")).packed, int(port or zep.ZEP_PORT)
    except ValueError:
        return None


def for_station(frames: list[AirFrame], node: str, addresses: frozenset[bytes]) -> list[AirFrame]:
    """The frames ``node`` sent or that were addressed to it, each with the ACK that followed
    it (an ACK carries no address: it belongs to the frame before it on the channel)."""
    kept: list[AirFrame] = []
    previous = False  # was the last data or command frame kept?
    for f in frames:
        try:
            decoded = mac.decode(f.frame)
        except MalformedError:
            previous = f.node == node
            if previous:
                kept.append(f)
            continue
        if decoded.frame_type == mac.FRAME_ACK:
            if previous or f.node == node:
                kept.append(f)
            continue
        previous = f.node == node or (decoded.dst is not None and decoded.dst in addresses)
        if previous:
            kept.append(f)
    return kept


def to_pcap(
    frames: list[AirFrame], hub: MediumHub, router: str, ids: dict[str, int] | None = None
) -> bytes:
    """``ids``: sender -> ZEP device id, filled in here (the router is 0)."""
    config = hub.config
    medium_address = ipaddress.IPv6Address(config.medium).packed
    carriers = {name: _endpoint(ep) for name, ep in hub.endpoints().items()}
    ids = {router: 0} if ids is None else ids
    ids.setdefault(router, 0)
    out = io.BytesIO()
    writer = PcapWriter(out, LINKTYPE_RAW)
    for seq, f in enumerate(frames):
        device = ids.setdefault(f.node, len(ids))
        datagram = zep.encode_data(
            f.frame,
            channel=config.channel,
            device_id=device,
            seq=seq,
            timestamp=zep.ntp_timestamp(f.time),
        )
        port = zep.ZEP_PORT
        if f.node == router:
            src, dst = medium_address, AIR
        else:
            src, port = carriers.get(f.node) or (medium_address, port)
            dst = medium_address
        writer.write(zep_udp(src, dst, datagram, port), f.time)
    return out.getvalue()


class AirCapture:
    def __init__(self, radio: RadioAttachment, router: str) -> None:
        self.radio = radio
        self.router = router
        self._busy: set[str] = set()

    def actions(self) -> Mapping[str, Action]:
        return {"capture": self._capture}

    def running(self) -> list[str]:
        return sorted(self._busy)

    async def _capture(self, params: dict[str, Any]) -> dict[str, Any]:
        pans = {name: pan for name, pan in self.radio.pans.items() if pan.hub is not None}
        name = params.get("pan") or (next(iter(pans)) if len(pans) == 1 else None)
        if name not in pans:
            raise ActionError(
                f"no radio PAN {name!r} on this router", f"one of: {', '.join(pans) or 'none'}"
            )
        duration = params.get("duration", 10.0)
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            raise ActionError("duration must be a number of seconds")
        if not 0 < duration <= MAX_DURATION:
            raise ActionError(f"duration must lie in (0, {MAX_DURATION:g}] seconds")
        limit = params.get("max_frames", DEFAULT_MAX_FRAMES)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 200_000:
            raise ActionError("max_frames must be an integer in 1..200000")
        node = params.get("node")
        hub = pans[name].hub
        assert hub is not None
        addresses = hub.stations.addresses(node) if isinstance(node, str) else frozenset()
        if node is not None and not addresses:
            raise ActionError(
                f"no station {node!r} on PAN {name}", "link-show lists the medium's nodes"
            )
        if name in self._busy:
            raise ActionError(f"a capture of PAN {name} is already running", "wait for it")
        self._busy.add(name)
        try:
            frames, cut = await record(hub, float(duration), limit)
        finally:
            self._busy.discard(name)
        if node is not None:
            frames = for_station(frames, node, addresses)
        devices: dict[str, int] = {}
        pcap = to_pcap(frames, hub, self.router, devices)
        prefix = ipaddress.IPv6Interface(hub.config.address).network
        return {
            "pan": name,
            "frames": len(frames),
            "truncated": cut,
            "duration": duration,
            "context0": str(prefix),
            "node": node,
            "devices": devices,
            "pcap_b64": base64.b64encode(pcap).decode("ascii"),
        }
