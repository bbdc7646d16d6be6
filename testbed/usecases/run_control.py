"""Stopping and starting a run that exists: `testbed stop`, `start`, `restart [NODE]`.

A run's nodes keep their state on their volumes and their addresses on their networks, so a
stopped run comes back as it was: after `testbed stop`, and after a restart of the Docker daemon
(a host reboot), which leaves every node exited. Nodes start in the order of `up` (border
routers, trust centers and Internet hosts first, then things), each tier together, with the
readiness probe of `up`; then each thing is awaited until it is operational or failed again. The
run's services (Prometheus, Grafana) start last, without a probe; they stop first.

Packed things (docs/packed-things.md) have no container: a thing host's container runs all of
its pack. Stopping or starting the thing host does so for its pack (the host is in the things'
tier, and its things are awaited like any thing); naming one packed thing is refused, since
acting on its container would silently stop or restart every packmate with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from testbed import bringup
from testbed.contracts import packing
from testbed.contracts.node_config import Attr, Role
from testbed.engines.base import Engine, NodeStatus
from testbed.errors import NotRunning, PackedThingError
from testbed.usecases.progress import NoProgress, Progress

INFRASTRUCTURE = (Role.BORDER_ROUTER, Role.TRUST_CENTER, Role.INTERNET_HOST)


@dataclass(frozen=True)
class StartResult:
    run: str
    # containers (nodes, thing hosts, services) that were not running
    started: list[str] = field(default_factory=list)
    # thing -> (lifecycle state, reason) after the start, as `up` reports them
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)
    # things that came back in a state they stay in until an operator acts (bringup.rests):
    # left so before the stop (decommissioned, or awaiting the commission phase), not failed
    resting: set[str] = field(default_factory=set)

    @property
    def failed(self) -> dict[str, tuple[str, str]]:
        return {
            n: o
            for n, o in self.outcomes.items()
            if o[0] != "operational" and n not in self.resting
        }


def tiers(nodes: list[NodeStatus]) -> list[list[NodeStatus]]:
    """Start order: infrastructure, things (and thing hosts), then the run's services (anything
    else). Packed things are left out: their thing host's container is theirs."""
    infrastructure = [n for n in nodes if n.role in INFRASTRUCTURE]
    things = [
        n for n in nodes if (n.role == Role.THING and not packed_in(n)) or n.role == packing.ROLE
    ]
    services = [n for n in nodes if n.role not in (*Role.ALL, packing.ROLE)]
    return [tier for tier in (infrastructure, things, services) if tier]


def packed_in(node: NodeStatus) -> str:
    """The thing host of a packed thing ("" for every other node)."""
    return node.attributes.get(Attr.THING_HOST, "") if node.role == Role.THING else ""


def _members(engine: Engine, run: str, node: str | None) -> list[NodeStatus]:
    nodes = engine.status(run)
    if not nodes:
        raise NotRunning(f"run {run!r} has no nodes", "list what exists with `testbed status`")
    if node is None:
        return nodes
    chosen = [n for n in nodes if n.node == node]
    if not chosen:
        raise NotRunning(
            f"run {run!r} has no node {node!r}", f"list its nodes with `testbed status --run {run}`"
        )
    host = packed_in(chosen[0])
    if host:
        mates = sum(1 for n in nodes if packed_in(n) == host) - 1
        raise PackedThingError(
            f"{node} is a packed thing: it runs in thing host {host} with {mates} "
            f"packmate{'' if mates == 1 else 's'} and has no container of its own to stop or "
            "start",
            f"`testbed restart {host} --run {run}` restarts the whole pack; to take {node} alone "
            f"out of service run a phase on it, e.g. `testbed phase decommission --run {run} "
            f"--limit {node}`",
        )
    # A thing host comes with its things: they are awaited after a start like any thing.
    return chosen + [n for n in nodes if packed_in(n) == node]


def stop(
    engine: Engine, run: str | None, node: str | None = None, progress: Progress | None = None
) -> list[str]:
    """Stop a run's nodes (or one node), keeping them; returns those that were running."""
    report = progress or NoProgress()
    name = bringup.resolve_run(engine, run)
    members = _members(engine, name, node)
    report.begin("stopped", len(members))
    stopped: list[str] = []
    for tier in reversed(tiers(members)):
        done = engine.stop_nodes(name, [n.node for n in tier])
        stopped += done
        report.update("stopped", ", ".join(done), advance=len(tier))
    report.end("stopped")
    return stopped


def start(
    engine: Engine,
    run: str | None,
    node: str | None = None,
    progress: Progress | None = None,
    *,
    timeout: float = bringup.COMMISSION_TIMEOUT,
) -> StartResult:
    """Start what of a run (or of one node) is not running, in dependency order, and wait until
    each node is ready and each thing started is operational or failed."""
    report = progress or NoProgress()
    name = bringup.resolve_run(engine, run)
    waiting = [n for n in _members(engine, name, node) if n.state != "running"]
    containers = [n for n in waiting if not packed_in(n)]  # a packed thing is its host's
    report.begin("nodes", len(containers))
    for tier in tiers(waiting):
        # services have no readiness probe; nodes and thing hosts do
        probe = all(n.role in (*Role.ALL, packing.ROLE) for n in tier)
        engine.start_nodes(
            name,
            [n.node for n in tier],
            lambda event, started: report.update(
                "nodes", started, advance=1 if event == "ready" else 0
            ),
            probe=probe,
        )
        if not probe:
            report.update("nodes", advance=len(tier))
    report.end("nodes")
    things = {n.node: n.attributes for n in waiting if n.role == Role.THING}

    def left_so(thing: str, lifecycle: str) -> bool:
        # Decommissioned (or not yet commissioned by the phases) before the stop, a thing
        # comes back so: nothing to wait for.
        return bringup.rests(lifecycle, things[thing])

    report.begin("commissioned", len(things))
    outcomes = bringup.wait_final(
        engine,
        name,
        list(things),
        lambda state, thing: report.update("commissioned", f"{thing}: {state}", advance=1),
        timeout,
        resting=left_so,
    )
    report.end("commissioned")
    return StartResult(
        run=name,
        started=[n.node for n in containers],
        outcomes=outcomes,
        resting={t for t, (state, _) in outcomes.items() if left_so(t, state)},
    )


def restart(
    engine: Engine,
    run: str | None,
    node: str | None = None,
    progress: Progress | None = None,
    *,
    timeout: float = bringup.COMMISSION_TIMEOUT,
) -> StartResult:
    """Stop, then start a run (or one node) as `stop` and `start` do."""
    name = bringup.resolve_run(engine, run)
    stop(engine, name, node, progress)
    return start(engine, name, node, progress, timeout=timeout)


def state_lines(nodes: list[NodeStatus]) -> list[str]:
    """One line per run that is not fully running, for `testbed status`: stopped or partly."""
    lines = []
    for state in bringup.run_states(nodes).values():
        if state.word == "stopped":
            lines.append(
                f"run {state.run} is stopped ({state.nodes} nodes exist, none runs): "
                f"start it with `testbed start --run {state.run}`"
            )
        elif state.word == "partly running":
            lines.append(
                f"run {state.run} is partly running ({state.running} of {state.nodes} nodes): "
                f"`testbed start --run {state.run}` starts the others"
            )
    return lines
