"""Moving a running thing to another PAN of the building: what `testbed move` and the scenario
step ``move`` call.

    move(engine, thing, pan, run, reregister=True, wait_read=60) -> MoveResult

A move is what happens when a device is carried to another floor: its radio leaves one medium
and joins another, it takes an address in the new PAN's prefix, and whoever talks to it must
learn where it is. In order (every refusal comes before the first change, so a refused move
changes nothing):

1. checks: the thing exists, is a thing on a ``medium: radio`` PAN, is not on ``pan`` already;
   ``pan`` is a radio PAN of the building served by a border router (another router or another
   PAN of the same router); the building has no forward policy (its rules name the planned
   addresses, which a move would leave behind).
2. the new router's medium admits the station (``station-admit``: its short address bound to
   its carrier address, as a planned station), the thing's container joins the new PAN's ZEP
   carrier network, and the thing's radio moves (``radio-move``: new station port and ZEP
   client towards the new hub).
3. addressing: the planned static set-up, redone for the new PAN, not 6LoWPAN-ND. The planner
   addresses every station statically (the PAN prefix with the IID of its short address, which
   IPHC elides), the things' kernels run with accept_ra=0, and the things' radio stack does not
   speak ND (the routers answer it for guests such as RIOT). So the host computes the address
   exactly as the planner would and sets it and the routes through the new router with ``ip``
   run in the container (the thing process holds no CAP_NET_ADMIN after set-up). The routers'
   routes need no change: each routes whole PAN prefixes, so the new address is reached through
   the new router by the routes every node has had since ``up``.
4. the old router's medium forgets the station (``station-release``), the container leaves the
   old carrier network, and the move is recorded in the run directory (testbed.usecases.
   placement; ``status`` shows the current PAN).
5. security: the thing re-registers with its trust center (``moved``, testbed.node.thing.moved):
   the trust center is the directory the backend reads addresses from, and it takes an address
   only from an authenticated enrolment, so the thing bootstraps again with its profile: one
   handshake (EDHOC; DTLS 1.2 with certificates; DTLS 1.2 with a PSK) and new OSCORE contexts.
   ``reregister=False`` keeps every context and tells nobody (the backend then reads the old
   address, where nothing answers).
6. with ``wait_read``: wait until every backend lists the thing at its new address and has read
   it there successfully; the time from the start of the move is ``read_again_s``.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from testbed import bringup
from testbed.contracts.node_config import Attr, Role
from testbed.contracts.radio import ATTRIBUTE_PREFIX, TUN_PREFIX, RadioPanConfig
from testbed.engines.base import Engine, NodeStatus
from testbed.errors import MoveError, TestbedError
from testbed.links.control import call
from testbed.plan.cross_domain import FORWARD_ATTRIBUTE
from testbed.rundir import run_dir_for
from testbed.usecases import placement
from testbed.usecases.placement import Placement

THING_TUN = f"{TUN_PREFIX}0"  # a thing has one radio PAN, on its first TUN
POLL = 0.5  # s between looks at the backends while waiting for a read at the new address


@dataclass(frozen=True)
class MoveResult:
    run: str
    thing: str
    profile: str
    old_pan: str
    pan: str
    old_address: str
    address: str
    short: int
    old_router: str
    router: str
    reregistered: bool
    handshakes: int  # bootstrap attempts of the re-registration (0 without one)
    lifecycle: str  # what the thing reports after the move
    bootstrap: dict[str, Any] | None  # the re-registration's cost (cost(): bytes, datagrams)
    # seconds from the start of the move: radio (re-attached and re-addressed),
    # reregistered (the thing's answer), read_again (every backend read it at the new address)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "thing": self.thing,
            "profile": self.profile,
            "old_pan": self.old_pan,
            "pan": self.pan,
            "old_address": self.old_address,
            "address": self.address,
            "short": f"0x{self.short:04x}",
            "old_router": self.old_router,
            "router": self.router,
            "reregistered": self.reregistered,
            "handshakes": self.handshakes,
            "lifecycle": self.lifecycle,
            "bootstrap": self.bootstrap,
            "timings": self.timings,
        }


def current(engine: Engine, run: str) -> list[NodeStatus]:
    """The run's nodes with moved things shown where they are now."""
    return placement.placed(engine.status(run), placement.read(run_dir_for(run)))


