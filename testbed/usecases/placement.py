"""Where the things of a run are now: the planned PAN, or the one `testbed move` put them on.

The plan (and the nodes' Docker labels, which cannot change) says where each thing was placed at
``up``; moves are recorded in the run directory (``moves.json``, 0600), one entry per thing
that is not where the plan put it. :func:`placed` lays that record over the backend's status
entries, so that ``status``, the scenario runner and the next move see the thing's current PAN,
its radio attribute and its data address. ``up`` starts a run as planned (rundir removes the
record).

Pure functions apart from reading and writing the record: the choice of a short address and of
the addresses on the new PAN are tested without a building.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.contracts.node_config import Attr
from testbed.contracts.radio import ATTRIBUTE_PREFIX, RadioPanConfig
from testbed.engines.base import NodeStatus
from testbed.plan.addressing import radio_host
from testbed.rundir import run_dir_for, write_private

MOVES_FILE = "moves.json"
PLANNED_PAN = "planned-pan"  # overlay attribute: where the plan put a moved thing
# Short addresses given to things that move onto a PAN start here, above the planner's
# (routers and things of a PAN are numbered from 1): a moved thing never takes a planned one.
MOVED_SHORT_BASE = 0x0100
# A moved thing's address on the new PAN's ZEP carrier network: this host number plus its
# short address, far above the planner's (node index + small offsets).
CARRIER_HOST_BASE = 0xD0_0000


@dataclass(frozen=True)
class Placement:
    thing: str
    pan: str  # where it is now
    planned_pan: str
    attribute: str  # its radio-<pan> value on the new PAN (RadioPanConfig.to_attribute)
    carrier: str  # its address on the new PAN's carrier network
    router: str  # the border router whose medium it is on now
    moved_at: float
    moves: int  # how many times it has moved in this run

    @property
    def radio(self) -> RadioPanConfig:
        return RadioPanConfig.from_attribute(self.pan, self.attribute)


def read(run_dir: Path) -> dict[str, Placement]:
    path = run_dir / MOVES_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {name: Placement(**entry) for name, entry in raw.items()}


def write(run_dir: Path, placements: Mapping[str, Placement]) -> None:
    data = {name: dataclasses.asdict(p) for name, p in sorted(placements.items())}
    write_private(run_dir / MOVES_FILE, json.dumps(data, indent=2).encode())


def placed(nodes: Iterable[NodeStatus], record: Mapping[str, Placement]) -> list[NodeStatus]:
    """Status entries with each moved thing shown where it is: its ``pan`` attribute, its
    radio attribute (so data_address and the carrier are the new PAN's) and ``planned-pan``."""
    out = []
    for node in nodes:
        where = record.get(node.node) if node.role == "thing" else None
        if where is None:
            out.append(node)
            continue
        attributes = {
            k: v for k, v in node.attributes.items() if not k.startswith(ATTRIBUTE_PREFIX)
        }
        attributes[ATTRIBUTE_PREFIX + where.pan] = where.attribute
        attributes[Attr.PAN] = where.pan
        attributes[PLANNED_PAN] = where.planned_pan
        out.append(dataclasses.replace(node, attributes=attributes))
    return out


def placed_runs(nodes: Iterable[NodeStatus]) -> list[NodeStatus]:
    """:func:`placed` for the nodes of any number of runs, each with its own record."""
    records: dict[str, dict[str, Placement]] = {}
    out = []
    for node in nodes:
        if node.run not in records:
            records[node.run] = read(run_dir_for(node.run))
        out.extend(placed([node], records[node.run]))
    return out


def radio_of(node: NodeStatus) -> RadioPanConfig | None:
    """The node's (single) radio PAN as its attributes say; None if it has none."""
    for key, value in sorted(node.attributes.items()):
        if key.startswith(ATTRIBUTE_PREFIX):
            return RadioPanConfig.from_attribute(key.removeprefix(ATTRIBUTE_PREFIX), value)
    return None


def free_short(wanted: int, taken: Iterable[int]) -> int:
    """``wanted`` (the thing's short address: its link-local and IID stay) if nobody on the
    PAN has it, else the first free one from MOVED_SHORT_BASE."""
    used = set(taken)
    if wanted not in used:
        return wanted
    for short in range(MOVED_SHORT_BASE, 0xFFFE):
        if short not in used:
            return short
    raise ValueError("no free short address left on the PAN")


def on_new_pan(thing: RadioPanConfig, router: RadioPanConfig, short: int) -> RadioPanConfig:
    """The thing's radio attribute on the router's PAN: the PAN's prefix with the IID of
    ``short`` (as the planner addresses every station, so IPHC elides it), the PAN's channel
    and PAN id, the router's medium as ZEP endpoint and its PAN address as next hop. Its own
    reassembly limits stay; the channel model is the hub's business."""
    address = radio_host(router.prefix, short)
    return dataclasses.replace(
        thing,
        pan=router.pan,
        address=f"{address}/64",
        short=short,
        medium=router.medium,
        router=str(router.ip),
        port=router.port,
        channel=router.channel,
        pan_id=router.pan_id,
        names={},
        carriers={},
    )


def link_local(short: int) -> ipaddress.IPv6Address:
    """The station's link-local address: fe80::/64 with the IID of its short address (as the
    node's radio derives it)."""
    return radio_host(ipaddress.IPv6Network("fe80::/64"), short)


def carrier_address(router: RadioPanConfig, short: int) -> str:
    """The moved thing's address on the PAN's carrier network (where the hub listens)."""
    network = ipaddress.IPv6Interface(f"{router.medium}/64").network
    return str(network[CARRIER_HOST_BASE + short])


def summary(placement: Placement) -> dict[str, Any]:
    radio = placement.radio
    return {
        "pan": placement.pan,
        "planned_pan": placement.planned_pan,
        "address": str(radio.ip),
        "short": f"0x{radio.short:04x}",
        "router": placement.router,
        "moves": placement.moves,
    }
