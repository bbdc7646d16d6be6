"""IPv6 addressing: one ULA /48 per run (RFC 4193), one /64 per network, stable host numbers.

The 40-bit global ID is derived from the building and run names instead of being random, so the
same topology and run name always give the same addresses (the plan is a pure function), while
two runs side by side on one host get different prefixes.
"""

from __future__ import annotations

import hashlib
import ipaddress

# Subnet IDs inside the run's /48. PANs count up from PAN_BASE in topology order.
SUBNET_IDS = {"mgmt": 0x0, "backbone": 0x1, "internet": 0x2}
PAN_BASE = 0x10
GATEWAY_HOST = 1  # Docker puts the host's bridge on the gateway address
FIRST_HOST = 0x10


def ula_prefix(building: str, run: str) -> ipaddress.IPv6Network:
    global_id = hashlib.sha256(f"{building}/{run}".encode()).digest()[:5]
    packed = bytes([0xFD]) + global_id + bytes(10)
    return ipaddress.IPv6Network((packed, 48))


def subnet(prefix48: ipaddress.IPv6Network, subnet_id: int) -> ipaddress.IPv6Network:
    base = int(prefix48.network_address) | (subnet_id << 64)
    return ipaddress.IPv6Network((base, 64))


def host(net: ipaddress.IPv6Network, number: int) -> ipaddress.IPv6Address:
    return net.network_address + number


class HostNumbers:
    """Hands out host numbers per network in call order (the planner calls in a fixed order)."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def take(self, network: str) -> int:
        number = self._next.get(network, FIRST_HOST)
        self._next[network] = number + 1
        return number


# -- radio PANs (Pan.medium == "radio") ------------------------------------------------------
# The PAN /64 (PAN_BASE + index) lives on the nodes' TUN devices; the PAN's Docker network only
# carries ZEP between the things and the medium, on a carrier /64 of its own.
CARRIER_BASE = 0x100
# SLIP uplinks (real border router boards): a routed /64 each, in topology order.
SLIP_BASE = 0x200
_SHORT_IID = 0x0000_00FF_FE00_0000  # RFC 6282: IID 0000:00ff:fe00:XXXX of short address XXXX


def host_number(address: str) -> int:
    """The host number of an address planned by ``host`` (prefix length allowed)."""
    return int(ipaddress.IPv6Interface(address).ip) & 0xFFFF_FFFF_FFFF_FFFF


def radio_host(net: ipaddress.IPv6Network, number: int) -> ipaddress.IPv6Address:
    """A node's PAN address on a radio PAN: the IID of 802.15.4 short address ``number``, so
    that 6LoWPAN elides it and the link-layer address follows from the IPv6 address."""
    if not 0 <= number <= 0xFFFD:
        raise ValueError(f"host number {number:#x} is not a usable short address")
    return net.network_address + (_SHORT_IID | number)
