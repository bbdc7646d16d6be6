"""What the planner tells a node about a PAN carried by the radio medium (``medium: radio``).

One node attribute per radio PAN, key ``radio-<pan>``, value a JSON object (attributes are
str -> str and also become Docker labels, so the value stays one compact string). The same
shape serves both ends:

- a thing: its PAN address (lives on its TUN), its short address, the medium's ZEP endpoint
  (the border router's address on the carrier network) and the router's PAN address;
- the border router: the same for itself (``medium`` is the address its ZEP hub binds), plus
  the PAN's channel model (loss, Gilbert-Elliott, retries, seed) and the names of the things
  by short address, so that per-node metrics and link settings use names people know.

Addressing convention (see testbed.plan.addressing.radio_host): a node's PAN address has the
interface identifier 0000:00ff:fe00:XXXX of its short address XXXX, so that IPHC elides it
completely and the link-layer destination of any PAN address follows from the address itself
(no neighbour discovery on the medium). Its extended address (EUI-64, sent in ZEP HELLOs) is
02:00:00:ff:fe:00:XX:XX, whose IID is the same one: a hub that receives the HELLO knows the
short address too (``short_from_ext``).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from testbed.contracts.impairment import GilbertElliott

ATTRIBUTE_PREFIX = "radio-"
ZEP_PORT = 17754  # the medium's UDP port (ZEP, Wireshark's default)
# The reassembly policies of a station (testbed.node.radio.reassembly applies them).
PER_STATION = "per-station"
SHARED = "shared"
POLICIES = (PER_STATION, SHARED)
TUN_PREFIX = "lowpan"
_EXT_PREFIX = bytes.fromhex("020000fffe00")


@dataclass(frozen=True)
class ReassemblyLimits:
    timeout: float = 60.0
    per_sender_bytes: int = 2 * 1280
    total_bytes: int = 8 * 1280
    policy: str = PER_STATION

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"reassembly policy {self.policy!r}: one of {', '.join(POLICIES)}")
        if not 0 < self.timeout <= 60:
            raise ValueError("reassembly timeout must lie in (0, 60] s (RFC 4944)")
        if not 1280 <= self.per_sender_bytes <= self.total_bytes <= 1 << 20:
            raise ValueError(
                "reassembly buffers: 1280 <= per-sender bytes <= total bytes <= 1 MiB "
                "(IPv6 needs 1280-byte packets)"
            )


def ext_from_short(short: int) -> bytes:
    return _EXT_PREFIX + short.to_bytes(2, "big")


def short_from_ext(ext: bytes) -> bytes | None:
    """The short address a testbed station's EUI-64 embeds, None for any other EUI-64."""
    return ext[6:] if len(ext) == 8 and ext[:6] == _EXT_PREFIX else None