def move(
    engine: Engine,
    thing: str,
    pan: str,
    run: str | None = None,
    *,
    reregister: bool = True,
    wait_read: float | None = 60.0,
    timeout: float = 120.0,
) -> MoveResult:
    run = bringup.resolve_run(engine, run)
    nodes = current(engine, run)
    plan = _checked(nodes, run, thing, pan)
    started = time.monotonic()
    timings: dict[str, float] = {}

    _attach(engine, run, thing, plan)
    # 4. the old medium forgets it; the move is recorded
    call(engine, run, plan.old_router.node, "station-release", {"pan": plan.old.pan, "name": thing})
    engine.detach_network(run, thing, f"pan-{plan.old.pan}")
    record = placement.read(run_dir_for(run))
    before = record.get(thing)
    planned_pan = before.planned_pan if before else plan.status.attributes.get(Attr.PAN, "")
    # Kept even back on the planned PAN: its short address may not be the planned one.
    record[thing] = _placement(thing, pan, planned_pan, plan, before)
    placement.write(run_dir_for(run), record)
    timings["radio"] = round(time.monotonic() - started, 3)

    # 5. security: re-register with the trust center (or keep every context)
    answer = call(
        engine, run, thing, "moved",
        {"pan": pan, "address": str(plan.new.ip), "reregister": reregister, "timeout": timeout},
        timeout=timeout + 15.0,
    )  # fmt: skip
    timings["reregistered"] = round(time.monotonic() - started, 3)
    # 6. the backends read it at its new address
    if wait_read is not None and reregister:
        _wait_read(engine, run, thing, str(plan.new.ip), started, wait_read)
        timings["read_again"] = round(time.monotonic() - started, 3)
    return MoveResult(
        run=run,
        thing=thing,
        profile=plan.status.attributes.get(Attr.PROFILE, ""),
        old_pan=plan.old.pan,
        pan=pan,
        old_address=str(plan.old.ip),
        address=str(plan.new.ip),
        short=plan.new.short,
        old_router=plan.old_router.node,
        router=plan.router.node,
        reregistered=reregister,
        handshakes=int(answer.get("handshakes", 0)),
        lifecycle=str(answer.get("lifecycle", "")),
        bootstrap=cost(_last(engine, run, thing)) if reregister else None,
        timings=timings,
    )


def _attach(engine: Engine, run: str, thing: str, plan: _Plan) -> None:
    """Steps 2 and 3. A failure undoes what was done (best effort, in reverse), so that the
    thing is back on its old PAN and the error can be acted on and the move tried again."""
    pan = plan.new.pan
    undo: list[Callable[[], object]] = []
    try:
        # 2. the radio: admitted by the new medium, on its carrier, station moved
        call(engine, run, plan.router.node, "station-admit", {
            "pan": pan, "name": thing, "short": plan.new.short, "carrier": plan.carrier,
        })  # fmt: skip
        undo.append(lambda: call(
            engine, run, plan.router.node, "station-release", {"pan": pan, "name": thing}
        ))  # fmt: skip
        engine.attach_network(run, thing, f"pan-{pan}", plan.carrier)
        undo.append(lambda: engine.detach_network(run, thing, f"pan-{pan}"))
        call(engine, run, thing, "radio-move", {"pan": pan, "attribute": plan.new.to_attribute()})
        undo.append(lambda: call(engine, run, thing, "radio-move", {
            "pan": plan.old.pan, "attribute": plan.old.to_attribute(),
        }))  # fmt: skip
        # 3. its addresses and routes, as the planner's static set-up would have made them
        undo.append(lambda: _readdress(engine, run, thing, plan.new, plan.old))
        _readdress(engine, run, thing, plan.old, plan.new)
    except TestbedError:
        for step in reversed(undo):
            with contextlib.suppress(TestbedError):
                step()
        raise


@dataclass(frozen=True)
class _Plan:
    status: NodeStatus
    old: RadioPanConfig
    new: RadioPanConfig
    carrier: str
    old_router: NodeStatus
    router: NodeStatus


