"""Pydantic models of a topology file (``topologies/*.yaml``).

A topology describes a building; it does not run anything. Every model forbids unknown keys so
that a typo is an error at its line, not a silently ignored setting. Cross-references (a thing's
vendor, model, domain, PAN) are checked here too, so the planner can trust its input.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from testbed.node.thing.profiles import DEFAULT_PROFILE, PROFILE_NAMES
from testbed.topology import units
from testbed.topology.policy import PolicyRule, policy_problems

NAME_RE = r"^[a-z][a-z0-9-]{0,29}$"
Name = Annotated[str, Field(pattern=NAME_RE, description="lower case, digits and '-', max 30")]

Probability = Annotated[float, BeforeValidator(units.probability)]
Duration = Annotated[float, BeforeValidator(units.duration)]
Rate = Annotated[int, BeforeValidator(units.rate)]

ThingRole = Literal["thermostat", "luminaire", "smoke-detector", "sensor", "actuator"]
HostRole = Literal["backend", "vendor-cloud", "attacker"]


def _known_profile(name: str) -> str:
    if name not in PROFILE_NAMES:
        raise ValueError(
            f"unknown bootstrap profile {name!r}; available: {', '.join(PROFILE_NAMES)}"
        )
    return name


# The bootstrap profiles are the node's registry (testbed.node.thing.profiles): a topology may
# name exactly the profiles the node image implements.
ProfileName = Annotated[
    str,
    AfterValidator(_known_profile),
    WithJsonSchema({"type": "string", "enum": list(PROFILE_NAMES)}),
]
# Manufacturing faults and attacks a thing can be minted with (RFC 8576 Section 3 threats):
# rogue-idevid: a counterfeit whose IDevID is signed by a CA other than its vendor's;
# foreign-voucher: its voucher assigns it to an owner outside this building.
Fault = Literal["rogue-idevid", "foreign-voucher"]


# Where a node group runs on a multi-host engine: a Swarm placement constraint on node labels
# (``node.labels.zone==east``, ``node.hostname!=edge-1``); engines with one host ignore it.
PLACEMENT_RE = (
    r"^node\.(labels\.[A-Za-z0-9_.-]+|hostname|role|id|platform\.os|platform\.arch)"
    r"\s*(==|!=)\s*\S+$"
)
PLACEMENT_HELP = (
    "placement constraint on a multi-host backend (Swarm), e.g. 'node.labels.zone==east'; "
    "default: anywhere"
)
Placement = Annotated[str, Field(pattern=PLACEMENT_RE)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    placement: Placement | None = Field(None, description=PLACEMENT_HELP + " (its trust center)")

    @property
    def trust_center_name(self) -> str:
        return self.trust_center or f"tc-{self.name}"


class GilbertElliott(Strict):
    """Two-state bursty loss: p = P(good->bad), r = P(bad->good), loss in each state."""

    p: Probability
    r: Probability
    loss_good: Probability = 0.0
    loss_bad: Probability = 1.0


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
    reassembly_timeout: Duration = Field(60.0, le=60.0, description="RFC 4944: at most 60 s")
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
    placement: Placement | None = Field(None, description=PLACEMENT_HELP)

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


class BorderRouter(Strict):
    name: Name
    pans: list[Name] = Field(min_length=1)
    placement: Placement | None = Field(None, description=PLACEMENT_HELP)


class Host(Strict):
    """An Internet host: the backend service, a vendor cloud, or an attacker."""

    name: Name
    role: HostRole
    placement: Placement | None = Field(None, description=PLACEMENT_HELP)


class Topology(Strict):
    """An emulated building: vendors, operator domains, PANs, things, routers and hosts."""

    building: Name
    description: str = ""
    vendors: list[Vendor] = Field(min_length=1)
    domains: list[Domain] = Field(min_length=1)
    pans: list[Pan] = Field(min_length=1)
    border_routers: list[BorderRouter] = Field(min_length=1)
    things: list[Thing] = Field(min_length=1)
    hosts: list[Host] = []
    links: Links = Links()
    policies: list[PolicyRule] | None = Field(
        None,
        description="cross-domain rules enforced by the border routers, then the defaults "
        "(testbed.topology.policy); [] = the defaults only; absent = no filter",
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
        return names

    def vendor(self, name: str) -> Vendor:
        return next(v for v in self.vendors if v.name == name)

    def model(self, vendor: str, name: str) -> Model:
        return next(m for m in self.vendor(vendor).models if m.name == name)


Loc = tuple[str | int, ...]


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def cross_reference_problems(topo: Topology) -> list[tuple[Loc, str]]:
    """Every reference between sections that points nowhere, with the key path where it stands."""
    problems: list[tuple[Loc, str]] = []
    vendors = {v.name: v for v in topo.vendors}
    pans = {p.name for p in topo.pans}
    domains = {d.name for d in topo.domains}
    for what, section, names in (
        ("vendor", "vendors", [v.name for v in topo.vendors]),
        ("domain", "domains", [d.name for d in topo.domains]),
        ("PAN", "pans", [p.name for p in topo.pans]),
    ):
        for index in _duplicates(names):
            problems.append(((section, index, "name"), f"{what} {names[index]!r} is defined twice"))
    for vi, vendor in enumerate(topo.vendors):
        model_names = [m.name for m in vendor.models]
        for index in _duplicates(model_names):
            problems.append(
                (("vendors", vi, "models", index, "name"), f"model {model_names[index]!r} twice")
            )
    for di, domain in enumerate(topo.domains):
        for ti, vendor_name in enumerate(domain.trusted_vendors or []):
            if vendor_name not in vendors:
                problems.append(
                    (
                        ("domains", di, "trusted_vendors", ti),
                        f"unknown vendor {vendor_name!r}; known vendors: {sorted(vendors)}",
                    )
                )
    served: dict[str, str] = {}
    for ri, router in enumerate(topo.border_routers):
        for pi, pan in enumerate(router.pans):
            loc: Loc = ("border_routers", ri, "pans", pi)
            if pan not in pans:
                problems.append((loc, f"unknown PAN {pan!r}; known PANs: {sorted(pans)}"))
            elif pan in served:
                problems.append(
                    (loc, f"PAN {pan!r} is already served by {served[pan]!r}; one router per PAN")
                )
            else:
                served[pan] = router.name
    for pi, pan_model in enumerate(topo.pans):
        if pan_model.name not in served:
            problems.append(
                (
                    ("pans", pi, "name"),
                    f"PAN {pan_model.name!r} has no border router: list it in a router's 'pans'",
                )
            )
    for ti, thing in enumerate(topo.things):
        if thing.vendor not in vendors:
            problems.append(
                (
                    ("things", ti, "vendor"),
                    f"unknown vendor {thing.vendor!r}; known vendors: {sorted(vendors)}",
                )
            )
        else:
            models = {m.name for m in vendors[thing.vendor].models}
            if thing.model not in models:
                problems.append(
                    (
                        ("things", ti, "model"),
                        f"vendor {thing.vendor!r} has no model {thing.model!r}; "
                        f"its models: {sorted(models)}",
                    )
                )
        if thing.domain not in domains:
            problems.append(
                (
                    ("things", ti, "domain"),
                    f"unknown domain {thing.domain!r}; known domains: {sorted(domains)}",
                )
            )
        if thing.pan not in pans:
            problems.append(
                (("things", ti, "pan"), f"unknown PAN {thing.pan!r}; known PANs: {sorted(pans)}")
            )
    seen: dict[str, str] = {}
    for loc_name, name in _node_name_locations(topo):
        if name in seen:
            problems.append((loc_name, f"node name {name!r} is already used by {seen[name]}"))
        else:
            seen[name] = dotted(loc_name)
    problems += policy_problems(topo)
    return problems


def _node_name_locations(topo: Topology) -> list[tuple[Loc, str]]:
    out: list[tuple[Loc, str]] = []
    for di, domain in enumerate(topo.domains):
        out.append((("domains", di, "trust_center"), domain.trust_center_name))
    out += [(("border_routers", i, "name"), r.name) for i, r in enumerate(topo.border_routers)]
    out += [(("hosts", i, "name"), h.name) for i, h in enumerate(topo.hosts)]
    for ti, thing in enumerate(topo.things):
        out += [(("things", ti, "name"), name) for name in thing.names()]
    return out


def _duplicates(names: list[str]) -> list[int]:
    seen: set[str] = set()
    dupes = []
    for index, name in enumerate(names):
        if name in seen:
            dupes.append(index)
        seen.add(name)
    return dupes