@dataclass(frozen=True)
class RadioPanConfig:
    pan: str
    address: str  # this node's PAN address with prefix length, "fd..:10::ff:fe00:11/64"
    short: int  # 802.15.4 short address, 0x0000..0xfffd
    medium: str  # the medium's (hub's) carrier address: where things send ZEP, where it binds
    router: str = ""  # the border router's PAN address (things: next hop off the PAN)
    port: int = ZEP_PORT
    channel: int = 26
    pan_id: int = 0x0023
    reassembly_timeout: float = 60.0
    # The channel model: only the hub uses these.
    loss: float = 0.0
    gilbert_elliott: GilbertElliott | None = None  # the shared model, as IP links use it
    max_frame_retries: int = 3
    seed: int = 0
    names: dict[str, str] = field(default_factory=dict)  # "0011" (short, hex) -> node name
    # Unplanned stations the hub admits (RIOT native nodes); None: its built-in bound.
    guest_stations: int | None = None
    # node name -> its planned carrier address: the only endpoint that may speak for it.
    carriers: dict[str, str] = field(default_factory=dict)
    # The reassembly buffers of this node's station (``ReassemblyLimits``).
    reassembly_policy: str = "per-station"
    reassembly_buffer: int = 8 * 1280
    reassembly_per_sender: int = 2 * 1280
    # USB dongles bridged in (hub only): {"device", "protocol", "station", "loss_model"}.
    radios: list[dict[str, Any]] = field(default_factory=list)
    # The UDP port this station's radio sends from (0: ``port``). Packed things share their
    # thing host's carrier address, so each needs a port of its own there.
    local_port: int = 0

    def __post_init__(self) -> None:
        iface = ipaddress.IPv6Interface(self.address)
        if iface.network.prefixlen != 64:
            raise ValueError(f"radio PAN {self.pan}: the PAN prefix must be a /64")
        if not 0 <= self.short <= 0xFFFD:
            raise ValueError(f"radio PAN {self.pan}: short address {self.short:#x} out of range")
        try:
            self.reassembly_limits()
        except ValueError as exc:
            raise ValueError(f"radio PAN {self.pan}: {exc}") from None

    def reassembly_limits(self) -> ReassemblyLimits:
        return ReassemblyLimits(
            timeout=self.reassembly_timeout,
            per_sender_bytes=self.reassembly_per_sender,
            total_bytes=self.reassembly_buffer,
            policy=self.reassembly_policy,
        )

    @property
    def key(self) -> str:
        return ATTRIBUTE_PREFIX + self.pan

    @property
    def prefix(self) -> ipaddress.IPv6Network:
        return ipaddress.IPv6Interface(self.address).network

    @property
    def ip(self) -> ipaddress.IPv6Address:
        return ipaddress.IPv6Interface(self.address).ip

    @property
    def short_addr(self) -> bytes:
        return self.short.to_bytes(2, "big")

    @property
    def ext_addr(self) -> bytes:
        return ext_from_short(self.short)

    def name_of(self, short: bytes) -> str | None:
        return self.names.get(short.hex())

    def to_attribute(self) -> str:
        data = asdict(self)
        data.pop("pan")  # it is in the key
        if not self.names:
            data.pop("names")
        if self.guest_stations is None:
            data.pop("guest_stations")
        for name, default in _OPTIONAL.items():
            if data[name] == default:
                data.pop(name)  # compact, and what older nodes read
        if self.gilbert_elliott is None:
            data.pop("gilbert_elliott")
        if not self.radios:
            data.pop("radios")
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_attribute(cls, pan: str, value: str) -> RadioPanConfig:
        data: dict[str, Any] = json.loads(value)
        ge = data.pop("gilbert_elliott", None)
        return cls(
            pan=pan,
            gilbert_elliott=GilbertElliott.from_dict(ge) if ge else None,
            **data,
        )


_OPTIONAL: dict[str, object] = {
    "carriers": {},
    "reassembly_policy": "per-station",
    "reassembly_buffer": 8 * 1280,
    "reassembly_per_sender": 2 * 1280,
    "local_port": 0,
}


def carrier_endpoint(value: str, port: int) -> tuple[str, int]:
    """A ``carriers`` entry as (host, port): "addr" speaks from the PAN's ZEP ``port``,
    "[addr]:port" (a packed thing, beside its packmates on one address) from its own port."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]:")
        return host, int(rest)
    return value, port


def pan_address(attributes: Mapping[str, str], network: str) -> str | None:
    """A node's address on ``network`` (pan-<name>) if that is one of its radio PANs: the
    address on its TUN, where experiment traffic reaches it (its interface on the Docker
    network only carries ZEP). None for any other network. ValueError if garbled."""
    pan = network.removeprefix("pan-")
    raw = attributes.get(ATTRIBUTE_PREFIX + pan) if network.startswith("pan-") else None
    return None if raw is None else str(RadioPanConfig.from_attribute(pan, raw).ip)


def radio_pans(attributes: dict[str, str]) -> list[RadioPanConfig]:
    """Every radio PAN a node's attributes describe, in name order. ValueError if garbled."""
    out = []
    for key in sorted(attributes):
        if key.startswith(ATTRIBUTE_PREFIX):
            pan = key.removeprefix(ATTRIBUTE_PREFIX)
            try:
                out.append(RadioPanConfig.from_attribute(pan, attributes[key]))
            except (TypeError, ValueError, KeyError) as exc:
                raise ValueError(f"attribute {key}: {exc}") from exc
    return out
