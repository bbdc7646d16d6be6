"""Pydantic models of a topology file (``topologies/*.yaml``).

A topology describes a building; it does not run anything. Every model forbids unknown keys so
that a typo is an error at its line, not a silently ignored setting. Cross-references (a thing's
vendor, model, domain, PAN) are checked here too, so the planner can trust its input.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from testbed.contracts import impairment
from testbed.contracts.profiles import DEFAULT_PROFILE
from testbed.topology.cross_domain_rules import PolicyRule
from testbed.topology.fields import (
    DEFAULT_SCRAPE_INTERVAL,
    MAX_READ_INTERVAL,
    MAX_SCRAPE_INTERVAL,
    MIN_READ_INTERVAL,
    MIN_SCRAPE_INTERVAL,
    NAME_RE,
    PLACEMENT_HELP,
    Duration,
    Fault,
    HostRole,
    Name,
    Placement,
    Probability,
    ProfileName,
    Rate,
    Strict,
    ThingRole,
)
from testbed.topology.references import cross_reference_problems, dotted


class Model(Strict):
    """A product of a vendor: its device class decides which CoAP resources it serves."""

    name: Name
    role: ThingRole
    profile: ProfileName = Field(DEFAULT_PROFILE, description="bootstrap profile the model uses")
    firmware: str = Field("1.0.0", description="factory firmware version")


class Vendor(Strict):
    name: Name
    models: list[Model] = Field(min_length=1)


class TrustCenterDefences(Strict):
    """Switches of the trust center's defences against handshake floods (same attack, measured
    with and without). Half-open handshakes are always shared fairly between sources."""

    return_routability: bool = Field(
        False,
        description="CoAP Echo (RFC 9175) before the trust center keeps EDHOC state for a"
        " message_1; off by default (optional in RFC 9528)",
    )
    rate_limit_per_source: float | None = Field(
        None, gt=0, description="message_1 per second per source address; null: no limit"
    )
    rate_limit_burst: int = Field(5, ge=1, le=1000, description="message_1 at once per source")
    max_pending_per_source: int = Field(
        64, ge=1, le=256, description="half-open EDHOC handshakes one source may hold"
    )


class Domain(Strict):
    """An operator domain (owner): its trust center admits things whose vouchers name it."""

    name: Name
    trust_center: Name | None = Field(None, description="node name; default tc-<domain>")
    trusted_vendors: list[Name] | None = Field(
        None, description="vendors this domain admits; default: every vendor"
    )
    defences: TrustCenterDefences | None = Field(
        None,
        description="the trust center's flood defences (return routability, rate limits);"
        " default: both off, half-open handshakes shared fairly between sources",
    )
    placement_constraint: Placement | None = Field(
        None, description=PLACEMENT_HELP + " (its trust center)"
    )

    @property
    def trust_center_name(self) -> str:
        return self.trust_center or f"tc-{self.name}"


class GilbertElliott(Strict):
    """Two-state bursty loss: p = P(good->bad), r = P(bad->good), loss in each state (the
    model testbed.contracts.impairment defines for IP links and radio links alike)."""

    p: Probability
    r: Probability
    loss_good: Probability = 0.0
    loss_bad: Probability = 1.0

    def model(self) -> impairment.GilbertElliott:
        return impairment.GilbertElliott(self.p, self.r, self.loss_good, self.loss_bad)


class Reassembly(Strict):
    """The border router's 6LoWPAN reassembly buffers on a radio PAN (RFC 4944 Section 5.3).

    per-station (default): each datagram is charged to the station that sent it (its carrier
    endpoint, not the source address it claims); when the buffer is full, the oldest datagram of
    the station holding the most makes way, so a first-fragment flood cannot lock the other
    stations out. shared: the defence off, as unhardened stacks behave: charged to the claimed
    source address, first come first served."""

    policy: Literal["per-station", "shared"] = "per-station"
    buffer_bytes: int = Field(
        default=8 * 1280, ge=1280, le=1 << 20, description="all open datagrams"
    )
    per_sender_bytes: int = Field(
        default=2 * 1280, ge=1280, le=1 << 20, description="open datagrams of one sender"
    )

    @model_validator(mode="after")
    def _sender_within_buffer(self) -> Reassembly:
        if self.per_sender_bytes > self.buffer_bytes:
            raise ValueError("per_sender_bytes must not exceed buffer_bytes")
        return self


class Radio(Strict):
    """A serial device of a radio PAN, passed into the border router's container.

    ``protocol: spinel``: a USB IEEE 802.15.4 dongle bridged into the PAN
    (testbed.node.radio.bridge): its frames from the air enter the medium as frames of
    ``station``; frames for it leave through the dongle. ``protocol: slip``: a real border
    router board (tunslip6-compatible, testbed.node.radio.slipuplink) routed by the PAN's
    router with a /64 of its own; ``station`` names the uplink."""

    device: str = Field(
        pattern=r"^/dev/[A-Za-z0-9._/-]+$",
        description="serial device of the dongle on the host, e.g. /dev/ttyACM0 or a "
        "/dev/serial/by-id/ path",
    )
    protocol: Literal["spinel", "slip"] = Field(
        "spinel",
        description="spinel: Spinel over HDLC-lite (OpenThread's ot-rcp firmware); slip: SLIP "
        "(RFC 1055) with IPv6, as tunslip6 speaks it (RIOT gnrc_border_router, Contiki-NG "
        "rpl-border-router)",
    )
    station: Name = Field(
        description="the name the medium gives the dongle's station (slip: the uplink's name)"
    )
    loss_model: bool = Field(
        False, description="apply the PAN's frame loss to the dongle's links too (spinel only)"
    )
    domain: Name | None = Field(
        None,
        description="slip only: the domain whose policies the board's routed prefix falls "
        "under (its nodes count as that domain's things); none: only allow rules naming "
        "nothing reach it",
    )

    @model_validator(mode="after")
    def _keys_of_the_protocol(self) -> Radio:
        if self.protocol == "slip" and self.loss_model:
            raise ValueError("loss_model: a SLIP uplink carries IPv6, not frames of the medium")
        if self.protocol == "spinel" and self.domain is not None:
            raise ValueError("domain: only a SLIP uplink has a routed prefix of its own")
        return self


class Pan(Strict):
    """An emulated IEEE 802.15.4 PAN (applied by the radio medium)."""

    name: Name
    # bridge: things sit on a Docker bridge with the PAN /64 (no frame-level emulation);
    # radio: the PAN /64 lives on TUN devices and every packet crosses the emulated medium
    # (802.15.4 frames, 6LoWPAN, loss, retries) run by the border router (testbed.node.radio).
    medium: Literal["bridge", "radio"] = "bridge"
    channel: int = Field(15, ge=11, le=26)
    pan_id: int = Field(0xABCD, ge=0, le=0xFFFE)
    loss: Probability = Field(0.0, description="frame loss probability per directed link")
    gilbert_elliott: GilbertElliott | None = None
    mac_max_frame_retries: int = Field(3, ge=0, le=7)
    reassembly_timeout: Duration = Field(
        60.0, gt=0.0, le=60.0, description="RFC 4944: at most 60 s"
    )
    reassembly: Reassembly = Reassembly()
    seed: int = 1
    # Stations the medium admits beyond the planned ones (RIOT `native` nodes started with -z
    # pointed at it); the planned ones are always admitted. Link state grows with the square of
    # the stations: anyone on the carrier network could otherwise register thousands.
    guest_stations: int = Field(
        16,
        ge=0,
        le=1000,
        description="radio medium: stations admitted beyond the planned ones (RIOT native "
        "nodes); more are refused and counted as too-many-nodes",
    )
    radios: list[Radio] = Field(
        default_factory=list, description="USB 802.15.4 dongles bridged into this PAN"
    )

    @model_validator(mode="after")
    def _radios_need_the_medium(self) -> Pan:
        if self.radios and self.medium != "radio":
            raise ValueError("radios: a dongle joins a PAN with medium: radio only")
        stations = [r.station for r in self.radios]
        if len(set(stations)) != len(stations):
            raise ValueError("radios: every dongle needs a station name of its own")
        devices = [r.device for r in self.radios]
        if len(set(devices)) != len(devices):
            raise ValueError("radios: a device can be bridged once")
        return self


class IpLink(Strict):
    """Impairments of an IP link with netem semantics (applied by the border routers)."""

    delay: Duration = 0.0
    jitter: Duration = 0.0
    loss: Probability = 0.0
    gilbert_elliott: GilbertElliott | None = None
    rate: Rate | None = None
    duplicate: Probability = 0.0
    reorder: Probability = 0.0
    corrupt: Probability = 0.0

    @model_validator(mode="after")
    def _jitter_needs_delay(self) -> IpLink:
        if self.jitter > 0 and self.delay == 0:
            raise ValueError("jitter needs a delay: set 'delay' as well")
        return self

    def model(self) -> impairment.Impairment:
        """The contract's netem model of this link; ImpairmentError names the parameter."""
        ge = self.gilbert_elliott
        return impairment.Impairment(
            delay=self.delay,
            jitter=self.jitter,
            loss=self.loss,
            gilbert_elliott=ge.model() if ge else None,
            rate=self.rate,
            duplicate=self.duplicate,
            reorder=self.reorder,
            corrupt=self.corrupt,
        )


