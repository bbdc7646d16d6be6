"""The emulated IEEE 802.15.4 PAN, frame level (runs inside containers; pure library code).

    TUN --StationPort/Station.send--> MAC frames --ZepClient, ZEP/UDP--> MediumHub: Medium.submit
    Medium.run --> Delivery --ZEP/UDP--> ZepClient --Station.receive--> packet --> TUN

Modules, bottom up:
    crc          FCS (CRC-16/KERMIT), in C via binascii
    phy          2.4 GHz O-QPSK timing: 32 us per byte, 6 B PHY overhead, ACK timing
    addressing   link-layer addresses and the IPv6 interface identifiers derived from them
    mac          802.15.4 data/ACK frames: struct-built, strictly decoded
    iphc         RFC 6282 IPHC + UDP NHC compression/decompression, contexts
    frag         RFC 4944 fragmentation (FRAG1/FRAGN, 8-octet offsets)
    reassembly   bounded reassembly with timeout, drop reasons counted
    station      a node's end: packets <-> frames, filtering, MAC duplicate detection
    zep          ZEP v2 encapsulation as Wireshark and RIOT's socket_zep speak it, HELLO, peers
    links        per directed link loss: Bernoulli and Gilbert-Elliott, seeded per link
    medium       the event-driven channel: airtime, one frame at a time, ACKs and retries
    pcap         capture files Wireshark reads (802.15.4 with FCS, or IPv6/UDP/ZEP)

The node side (``medium: radio`` PANs), on top of those:
    config       the planner's radio-<pan> attributes; addressing convention (IID <- short)
    tun          the TUN device (lowpan<i>) the PAN /64 lives on
    port         a node's station on a PAN: next hop without ND, MLD/RS filter, airtime
    frontend     asyncio: ZepClient (a node's radio), MediumHub (the medium on the loop clock)
    hub_socket   MediumHub's UDP socket on the loop: read when the hub says, polled
    metrics      testbed_radio_* from published samples; bootstrap frames histogram
    bootstrap    frames per bootstrap attempt, into the bootstrap report
    attach       what testbed.node.node starts: TUN + radio per PAN, link-set/reset actions

Garbled input never raises out of a receive path (Station.receive, Reassembler.receive,
Medium.submit): it is dropped and counted by reason. Decoders used directly (mac.decode,
zep.decode, iphc.decompress) raise ``MalformedError`` with a ``reason``.
"""

from testbed.contracts.radio import ReassemblyLimits
from testbed.node.radio.errors import EncodeError, MalformedError, RadioError
from testbed.node.radio.links import GilbertElliott, LinkConfig
from testbed.node.radio.medium import Medium
from testbed.node.radio.medium_types import Delivery, MediumConfig, OnAir, TxStatus
from testbed.node.radio.station import Station, StationConfig

__all__ = [
    "Delivery",
    "EncodeError",
    "GilbertElliott",
    "LinkConfig",
    "MalformedError",
    "Medium",
    "MediumConfig",
    "OnAir",
    "RadioError",
    "ReassemblyLimits",
    "Station",
    "StationConfig",
    "TxStatus",
]
