"""A node's end of one radio PAN: IPv6 packets from its TUN become frames for the medium, frames
from the medium become packets for its TUN.

Wraps a ``Station`` (IPHC with the PAN /64 as context 0, RFC 4944 fragments, short addresses)
and adds what the station leaves to its caller:

- *which* link-layer destination: with no neighbour discovery on the medium, it follows from
  the IPv6 destination (radio.config's addressing convention): multicast -> broadcast, an
  address of the PAN /64 or link-local -> the address its IID was derived from, anything else
  -> the border router (things; the router itself only routes the PAN /64 into its TUN);
- *what not* to send: the kernel puts MLD reports, router solicitations/advertisements and
  redirects on a fresh interface; on a 250 kbit/s channel that noise would cost airtime and
  skew frame counts, and nothing in the PAN needs it (routes are static);
- airtime of what it sent, for metrics (one attempt per frame; the medium counts retries).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable

from testbed.contracts.radio import RadioPanConfig
from testbed.node.radio.addressing import BROADCAST, lladdr_for_ipv6
from testbed.node.radio.errors import EncodeError
from testbed.node.radio.iphc import IPV6_HEADER, Context
from testbed.node.radio.phy import airtime
from testbed.node.radio.station import Station, StationConfig

ICMPV6 = 58
HOP_BY_HOP = 0
# MLD query/report/done, MLDv2 report, RS, RA, redirect: link housekeeping we do statically.
NOISE_TYPES = {
    130: "mld",
    131: "mld",
    132: "mld",
    143: "mld",
    133: "rs",
    134: "ra",
    137: "redirect",
}
_LINK_LOCAL = b"\xfe\x80" + bytes(6)


def noise(packet: bytes) -> str | None:
    """The kind of kernel housekeeping ``packet`` is (filtered), None for real traffic."""
    nh, off = packet[6], IPV6_HEADER
    if nh == HOP_BY_HOP and len(packet) >= off + 2:  # MLD always carries Router Alert
        nh, off = packet[off], off + (packet[off + 1] + 1) * 8
    if nh == ICMPV6 and len(packet) > off:
        return NOISE_TYPES.get(packet[off])
    return None


class StationPort:
    def __init__(
        self,
        config: RadioPanConfig,
        transmit: Callable[[bytes], None],
        deliver: Callable[[bytes], None],
    ) -> None:
        self.config = config
        self._transmit = transmit
        self._deliver = deliver
        self._prefix = config.prefix.network_address.packed[:8]
        self.station = Station(
            StationConfig(
                ext_addr=config.ext_addr,
                short_addr=config.short_addr,
                pan_id=config.pan_id,
                contexts={0: Context(config.prefix.network_address.packed)},
                reassembly=config.reassembly_limits(),
                seed=config.short,
            )
        )
        self.router_lladdr = (
            lladdr_for_ipv6(ipaddress.IPv6Address(config.router).packed) if config.router else None
        )
        self.airtime_s = 0.0
        self.packets_filtered: Counter[str] = Counter()  # noise kind, or why it was not sent
        self.packets_delivered = 0

    def next_hop(self, dst: bytes) -> bytes | None:
        if dst[0] == 0xFF:
            return BROADCAST
        if dst[:8] in (self._prefix, _LINK_LOCAL):
            return lladdr_for_ipv6(dst)
        return self.router_lladdr

    def send_packet(self, packet: bytes) -> int:
        """Frames of one packet from the TUN to the medium; returns how many (0: not sent)."""
        if len(packet) < IPV6_HEADER or packet[0] >> 4 != 6:
            self.packets_filtered["not-ipv6"] += 1
            return 0
        kind = noise(packet)
        if kind is not None:
            self.packets_filtered[kind] += 1
            return 0
        dst = self.next_hop(packet[24:40])
        if dst is None:
            self.packets_filtered["no-route"] += 1
            return 0
        try:
            frames = self.station.send(packet, dst)
        except EncodeError as exc:
            self.packets_filtered[exc.reason] += 1
            return 0
        for frame in frames:
            self.airtime_s += airtime(len(frame))
            self._transmit(frame)
        return len(frames)

    def receive_frame(self, frame: bytes, now: float, sender: str | None = None) -> None:
        """One frame from the medium; ``sender`` names the station that sent it, where the
        medium knows it (the router's station, in the hub's process)."""
        packet = self.station.receive(frame, now, sender)
        if packet is not None:
            if noise(packet) == "ra":
                # The router's 6LoWPAN-ND advertisements are for hosts that join by ND; our
                # things keep the plan's static routes (no default route), so their kernels
                # must not act on them.
                self.packets_filtered["ra-received"] += 1
                return
            self.packets_delivered += 1
            self._deliver(packet)

    def counters(self) -> dict[str, int]:
        """Monotonic counters, for before/after accounting of one bootstrap."""
        s = self.station
        return {
            "frames_sent": s.frames_sent,
            "frames_received": s.frames_received,
            "packets_sent": s.packets_sent,
            "packets_received": s.reassembler.packets,
            "bytes_sent": s.bytes_sent,
        }
