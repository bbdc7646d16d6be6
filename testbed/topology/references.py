"""The references between a topology's sections, checked: every name a section uses (a thing's
vendor, model, domain and PAN, a border router's PANs, a host's trust centers, the cross-domain
rules' selectors, ...) must point at something, and node names must be unique. Each problem
comes with the key path where it stands (``Loc``), so the loader can point at file:line:key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from testbed.topology.cross_domain_rules import policy_problems

if TYPE_CHECKING:
    from testbed.topology.schema import Topology

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
    for pi, pan_model in enumerate(topo.pans):
        for ri, radio in enumerate(pan_model.radios):
            if radio.protocol == "slip" and radio.station in topo.node_names():
                problems.append(
                    (
                        ("pans", pi, "radios", ri, "station"),
                        f"{radio.station!r} is a node's name; a SLIP uplink needs one of its own",
                    )
                )
            if radio.domain is not None and radio.domain not in domains:
                problems.append(
                    (
                        ("pans", pi, "radios", ri, "domain"),
                        f"unknown domain {radio.domain!r}; known domains: {sorted(domains)}",
                    )
                )
    for hi, host in enumerate(topo.hosts):
        if host.pan is not None and host.pan not in pans:
            problems.append(
                (("hosts", hi, "pan"), f"unknown PAN {host.pan!r}; known PANs: {sorted(pans)}")
            )
        elif host.pan is not None and not any(
            p.name == host.pan and p.medium == "radio" for p in topo.pans
        ):
            problems.append(
                (("hosts", hi, "pan"), f"PAN {host.pan!r} needs medium: radio for a guest station")
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
        elif thing.pack is not None and not any(
            p.name == thing.pan and p.medium == "radio" for p in topo.pans
        ):
            problems.append(
                (
                    ("things", ti, "pack"),
                    f"packed things need a PAN with medium: radio; {thing.pan!r} is a bridge "
                    "(each packed thing's address lives on the thing host's TUN)",
                )
            )
        if thing.pack is not None and thing.count is None:
            problems.append(
                (("things", ti, "pack"), "'pack' needs a group: set 'count' and an {n} in 'name'")
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
        out += [(("things", ti, "pack"), host) for host, _ in thing.packs()]
    return out


def _duplicates(names: list[str]) -> list[int]:
    seen: set[str] = set()
    dupes = []
    for index, name in enumerate(names):
        if name in seen:
            dupes.append(index)
        seen.add(name)
    return dupes
