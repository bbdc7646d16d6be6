"""A node's end of the PAN: IPv6 packets in, 802.15.4 frames out, and back.

This is what a thing or the border router runs behind its TUN device (glue: port.py,
frontend.py, attach.py): ``send`` compresses and fragments one packet into complete MAC frames (FCS
included) with fresh sequence numbers and one datagram tag; ``receive`` filters, de-duplicates
and reassembles frames. MAC acknowledgements and retransmissions are not done here: the medium
emulates them for our stations (see medium.py), so a station hands each frame over exactly once.

Counters (``snapshot``): packets and frames each way, the fragments-per-packet histogram, drops
by cause (garbled frames with their reason, frames for other nodes, MAC duplicates, and the
reassembler's buffer-full / reassembly-timeout / overlap).
"""

from __future__ import annotations

import random
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from testbed.contracts.radio import ReassemblyLimits
from testbed.node.radio import mac
from testbed.node.radio.addressing import BROADCAST, check_lladdr
from testbed.node.radio.errors import MalformedError
from testbed.node.radio.frag import fragment
from testbed.node.radio.iphc import NO_CONTEXTS, Contexts
from testbed.node.radio.reassembly import DUPLICATE, GARBLED, Reassembler

# RIOT's default PAN ID (CONFIG_IEEE802154_DEFAULT_PANID): a RIOT native node joins unchanged.
DEFAULT_PAN_ID = 0x0023
NOT_FOR_US = "not-for-us"
NOT_DATA = "not-data"
# Remembered (source, sequence) pairs for duplicate detection; bounded so that spoofed sources
# cannot grow it.
_SEEN_SOURCES = 256


@dataclass(frozen=True)
class StationConfig:
    ext_addr: bytes
    short_addr: bytes | None = None  # when set, frames carry it as source (shorter headers)
    pan_id: int = DEFAULT_PAN_ID
    contexts: Contexts = field(default_factory=lambda: NO_CONTEXTS)
    reassembly: ReassemblyLimits = field(default_factory=ReassemblyLimits)
    seed: int = 0  # first sequence number and datagram tag, like a radio's random start

    def __post_init__(self) -> None:
        if len(check_lladdr(self.ext_addr)) != 8:
            raise ValueError("ext_addr must have 8 bytes")
        if self.short_addr is not None and len(check_lladdr(self.short_addr)) != 2:
            raise ValueError("short_addr must have 2 bytes")


class Station:
    def __init__(self, config: StationConfig) -> None:
        self.config = config
        self.lladdr = config.short_addr or config.ext_addr
        rng = random.Random(config.seed)
        self._seq = rng.randrange(256)
        self._tag = rng.randrange(65536)
        self.reassembler = Reassembler(config.reassembly, config.contexts)
        self._last_seq: OrderedDict[bytes, int] = OrderedDict()
        self.packets_sent = 0
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_received = 0
        self.acks_received = 0
        self.fragments_per_packet: Counter[int] = Counter()
        self.dropped: Counter[str] = Counter()
        self.garbled: Counter[str] = Counter()

    def addressed_to_me(self, dst: bytes | None) -> bool:
        return dst is not None and (
            dst == BROADCAST or dst == self.config.ext_addr or dst == self.config.short_addr
        )

    def send(self, packet: bytes | bytearray | memoryview, dst: bytes) -> list[bytes]:
        """MAC frames for one IPv6 packet to link-layer address ``dst`` (ACK requested unless
        broadcast). Raises EncodeError for what cannot be sent (not IPv6, too large)."""
        src = self.lladdr
        payloads = fragment(
            packet,
            src,
            dst,
            max_payload=mac.max_payload(len(src), len(dst)),
            tag=self._tag,
            contexts=self.config.contexts,
        )
        self._tag = (self._tag + 1) & 0xFFFF
        frames = []
        for payload in payloads:
            frames.append(
                mac.encode_data(
                    seq=self._seq, pan_id=self.config.pan_id, src=src, dst=dst, payload=payload
                )
            )
            self._seq = (self._seq + 1) & 0xFF
        self.packets_sent += 1
        self.frames_sent += len(frames)
        self.bytes_sent += sum(map(len, frames))
        self.fragments_per_packet[len(frames)] += 1
        return frames

    def receive(
        self, frame: bytes | bytearray | memoryview, now: float, sender: str | None = None
    ) -> bytes | None:
        """One received PSDU. Returns a complete IPv6 packet when this frame completed one.
        ``sender``: the station the medium says sent it (reassembly budgets are charged to it
        rather than to the frame's claimed source, where it is given)."""
        try:
            f = mac.decode(frame)
        except MalformedError as exc:
            self.dropped[GARBLED] += 1
            self.garbled[exc.reason] += 1
            return None
        if f.frame_type == mac.FRAME_ACK:
            self.acks_received += 1
            return None
        if f.frame_type != mac.FRAME_DATA:
            self.dropped[NOT_DATA] += 1
            return None
        if f.dst_pan not in (self.config.pan_id, mac.BROADCAST_PAN) or not self.addressed_to_me(
            f.dst
        ):
            self.dropped[NOT_FOR_US] += 1
            return None
        self.frames_received += 1
        if f.ack_request and f.src is not None:
            # A retransmission after a lost ACK repeats the sequence number: MAC-level
            # duplicate, dropped here as a real MAC would.
            if self._last_seq.get(f.src) == f.seq:
                self.dropped[DUPLICATE] += 1
                return None
            self._last_seq[f.src] = f.seq
            self._last_seq.move_to_end(f.src)
            if len(self._last_seq) > _SEEN_SOURCES:
                self._last_seq.popitem(last=False)
        return self.reassembler.receive(f.payload, f.src, f.dst, now, sender)

    def expire(self, now: float) -> int:
        return self.reassembler.expire(now)

    def dropped_frames(self) -> dict[str, int]:
        """Frames dropped, by cause (the station's own and the reassembler's fragments)."""
        dropped = Counter(self.dropped)
        dropped.update(self.reassembler.dropped_fragments)
        return dict(dropped)

    def snapshot(self) -> dict[str, object]:
        return {
            "packets_sent": self.packets_sent,
            "frames_sent": self.frames_sent,
            "bytes_sent": self.bytes_sent,
            "frames_received": self.frames_received,
            "acks_received": self.acks_received,
            "packets_received": self.reassembler.packets,
            "fragments_per_packet": dict(sorted(self.fragments_per_packet.items())),
            "dropped_frames": self.dropped_frames(),
            "dropped_packets": dict(self.reassembler.dropped_packets),
            "garbled": dict(self.garbled + self.reassembler.garbled),
            "reassembly": self.reassembler.snapshot(),
        }
