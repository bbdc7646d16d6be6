"""A USB dongle as a station of a PAN's medium: the radio bridge between the emulated PAN and
the air.

Frames the dongle receives from the air enter the medium as frames of the bridge's station
(named after the dongle, e.g. ``radio-0``); frames the medium delivers to that station (every
broadcast, and unicast frames for addresses the station owns: the medium learns the air nodes'
source addresses from their frames) leave through the dongle. ACK frames are not forwarded
either way: the dongle acknowledges and retries on the air itself, and the medium models the
emulated side's. The links from and to the bridge are lossless unless ``loss_model`` is on:
frames from the air crossed a real channel already.

The bridge runs in the process of the PAN's medium (the border router), next to the hub.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from testbed.node.radio import mac
from testbed.node.radio.dongle import Dongle
from testbed.node.radio.frontend import MediumHub
from testbed.node.radio.links import LinkConfig


class RadioBridge:
    def __init__(self, hub: MediumHub, name: str, path: str, loss_model: bool = False) -> None:
        self.hub = hub
        self.name = name
        self.loss_model = loss_model
        self.dongle = Dongle(path, self._from_air, self._lost)
        self.lost: str | None = None
        self.dropped: Counter[str] = Counter()
        self._transmit: Callable[[bytes], None] = lambda frame: None

    async def start(self) -> None:
        """Open and set up the dongle on the PAN's channel and PAN id, then join the medium."""
        self.dongle.open()
        try:
            # Promiscuous: the air's frames for emulated stations are not addressed to the
            # dongle. (So it does not acknowledge them either: air nodes see no ACK for
            # unicast frames to emulated stations and retry; see docs/radios.md.)
            await self.dongle.start(
                self.hub.config.channel, self.hub.config.pan_id, promiscuous=True
            )
        except Exception:
            self.dongle.close()
            raise
        self._transmit = self.hub.attach_local(self.name, (), self._to_air)
        if not self.loss_model:
            self.hub.set_links(LinkConfig(delivery=1.0), src=self.name)
            self.hub.set_links(LinkConfig(delivery=1.0), dst=self.name)

    def close(self) -> None:
        self.dongle.close()

    def _from_air(self, frame: bytes) -> None:
        if self.lost is not None:
            return
        if frame and frame[0] & 0x07 == mac.FRAME_ACK:
            self.dropped["ack-from-air"] += 1  # the air's own MAC exchange
            return
        self._transmit(frame)

    def _to_air(self, frame: bytes, at: float, sender: str | None = None) -> None:
        if frame and frame[0] & 0x07 == mac.FRAME_ACK:
            self.dropped["ack-to-air"] += (
                1  # the medium's model of an ACK: the dongle sends its own
            )
            return
        self.dongle.transmit(frame)

    def _lost(self, reason: str) -> None:
        self.lost = reason  # the medium keeps running; the station just falls silent

    def snapshot(self) -> dict[str, object]:
        return {**self.dongle.snapshot(), "station": self.name, "dropped": dict(self.dropped)}