class Links(Strict):
    backbone: IpLink = IpLink()
    internet: IpLink = IpLink()


def _check_pattern(name: str) -> str:
    if "{" in name:
        try:
            probe = name.format(n=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"name pattern {name!r} is not valid: use '{{n}}' or '{{n:02d}}' for the index"
            ) from exc
        if not re.match(NAME_RE, probe):
            raise ValueError(f"names made from {name!r} (e.g. {probe!r}) must match {NAME_RE}")
    elif not re.match(NAME_RE, name):
        raise ValueError(f"{name!r} must match {NAME_RE} (lower case, digits, '-')")
    return name


MAX_PACK = 200  # packed things per thing host: one control and one metrics port each


class Thing(Strict):
    """One thing, or a group of them when ``count`` is set and ``name`` has an ``{n}``."""

    name: Annotated[str, AfterValidator(_check_pattern)]
    count: int | None = Field(None, ge=1, le=1000)
    start: int = Field(1, ge=0, description="first index of a group")
    vendor: Name
    model: Name
    role: ThingRole | None = Field(None, description="default: the model's role")
    domain: Name
    pan: Name
    profile: ProfileName | None = Field(None, description="default: the model's profile")
    faults: list[Fault] = Field(
        default_factory=list, description="minted flaws for security experiments"
    )
    placement_constraint: Placement | None = Field(None, description=PLACEMENT_HELP)
    pack: int | None = Field(
        None,
        ge=1,
        le=MAX_PACK,
        description="packed things: run up to this many of the group in one container (a "
        "thing host, docs/packed-things.md); absent = one container per thing",
    )

    @model_validator(mode="after")
    def _count_needs_pattern(self) -> Thing:
        if self.count is not None and "{" not in self.name:
            raise ValueError("a group with 'count' needs an index in its name, e.g. 'lamp-{n:02d}'")
        if self.count is None and "{" in self.name:
            raise ValueError("a name with '{n}' needs 'count'")
        return self

    def names(self) -> list[str]:
        if self.count is None:
            return [self.name]
        return [self.name.format(n=i) for i in range(self.start, self.start + self.count)]

    def packs(self) -> list[tuple[str, list[str]]]:
        """(thing host name, its things) for a packed group, in order; [] when not packed.
        A host is named after the group's pattern: "lamp-{n:03d}" -> lamp-pack-01, ..."""
        if self.pack is None:
            return []
        names = self.names()
        stem = self.name.split("{")[0].rstrip("-_") or "thing"
        chunks = [names[i : i + self.pack] for i in range(0, len(names), self.pack)]
        return [(f"{stem}-pack-{j:02d}", chunk) for j, chunk in enumerate(chunks, 1)]


