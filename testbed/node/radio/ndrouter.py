"""The border router's side of 6LoWPAN-ND (RFC 6775, RFC 8505) on one radio PAN.

A standard 6LoWPAN host (RIOT's GNRC 6LN, Contiki-NG, OpenThread's FTD in 6LoWPAN-ND mode)
joins with nothing but the channel and the PAN id:

1. it sends a Router Solicitation (to ff02::2, with its SLLAO); ``NdRouter`` answers with a
   unicast Router Advertisement carrying the router's SLLAO, the PAN /64 (PIO: autonomous,
   *not* on-link, as RFC 6775 s5.4 has hosts send everything but link-local traffic to the
   router), the 6LoWPAN context 0 = that /64 (6CO, the context every station of the PAN
   compresses with) and the ABRO naming this router as the 6LBR;
2. it forms its address from the prefix and registers it with a unicast NS carrying an ARO
   (RFC 6775) or EARO (RFC 8505) and its SLLAO; the router answers with an NA whose (E)ARO
   echoes the owner and carries the status: success, duplicate (the address is registered by
   another owner, or is a planned station's or the router's own), neighbour cache full (more
   registrations than the PAN admits guest stations);
3. traffic for its address is sent to the link-layer address it registered (``lookup``) until
   the registration's lifetime runs out (``expire``); a registration with lifetime 0 removes it.

NS for the router's own addresses (NUD, address resolution) get an NA with the router's TLLAO.
Unsolicited multicast RAs go out at start and then every ``MinRtrAdvInterval`` to
``MaxRtrAdvInterval`` (RFC 4861 s6.2.4, seeded jitter): RFC 6775 s5.3 makes them optional for a
PAN whose hosts solicit, and they cost little airtime at these intervals.

The router's link-local address is fe80:: + the IID of its short address (RFC 4944 s6/RFC 6282),
which is also the IID of its EUI-64 and of its PAN address: every derivation a 6LoWPAN host may
make from the router's link-layer address reaches it.

Pure and synchronous: ``RouterPort`` (port glue) feeds it packets and the clock.
"""

from __future__ import annotations

import ipaddress
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from testbed.contracts.radio import RadioPanConfig
from testbed.node.radio import nd
from testbed.node.radio.addressing import BROADCAST, iid_from_lladdr, link_local, lladdr_for_ipv6
from testbed.node.radio.errors import EncodeError, MalformedError
from testbed.node.radio.phy import airtime
from testbed.node.radio.port import StationPort

# RFC 4861 s6.2.1 defaults, and lifetimes long enough that hosts refresh by solicitation.
MIN_RTR_ADV_INTERVAL = 200.0
MAX_RTR_ADV_INTERVAL = 600.0
ROUTER_LIFETIME_S = 1800
PREFIX_VALID_S = 86400
PREFIX_PREFERRED_S = 14400
CONTEXT_LIFETIME_MIN = 60
ABRO_LIFETIME_MIN = 10000  # RFC 6775 s4.3's default (a zero on the wire means the same)
DEFAULT_CAPACITY = 64  # registrations when the PAN sets no guest bound

Reply = tuple[bytes, bytes]  # (IPv6 packet, link-layer destination)


@dataclass(slots=True)
class Registration:
    address: bytes
    rovr: bytes
    lladdr: bytes
    expires: float
    tid: int | None


@dataclass(frozen=True)
class NdRouterConfig:
    prefix: ipaddress.IPv6Network
    lladdr: bytes  # the router's short address (what its frames carry)
    address: bytes  # the router's PAN address (the ABRO's 6LBR address)
    reserved: frozenset[bytes] = frozenset()  # planned stations' PAN addresses
    capacity: int = DEFAULT_CAPACITY
    seed: int = 0
    abro_version: int = 1
    min_interval: float = MIN_RTR_ADV_INTERVAL
    max_interval: float = MAX_RTR_ADV_INTERVAL

    @property
    def link_local(self) -> bytes:
        return link_local(self.lladdr)


@dataclass
class NdCounters:
    router_advertisements: Counter[str] = field(default_factory=Counter)  # solicited/unsolicited
    registrations: Counter[str] = field(default_factory=Counter)  # by status name (+ removed)
    ignored: Counter[str] = field(default_factory=Counter)  # ND messages not acted on, by why


