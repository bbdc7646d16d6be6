"""A PAN in one process for tests and benchmarks: stations attached to one medium, frames
handed from the medium's deliveries to the receiving station, the way the UDP front end will."""

from __future__ import annotations

from dataclasses import dataclass, field

from testbed.contracts.radio import ReassemblyLimits
from testbed.node.radio.links import LinkConfig
from testbed.node.radio.medium import Medium
from testbed.node.radio.medium_types import Delivery, MediumConfig, MediumEvent, TxStatus
from testbed.node.radio.station import Station, StationConfig


def ext_of(i: int) -> bytes:
    return bytes.fromhex("02000000000000") + bytes((i + 1,))


def short_of(i: int) -> bytes:
    return (i + 1).to_bytes(2, "big")


@dataclass
class Pan:
    n: int = 2
    seed: int = 0
    retries: int = 3
    default: LinkConfig = field(default_factory=LinkConfig)
    reassembly: ReassemblyLimits = field(default_factory=ReassemblyLimits)
    queue_limit: int = 128
    record_air: bool = False

    def __post_init__(self) -> None:
        self.medium = Medium(
            MediumConfig(
                seed=self.seed,
                max_frame_retries=self.retries,
                queue_limit=self.queue_limit,
                default_link=self.default,
                record_air=self.record_air,
            )
        )
        self.stations: dict[str, Station] = {}
        for i in range(self.n):
            name = f"n{i}"
            self.stations[name] = Station(
                StationConfig(ext_of(i), short_of(i), reassembly=self.reassembly, seed=i)
            )
            self.medium.attach(name, ext_of(i), short_of(i))
        self.received: list[tuple[float, str, bytes]] = []
        self.events: list[MediumEvent] = []

    def send(self, src: str, dst: str | None, packet: bytes, at: float) -> int:
        """Queue ``packet`` from ``src`` to ``dst`` (None: broadcast); returns its frame count."""
        lladdr = self.stations[dst].lladdr if dst else b"\xff\xff"
        frames = self.stations[src].send(packet, lladdr)
        for frame in frames:
            assert self.medium.submit(src, frame, at) is None
        return len(frames)

    def run(self, until: float | None = None) -> list[MediumEvent]:
        events = self.medium.run_all() if until is None else self.medium.run(until)
        for ev in events:
            if isinstance(ev, Delivery):
                pkt = self.stations[ev.dst].receive(ev.frame, ev.time)
                if pkt is not None:
                    self.received.append((ev.time, ev.dst, pkt))
        self.events += events
        return events

    def statuses(self) -> list[TxStatus]:
        return [e for e in self.events if isinstance(e, TxStatus)]