ProxyMode = Literal["end-to-end", "hop-by-hop"]


class Proxy(Strict):
    """A CoAP forward proxy in the border router (testbed.node.proxy) for the backends.

    end-to-end: plain CoAP on port 5683; OSCORE passes through it unread. hop-by-hop: CoAP
    over DTLS (PSK) on port 5684 from the backends, and over DTLS (a PSK each thing of the
    router's PANs shares with it) to the things, which then also serve their resources over
    DTLS on port 5684: the proxy translates and reads everything.
    """

    modes: list[ProxyMode] = Field(
        default_factory=lambda: list[ProxyMode](["end-to-end"]),
        min_length=1,
        description="what it offers",
    )
    tamper: bool = Field(
        False, description="a compromised proxy: it alters the payloads it forwards"
    )


class BorderRouter(Strict):
    name: Name
    pans: list[Name] = Field(min_length=1)
    proxy: Proxy | None = Field(None, description="a CoAP proxy for the backends; absent = off")
    placement_constraint: Placement | None = Field(None, description=PLACEMENT_HELP)


class Host(Strict):
    """An Internet host: the backend service, a vendor cloud, or an attacker."""

    name: Name
    role: HostRole
    placement: Literal["internet", "backbone", "pan"] = Field(
        "internet",
        description="attackers only: on the Internet side, on the backbone, or on a PAN "
        "(a guest radio station with its own link-layer address on a `medium: radio` PAN)",
    )
    pan: Name | None = Field(None, description="placement: pan - which PAN")
    placement_constraint: Placement | None = Field(None, description=PLACEMENT_HELP)
    read_interval: Duration | None = Field(
        None,
        description="backends only: how often the backend reads each thing, e.g. '30s' "
        f"({MIN_READ_INTERVAL:g} s to {MAX_READ_INTERVAL:g} s; absent = every 5 s). A large "
        "building reads its things less often to idle lighter",
    )
    poll_interval: Duration | None = Field(
        None,
        description="backends only: how often the backend asks each trust center for its "
        f"listing of operational things, e.g. '10s' ({MIN_READ_INTERVAL:g} s to "
        f"{MAX_READ_INTERVAL:g} s; absent = every 2 s); a listing of hundreds of things is "
        "tens of OSCORE-protected blocks",
    )

    @model_validator(mode="after")
    def _placement(self) -> Host:
        if self.placement != "internet" and self.role != "attacker":
            raise ValueError("only an attacker can be placed off the Internet side")
        if (self.placement == "pan") != (self.pan is not None):
            raise ValueError("placement: pan needs 'pan' (and 'pan' needs placement: pan)")
        for key in ("read_interval", "poll_interval"):
            if getattr(self, key) is not None and self.role != "backend":
                raise ValueError(
                    f"{key} is for a backend; {self.name} has role {self.role} (remove it)"
                )
        return self

    @field_validator("read_interval", "poll_interval")
    @classmethod
    def _backend_interval(cls, seconds: float | None) -> float | None:
        if seconds is not None and not MIN_READ_INTERVAL <= seconds <= MAX_READ_INTERVAL:
            raise ValueError(
                f"{seconds:g} s is out of range: give {MIN_READ_INTERVAL:g}s to "
                f"{MAX_READ_INTERVAL:g}s, e.g. '30s'"
            )
        return seconds