class NdRouter:
    def __init__(self, config: NdRouterConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._registered: dict[bytes, Registration] = {}
        self._next_ra: float | None = None
        self.counters = NdCounters()
        self.own = {config.link_local, config.address}

    # ------------------------------------------------------------ the table

    def lookup(self, address: bytes) -> bytes | None:
        reg = self._registered.get(address)
        return reg.lladdr if reg is not None else None

    def registrations(self) -> list[Registration]:
        return list(self._registered.values())

    def expire(self, now: float) -> int:
        gone = [a for a, r in self._registered.items() if r.expires <= now]
        for address in gone:
            del self._registered[address]
        self.counters.registrations["expired"] += len(gone)
        return len(gone)

    # ------------------------------------------------------------ messages

    def router_advertisement(self, dst: bytes) -> bytes:
        c = self.config
        options = (
            nd.lladdr_option(nd.OPT_SLLAO, c.lladdr)
            + nd.pio(c.prefix, PREFIX_VALID_S, PREFIX_PREFERRED_S, on_link=False)
            + nd.sixco(c.prefix, 0, CONTEXT_LIFETIME_MIN)
            + nd.abro(c.address, c.abro_version, ABRO_LIFETIME_MIN)
        )
        return nd.router_advertisement(c.link_local, dst, options, ROUTER_LIFETIME_S)

    def periodic(self, now: float) -> list[Reply]:
        """An unsolicited multicast RA when one is due (the first one at the first call)."""
        if self._next_ra is not None and now < self._next_ra:
            return []
        c = self.config
        self._next_ra = now + self._rng.uniform(c.min_interval, c.max_interval)
        self.counters.router_advertisements["unsolicited"] += 1
        return [(self.router_advertisement(nd.ALL_NODES), BROADCAST)]

    def handle(self, packet: bytes, now: float) -> list[Reply] | None:
        """Replies to an ND message; None when ``packet`` is no ND message (not ours to take)."""
        try:
            msg = nd.parse(packet)
        except MalformedError as exc:
            self.counters.ignored[exc.reason] += 1
            return []
        if msg is None:
            return None
        if msg.kind == nd.RS:
            return self._solicited_ra(msg)
        if msg.kind == nd.NS and msg.aro is not None:
            return self._register(msg, now)
        if msg.kind == nd.NS and msg.target in self.own:
            return self._advertise_self(msg, now)
        self.counters.ignored[{nd.RA: "ra", nd.NA: "na"}.get(msg.kind, "ns-not-ours")] += 1
        return []

    def _link_dst(self, ip: bytes, hint: bytes | None) -> bytes:
        return hint or self.lookup(ip) or lladdr_for_ipv6(ip)

    def _solicited_ra(self, msg: nd.NdMessage) -> list[Reply]:
        self.counters.router_advertisements["solicited"] += 1
        if msg.src == nd.UNSPECIFIED or msg.sllao is None:
            # RFC 4861 s6.2.6: no SLLAO, no unicast; an unspecified source gets the multicast.
            return [(self.router_advertisement(nd.ALL_NODES), BROADCAST)]
        return [(self.router_advertisement(msg.src), msg.sllao)]

    def _advertise_self(self, msg: nd.NdMessage, now: float) -> list[Reply]:
        assert msg.target is not None
        tllao = nd.lladdr_option(nd.OPT_TLLAO, self.config.lladdr)
        if msg.src == nd.UNSPECIFIED:  # someone's DAD for our address: defend it
            na = nd.neighbour_advertisement(
                msg.target, nd.ALL_NODES, msg.target, nd.NA_ROUTER | nd.NA_OVERRIDE, tllao
            )
            return [(na, BROADCAST)]
        flags = nd.NA_ROUTER | nd.NA_SOLICITED | nd.NA_OVERRIDE
        na = nd.neighbour_advertisement(msg.target, msg.src, msg.target, flags, tllao)
        return [(na, self._link_dst(msg.src, msg.sllao))]

    def _register(self, msg: nd.NdMessage, now: float) -> list[Reply]:
        assert msg.aro is not None and msg.target is not None
        aro = msg.aro
        # RFC 6775 s6.5.1: an NS with an ARO from the unspecified address or without an SLLAO
        # is silently discarded.
        if msg.src == nd.UNSPECIFIED or msg.sllao is None:
            self.counters.ignored[
                "aro-without-sllao" if msg.sllao is None else "aro-unspecified"
            ] += 1
            return []
        # RFC 6775 s6.5.1: an ARO registers the NS's *source* (the target is the router's
        # address, so the NS doubles as NUD); RFC 8505 s5.5: an EARO registers the target.
        address = msg.src if aro.tid is None else msg.target
        status = self._decide(address, aro, msg.sllao, now)
        name = nd.STATUS_NAMES.get(status, str(status))
        if status == nd.STATUS_SUCCESS and aro.lifetime_min == 0:
            name = "removed"
        self.counters.registrations[name] += 1
        reply = nd.Aro(status, aro.lifetime_min, aro.rovr, aro.tid, aro.flags, aro.opaque)
        if status == nd.STATUS_SUCCESS:
            dst, link = msg.src, msg.sllao
        else:
            # RFC 6775 s6.5.2: a refusal goes to the link-local address of the registering
            # interface, never to the (contested) address itself.
            dst, link = link_local(aro.rovr if aro.tid is None else msg.sllao), msg.sllao
        na = nd.neighbour_advertisement(
            self.config.link_local, dst, msg.target, nd.NA_ROUTER | nd.NA_SOLICITED, reply.encode()
        )
        return [(na, link)]

    def _decide(self, address: bytes, aro: nd.Aro, lladdr: bytes, now: float) -> int:
        if address in self.own or address in self.config.reserved:
            return nd.STATUS_DUPLICATE
        if address[0] == 0xFF or address[:8] not in (
            self.config.prefix.network_address.packed[:8],
            self.config.link_local[:8],
        ):
            return nd.STATUS_DUPLICATE  # not an address of this link: nobody may have it
        held = self._registered.get(address)
        if held is not None and held.rovr != aro.rovr:
            if held.expires > now:
                return nd.STATUS_DUPLICATE
            del self._registered[address]
            held = None
        if aro.lifetime_min == 0:
            self._registered.pop(address, None)
            return nd.STATUS_SUCCESS
        if held is None and len(self._registered) >= self.config.capacity:
            self.expire(now)
            if len(self._registered) >= self.config.capacity:
                return nd.STATUS_NC_FULL
        self._registered[address] = Registration(
            address, aro.rovr, lladdr, now + aro.lifetime_min * 60.0, aro.tid
        )
        return nd.STATUS_SUCCESS

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "link_local": str(ipaddress.IPv6Address(self.config.link_local)),
            "registrations": {
                str(ipaddress.IPv6Address(r.address)): {
                    "lladdr": r.lladdr.hex(),
                    "rovr": r.rovr.hex(),
                    "expires_in_s": round(r.expires - now, 1),
                    "tid": r.tid,
                }
                for r in self._registered.values()
            },
            "router_advertisements": dict(self.counters.router_advertisements),
            "registration_requests": dict(self.counters.registrations),
            "ignored": dict(self.counters.ignored),
        }


