"""Who may speak on a PAN's medium, from which carrier endpoint, with which link-layer addresses.

Anyone on a PAN's carrier network can send ZEP datagrams to the medium, and a ZEP datagram says
nothing about its sender but the UDP endpoint it came from: the link-layer source address of the
frame inside (and the EUI-64 in a HELLO) is whatever the sender wrote. The hub therefore keeps a
registry of stations, each bound to one carrier endpoint and to the link-layer addresses it
registered, and refuses everything else before the medium or any station spends state on it:

- A planned station (a thing or router of the plan) owns exactly its planned extended and short
  address. When the plan names its carrier address, only that address (and the planned ZEP port)
  may speak for it; otherwise the first endpoint that claims it binds it to that endpoint's host
  (trust on first use), and only that host may take it again (a restart with a new port). Any
  other endpoint claiming its address, by HELLO or as a frame source, is refused as
  ``station-hijack``. The border router's own station (in process) can never be claimed.
- An unplanned station (a guest: a RIOT ``native`` node, an experiment's attacker) is admitted
  on the first claim of an address nobody owns, up to the PAN's guest bound (``too-many-nodes``
  beyond it), and is bound to its endpoint's host. It may register at most one extended and one
  short address (a RIOT node announces its EUI-64 by HELLO and shows its short address in its
  frames).
- A frame from a known endpoint whose source is not one of its station's addresses, and cannot
  become one, is refused as ``foreign-sender``: a station cannot speak as another, nor charge
  receivers' state (reassembly buffers, duplicate tables) to invented sources.

Every table here is bounded by the stations the PAN admits (planned + guest bound): a station
holds at most two addresses and one endpoint. Pure: no sockets and no clock; the hub
(frontend.MediumHub) asks ``admit`` for each datagram and counts the refusals it returns.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from testbed.contracts.radio import ext_from_short, short_from_ext
from testbed.node.radio.addressing import BROADCAST

FOREIGN_SENDER = "foreign-sender"
WRONG_CHANNEL = "wrong-channel"  # a frame on another channel than the PAN's
STATION_HIJACK = "station-hijack"
TOO_MANY_NODES = "too-many-nodes"
NO_ENDPOINT = "no-endpoint"
REFUSALS = (FOREIGN_SENDER, STATION_HIJACK, TOO_MANY_NODES, NO_ENDPOINT)

Endpoint = tuple[Any, ...]  # (host, port[, flowinfo, scope]) as asyncio reports it


def host_of(endpoint: Endpoint) -> str:
    """The endpoint's host in canonical form (scope and IPv4-mapped spelling removed)."""
    text = str(endpoint[0]).split("%")[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


@dataclass(slots=True)
class _Station:
    name: str
    planned: bool
    local: bool = False
    addresses: set[bytes] = field(default_factory=set)
    carrier: Endpoint | None = None  # (host, port) the plan fixes, if it does
    host: str | None = None  # the host it is bound to (first use, or the planned carrier)
    endpoint: Endpoint | None = None
    attached: bool = False  # known to the medium
    admitted: Admitted | None = None  # the verdict for its everyday datagrams, made once


@dataclass(frozen=True, slots=True)
class Admitted:
    """The datagram is ``name``'s; attach it to the medium first when ``new``, and register
    ``learn`` with the medium (addresses it did not know yet)."""

    name: str
    new: bool = False
    learn: tuple[bytes, ...] = ()


class Stations:
    """The registry of one PAN's stations (see the module docstring)."""

    def __init__(
        self,
        planned: Mapping[bytes, str],
        guest_limit: int,
        carriers: Mapping[str, Endpoint] | None = None,
    ) -> None:
        """``planned``: short address -> name of every planned station; ``carriers``: name ->
        the planned carrier endpoint (host, port) of those the plan places."""
        self.guest_limit = guest_limit
        self._stations: dict[str, _Station] = {}
        self._owner: dict[bytes, str] = {}
        self._at: dict[Endpoint, str] = {}
        self.guests = 0
        carriers = carriers or {}
        for short, name in planned.items():
            st = self._stations.setdefault(name, _Station(name, planned=True))
            ext = ext_from_short(int.from_bytes(short, "big"))
            st.addresses |= {short, ext}
            if name in carriers:
                host, port = carriers[name][:2]
                st.carrier = (host_of((host,)), int(port))
                st.host = st.carrier[0]
            self._owner[short] = self._owner[ext] = name

    # ------------------------------------------------------------ queries

    def endpoints(self) -> dict[str, Endpoint]:
        return {name: st.endpoint for name, st in self._stations.items() if st.endpoint is not None}

    def endpoint(self, name: str) -> Endpoint | None:
        st = self._stations.get(name)
        return None if st is None else st.endpoint

    def addresses(self, name: str) -> frozenset[bytes]:
        st = self._stations.get(name)
        return frozenset() if st is None else frozenset(st.addresses)

    def size(self) -> dict[str, int]:
        """Entries per table (for the benchmark and the tests of boundedness)."""
        return {
            "stations": len(self._stations),
            "addresses": len(self._owner),
            "endpoints": len(self._at),
        }

    # ------------------------------------------------------------ registration

    def add_local(self, name: str, addresses: tuple[bytes, ...]) -> None:
        """A station in the hub's own process (the router's): never claimable from outside."""
        st = self._stations.get(name) or _Station(name, planned=True)
        self._stations[name] = st
        st.local = st.attached = True
        for addr in addresses:
            st.addresses.add(addr)
            self._owner[addr] = name

    def add_planned(self, name: str, short: bytes, carrier: Endpoint) -> None:
        """A planned station that joins at run time (a thing moved to this PAN): it owns its
        short address and the EUI-64 that embeds it, bound to ``carrier`` like a planned one.
        KeyError if another station owns one of the two addresses."""
        ext = ext_from_short(int.from_bytes(short, "big"))
        for addr in (short, ext):
            owner = self._owner.get(addr)
            if owner is not None and owner != name:
                raise KeyError(owner)
        self.remove(name)
        st = _Station(name, planned=True, addresses={short, ext})
        st.carrier = (host_of((carrier[0],)), int(carrier[1]))
        st.host = st.carrier[0]
        self._stations[name] = st
        self._owner[short] = self._owner[ext] = name

    def remove(self, name: str) -> bool:
        """Forget a station (a thing that left this PAN); its addresses become free. The
        router's own station stays. True if there was one."""
        st = self._stations.get(name)
        if st is None or st.local:
            return False
        del self._stations[name]
        for addr in st.addresses:
            if self._owner.get(addr) == name:
                del self._owner[addr]
        if st.endpoint is not None:
            self._at.pop(st.endpoint, None)
        if not st.planned:
            self.guests -= 1
        return True

    def admit(
        self, endpoint: Endpoint, lladdr: bytes | None, hello: bool = False
    ) -> Admitted | str:
        """Whose datagram this is: ``lladdr`` is the EUI-64 of a HELLO (``hello``) or a frame's
        source (None when the frame has none). Returns Admitted, or the refusal's cause."""
        name = self._at.get(endpoint)
        if name is not None:
            st = self._stations[name]
            if lladdr is None or lladdr in st.addresses:
                if st.admitted is None:
                    st.admitted = Admitted(name)
                return st.admitted
            owner = self._owner.get(lladdr)
            if owner is None and self._may_learn(st, lladdr):
                return Admitted(name, learn=self._learn(st, lladdr))
            # Registering another station's address is a takeover attempt; a frame with a
            # source its sender does not own is a forgery.
            return STATION_HIJACK if hello and owner is not None else FOREIGN_SENDER
        if lladdr is None:
            return NO_ENDPOINT
        if lladdr == BROADCAST or len(lladdr) not in (2, 8):
            return FOREIGN_SENDER
        owner = self._owner.get(lladdr)
        if owner is not None:
            st = self._stations[owner]
            if st.local or not self._may_bind(st, endpoint):
                return STATION_HIJACK
            return self._bind(st, endpoint)
        if self.guests >= self.guest_limit:
            return TOO_MANY_NODES
        self.guests += 1
        st = _Station(f"ll-{lladdr.hex()}", planned=False)
        self._stations[st.name] = st
        self._learn(st, lladdr)
        short = short_from_ext(lladdr)
        if short is not None and short not in self._owner:
            self._learn(st, short)
        return self._bind(st, endpoint)

    # ------------------------------------------------------------ internals

    def _may_bind(self, st: _Station, endpoint: Endpoint) -> bool:
        if st.carrier is not None:
            return (host_of(endpoint), int(endpoint[1])) == st.carrier
        return st.host is None or host_of(endpoint) == st.host

    def _bind(self, st: _Station, endpoint: Endpoint) -> Admitted:
        if st.endpoint is not None:
            self._at.pop(st.endpoint, None)  # a restart: the station follows its new endpoint
        st.endpoint = endpoint
        st.host = st.host or host_of(endpoint)
        self._at[endpoint] = st.name
        new = not st.attached
        st.attached = True
        return Admitted(st.name, new=new, learn=tuple(sorted(st.addresses)))

    @staticmethod
    def _may_learn(st: _Station, lladdr: bytes) -> bool:
        # Planned stations own exactly their planned pair; a guest one address of each length.
        return (
            not st.planned
            and lladdr != BROADCAST
            and len(lladdr) in (2, 8)
            and all(len(a) != len(lladdr) for a in st.addresses)
        )

    def _learn(self, st: _Station, lladdr: bytes) -> tuple[bytes, ...]:
        st.addresses.add(lladdr)
        self._owner[lladdr] = st.name
        return (lladdr,)