class Energy(Strict):
    """Energy estimate of the things on radio PANs (testbed.node.energy): a named radio's
    datasheet figures, each of which can be overridden, and the MAC duty-cycle assumption."""

    radio: Literal["nrf52840", "cc2538"] = Field("nrf52840", description="datasheet figures")
    duty_cycle: Probability = Field(
        0.01, description="fraction of idle time the receiver listens (low-power listening)"
    )
    cpu_scale: float = Field(1.0, gt=0, le=100, description="MCU seconds per emulated CPU second")
    voltage: float | None = Field(None, gt=0, le=12, description="V (default: the datasheet's)")
    tx_ma: float | None = Field(None, gt=0, le=500)
    rx_ma: float | None = Field(None, gt=0, le=500)
    cpu_ma: float | None = Field(None, gt=0, le=500)
    sleep_ua: float | None = Field(None, ge=0, le=10_000)


class Observe(Strict):
    """How the run's Prometheus watches the building (testbed.observe)."""

    scrape_interval: Duration = Field(
        DEFAULT_SCRAPE_INTERVAL,
        description="how often Prometheus scrapes every node, whole seconds from "
        f"{MIN_SCRAPE_INTERVAL:g}s to {MAX_SCRAPE_INTERVAL:g}s (the rules' one-minute rate "
        "windows need four scrapes); a large building scrapes less often to idle lighter",
    )

    @field_validator("scrape_interval")
    @classmethod
    def _interval(cls, seconds: float) -> float:
        if seconds != int(seconds) or not MIN_SCRAPE_INTERVAL <= seconds <= MAX_SCRAPE_INTERVAL:
            raise ValueError(
                f"{seconds:g} s: give whole seconds from {MIN_SCRAPE_INTERVAL:g}s to "
                f"{MAX_SCRAPE_INTERVAL:g}s, e.g. '15s' (the one-minute rate windows of the "
                "recording rules need four scrapes each)"
            )
        return seconds