def _checked(nodes: list[NodeStatus], run: str, thing: str, pan: str) -> _Plan:
    """Every refusal of a move, before anything changes."""
    by_name = {n.node: n for n in nodes}
    status = by_name.get(thing)
    if status is None:
        raise MoveError(
            f"run {run!r} has no thing {thing!r}",
            f"`testbed status --run {run}` lists its things",
        )
    if status.role != Role.THING:
        raise MoveError(f"{thing} is a {status.role}, not a thing: only things move")
    host = status.attributes.get(Attr.THING_HOST)
    if host:
        # Its packmates share its container, TUN and carrier address: re-attaching the
        # container to another PAN would move them all.
        raise MoveError(
            f"{thing} is packed in thing host {host} with other things: only a thing in a "
            "container of its own moves",
            "give its group no `pack:` key in the topology",
        )
    if status.state != "running":
        raise MoveError(
            f"{thing} is {status.state}, not running", f"`testbed start {thing} --run {run}` first"
        )
    try:
        old = placement.radio_of(status)
    except ValueError as exc:
        raise MoveError(f"{thing}: its radio attribute is garbled: {exc}") from None
    if old is None:
        raise MoveError(
            f"{thing} is not a station of a radio PAN (its PAN {status.attributes.get(Attr.PAN)!r}"
            " is a plain network): only things on a `medium: radio` PAN move",
            "give its PAN `medium: radio` in the topology",
        )
    routers = [n for n in nodes if n.role == Role.BORDER_ROUTER]
    if any(r.attributes.get(FORWARD_ATTRIBUTE) for r in routers):
        raise MoveError(
            "this building has a forward policy (`policies:`): its rules name the things' "
            "planned addresses, and a moved thing would be cut off by them",
            "move things in a building without `policies:` (e.g. topologies/two-floors.yaml)",
        )
    radio_pans = {
        key.removeprefix(ATTRIBUTE_PREFIX): r
        for r in routers
        for key in r.attributes
        if key.startswith(ATTRIBUTE_PREFIX)
    }
    if pan == old.pan:
        raise MoveError(f"{thing} is on PAN {pan} already", "name another PAN to move it to")
    if pan not in radio_pans:
        served = sorted(p for r in routers for p in r.attributes.get(Attr.PANS, "").split(",") if p)
        if pan in served:
            raise MoveError(
                f"PAN {pan} is a plain network, not a radio PAN: a thing's radio cannot join it",
                "radio PANs of this building: " + (", ".join(sorted(radio_pans)) or "none"),
            )
        raise MoveError(
            f"run {run!r} has no PAN {pan!r}",
            "radio PANs of this building: " + (", ".join(sorted(radio_pans)) or "none"),
        )
    if old.pan not in radio_pans:
        raise MoveError(f"no border router serves {thing}'s PAN {old.pan} (is it running?)")
    router = radio_pans[pan]
    hub = RadioPanConfig.from_attribute(pan, router.attributes[ATTRIBUTE_PREFIX + pan])
    taken = {int(short, 16) for short, name in hub.names.items() if name != thing}
    taken |= {hub.short}
    for other in nodes:  # things moved onto the PAN earlier (the hub's names are as planned)
        if other.node != thing and other.role == Role.THING:
            radio = placement.radio_of(other)
            if radio is not None and radio.pan == pan:
                taken.add(radio.short)
    taken -= {
        int(s, 16) for s, n in hub.names.items() if n != thing and _elsewhere(by_name.get(n), pan)
    }
    short = placement.free_short(old.short, taken)
    new = placement.on_new_pan(old, hub, short)
    return _Plan(
        status, old, new, placement.carrier_address(hub, short), radio_pans[old.pan], router
    )


def _elsewhere(node: NodeStatus | None, pan: str) -> bool:
    """A planned station of ``pan`` that has moved away (its short address is free there)."""
    if node is None:
        return False
    radio = placement.radio_of(node)
    return radio is not None and radio.pan != pan


def _placement(
    thing: str, pan: str, planned_pan: str, plan: _Plan, before: Placement | None
) -> Placement:
    return Placement(
        thing=thing,
        pan=pan,
        planned_pan=planned_pan,
        attribute=plan.new.to_attribute(),
        carrier=plan.carrier,
        router=plan.router.node,
        moved_at=time.time(),
        moves=(before.moves if before else 0) + 1,
    )