def reserved_addresses(prefix: ipaddress.IPv6Network, shorts: Iterable[bytes]) -> frozenset[bytes]:
    """The PAN and link-local addresses of planned stations (IID from the short address):
    nobody else may register them."""
    base = prefix.network_address.packed[:8]
    out = set()
    for short in shorts:
        out.add(base + iid_from_lladdr(short))
        out.add(link_local(short))
    return frozenset(out)


class RouterPort(StationPort):
    """The border router's station port with 6LoWPAN-ND: ND messages from the PAN are answered
    here (the kernel never sees them: its TUN is NOARP), and packets for registered addresses
    go to the link-layer address they were registered with."""

    def __init__(
        self,
        config: RadioPanConfig,
        transmit: Callable[[bytes], None],
        deliver: Callable[[bytes], None],
    ) -> None:
        super().__init__(config, transmit, deliver)
        shorts = [bytes.fromhex(k) for k in config.names]
        self.nd = NdRouter(
            NdRouterConfig(
                prefix=config.prefix,
                lladdr=config.short_addr,
                address=config.ip.packed,
                reserved=reserved_addresses(config.prefix, shorts),
                capacity=config.guest_stations or DEFAULT_CAPACITY,
                seed=config.seed,
            )
        )
        self.nd_sent = 0

    def next_hop(self, dst: bytes) -> bytes | None:
        if dst[0] != 0xFF:
            registered = self.nd.lookup(dst)
            if registered is not None:
                return registered
        return super().next_hop(dst)

    def receive_frame(self, frame: bytes, now: float, sender: str | None = None) -> None:
        packet = self.station.receive(frame, now, sender)
        if packet is None:
            return
        replies = self.nd.handle(packet, now)
        if replies is None:
            self.packets_delivered += 1
            self._deliver(packet)
            return
        self._send_replies(replies)

    def tick(self, now: float) -> None:
        """Expire registrations, send a periodic RA when due (the node's housekeeping)."""
        self.nd.expire(now)
        self._send_replies(self.nd.periodic(now))

    def _send_replies(self, replies: list[Reply]) -> None:
        for packet, lladdr in replies:
            try:
                frames = self.station.send(packet, lladdr)
            except EncodeError as exc:
                self.packets_filtered[exc.reason] += 1
                continue
            self.nd_sent += 1
            for frame in frames:
                self.airtime_s += airtime(len(frame))
                self._transmit(frame)