class Topology(Strict):
    """An emulated building: vendors, operator domains, PANs, things, routers and hosts."""

    building: Name
    description: str = ""
    vendors: list[Vendor] = Field(min_length=1)
    domains: list[Domain] = Field(min_length=1)
    pans: list[Pan] = Field(min_length=1)
    border_routers: list[BorderRouter] = Field(min_length=1)
    things: list[Thing] = Field(min_length=1)
    hosts: list[Host] = Field(default_factory=list)
    links: Links = Links()
    policies: list[PolicyRule] | None = Field(
        None,
        description="cross-domain rules enforced by the border routers, then the defaults "
        "(testbed.topology.cross_domain_rules); [] = the defaults only; absent = no filter",
    )
    energy: Energy | None = Field(
        None, description="estimate the energy of things on radio PANs (absent: no estimate)"
    )
    observe: Observe = Field(
        default_factory=lambda: Observe.model_validate({}),
        description="the run's Prometheus: scrape_interval (default 5s)",
    )
    commissioning: Literal["phases", "auto"] = Field(
        "phases",
        description="phases: `testbed up` runs the install and commission playbooks (Ansible); "
        "auto: things bootstrap by themselves at start and vouchers are pre-imported",
    )

    @model_validator(mode="after")
    def _cross_references(self, info: ValidationInfo) -> Topology:
        # The loader defers these checks so that it can point at the exact key and line.
        if info.context and info.context.get("defer_cross_references"):
            return self
        problems = cross_reference_problems(self)
        if problems:
            loc, message = problems[0]
            raise ValueError(f"{dotted(loc)}: {message}")
        return self

    def node_names(self) -> list[str]:
        names = [d.trust_center_name for d in self.domains]
        names += [r.name for r in self.border_routers]
        names += [h.name for h in self.hosts]
        for thing in self.things:
            names += thing.names()
            names += [host for host, _ in thing.packs()]
        return names

    def vendor(self, name: str) -> Vendor:
        return next(v for v in self.vendors if v.name == name)

    def model(self, vendor: str, name: str) -> Model:
        return next(m for m in self.vendor(vendor).models if m.name == name)