def _readdress(
    engine: Engine, run: str, thing: str, old: RadioPanConfig, new: RadioPanConfig
) -> None:
    """New address (and link-local, if the short address changed) on the thing's TUN, every
    route through the old router through the new one, the old prefix through the new router
    (things left behind stay reachable), then the old address gone. One shell script, run as
    the container's root (the thing's own process has no CAP_NET_ADMIN any more)."""
    listed = engine.exec(run, thing, ["ip", "-6", "-j", "route", "show"])
    try:
        routes = json.loads(listed.output.decode() or "[]")
    except ValueError:
        routes = []
    if listed.exit_code != 0 or not isinstance(routes, list):
        raise MoveError(f"{thing}: cannot read its routes: {listed.output.decode()[-200:]}")
    dev, q = THING_TUN, shlex.quote
    new_ll = f"{placement.link_local(new.short)}/64"
    old_ll = f"{placement.link_local(old.short)}/64"
    lines = ["set -e", f"ip -6 addr replace {q(new.address)} dev {dev} nodad"]
    if new_ll != old_ll:
        lines.append(f"ip -6 addr replace {q(new_ll)} dev {dev} nodad")
    for route in routes:
        dst = str(route.get("dst", ""))
        if route.get("gateway") != old.router or dst in ("", "default"):
            continue
        if dst == str(new.prefix):
            lines.append(f"ip -6 route del {q(dst)} via {q(old.router)} dev {dev}")
        else:
            lines.append(f"ip -6 route replace {q(dst)} via {q(new.router)} dev {dev}")
    lines.append(f"ip -6 addr del {q(old.address)} dev {dev}")
    if new_ll != old_ll:
        lines.append(f"ip -6 addr del {q(old_ll)} dev {dev}")
    lines.append(f"ip -6 route replace {q(str(old.prefix))} via {q(new.router)} dev {dev}")
    result = engine.exec(run, thing, ["sh", "-c", "\n".join(lines)])
    if result.exit_code != 0:
        raise MoveError(
            f"{thing}: re-addressing on PAN {new.pan} failed: {result.output.decode()[-300:]}",
            f"the move was undone (see `testbed logs {thing} --run {run}`); try it again",
        )


def _backends(engine: Engine, run: str) -> list[str]:
    return [
        n.node for n in engine.status(run) if n.role == Role.INTERNET_HOST and n.kind == "backend"
    ]


def read_at(state: dict[str, Any] | None, thing: str, address: str, since: float) -> bool:
    """Whether a backend's /state shows ``thing`` listed at ``address`` with a successful read
    after ``since`` (Unix time)."""
    inner = (state or {}).get("state", state or {})
    listing = inner.get("things") or (inner.get("backend") or {}).get("things") or {}
    for entry in listing.values():
        if entry.get("name") != thing or entry.get("address") != address:
            continue
        for read in (entry.get("last") or {}).values():
            if read.get("outcome") == "ok" and float(read.get("at") or 0) > since:
                return True
    return False


def _wait_read(
    engine: Engine, run: str, thing: str, address: str, started: float, limit: float
) -> None:
    since = time.time() - (time.monotonic() - started)
    backends = _backends(engine, run)
    if not backends:
        return  # nobody reads things in this building
    deadline = time.monotonic() + limit
    pending = set(backends)
    while pending:
        pending = {
            b for b in pending if not read_at(engine.node_state(run, b), thing, address, since)
        }
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise MoveError(
                f"{thing} moved to {address}, but {', '.join(sorted(pending))} did not read it "
                f"there within {limit:g} s",
                f"`testbed status --run {run}`; the backend's /state lists where it reads things",
            )
        time.sleep(POLL)


def cost(bootstrap: dict[str, Any] | None) -> dict[str, Any] | None:
    """A bootstrap record (BootstrapResult.to_dict) summed: UDP payload bytes and datagrams
    both ways, per direction, its outcome and duration."""
    if not bootstrap:
        return None
    out: dict[str, Any] = {
        "profile": bootstrap.get("profile"),
        "outcome": bootstrap.get("outcome"),
        "duration_s": bootstrap.get("duration_s"),
        "retransmissions": bootstrap.get("retransmissions"),
        "bytes": 0,
        "datagrams": 0,
    }
    for message in bootstrap.get("messages") or []:
        direction = str(message.get("direction"))
        size, count = int(message.get("bytes") or 0), int(message.get("datagrams") or 0)
        out["bytes"] += size
        out["datagrams"] += count
        out[f"bytes_{direction}"] = out.get(f"bytes_{direction}", 0) + size
    return out


def _last(engine: Engine, run: str, thing: str) -> dict[str, Any] | None:
    state = engine.node_state(run, thing)
    inner = (state or {}).get("state", state or {})
    last = inner.get("bootstrap")
    return last if isinstance(last, dict) else None
