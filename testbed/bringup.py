"""The steps of bringing a run up and down: topology -> plan -> run dir -> nodes, and back.

The use cases (``testbed.usecases``) put these steps together for the CLI, scenario runners and
tests; benchmarks and tests also call single steps.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed import manufacture, rundir
from testbed.contracts.node_config import Attr, Role
from testbed.engines import packed
from testbed.engines.base import Engine, EventFn, NodeStatus, RemovalReport
from testbed.errors import AlreadyRunning, NotRunning, RunStopped, TestbedError
from testbed.node.lifecycle import SETTLED, LifecycleState
from testbed.node.thing.status import ThingStatus
from testbed.observe.hook import start_for_run as start_prometheus
from testbed.observe.hook import start_grafana_for_run as start_grafana
from testbed.plan import Plan, make_plan
from testbed.topology import load_topology

if TYPE_CHECKING:
    from testbed.phases.runner import PhaseEvent, PhaseResult


@dataclass(frozen=True)
class UpResult:
    plan: Plan
    run_dir: Path
    image: str


def plan_for(topology_path: Path, run: str | None) -> tuple[Plan, str]:
    topology = load_topology(topology_path)
    run_name = run or topology.building
    path = topology_path.resolve()
    plan = make_plan(topology, run_name, str(path), str(rundir.run_dir_for(run_name)))
    return plan, path.read_text(encoding="utf-8")


def up(
    engine: Engine,
    plan: Plan,
    topology_text: str,
    image: str,
    on_event: EventFn,
    *,
    keep_on_error: bool = False,
) -> UpResult:
    ensure_not_running(engine, plan.run)
    run_dir = rundir.run_dir_for(plan.run)
    # Nothing of this run is up, so a directory left by a crashed run is stale: start clean.
    rundir.remove_run_dir(run_dir)
    rundir.write_run_dir(plan, run_dir, topology_text)
    # The run's Prometheus and Grafana need only the networks and the plan (their targets come
    # from it), so they start while the nodes do, once the engine reports every network made.
    # Neither ever raises: a run without them still works and the user is told. `down` removes
    # them by the run's labels.
    services = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-services")
    started: list[Future[None]] = []
    networks_made: set[str] = set()

    def on_deploy(event: str, name: str) -> None:
        if event == "network":
            networks_made.add(name)
            if len(networks_made) == len(plan.networks) and not started:
                started.append(services.submit(_start_services, engine, plan, run_dir))
        on_event(event, name)

    try:
        manufacture.mint(plan, run_dir)
        engine.deploy(plan, image, run_dir, on_deploy)
    except BaseException:
        _join(started, services)
        # Leave nothing half-made behind unless the user wants to look at it.
        if not keep_on_error:
            engine.undeploy(plan.run)
            rundir.remove_run_dir(run_dir)
        raise
    if not started:  # an engine that reports no networks: after the nodes, as before
        _start_services(engine, plan, run_dir)
    _join(started, services)
    return UpResult(plan=plan, run_dir=run_dir, image=image)


def _start_services(engine: Engine, plan: Plan, run_dir: Path) -> None:
    start_prometheus(engine, plan, run_dir)
    start_grafana(engine, plan, run_dir)  # when its image is available; likewise never raises


def _join(started: list[Future[None]], pool: ThreadPoolExecutor) -> None:
    for future in started:
        future.result()
    pool.shutdown(wait=True)


COMMISSION_TIMEOUT = 180.0


def thing_status(state: dict[str, Any] | None) -> ThingStatus | None:
    """The status record in a thing's GET /state answer (None: no answer, or not a thing)."""
    role_state = (state or {}).get("state")
    return ThingStatus.parse(role_state) if isinstance(role_state, dict) else None


def lifecycle_of(state: dict[str, Any] | None) -> tuple[str, str]:
    """(lifecycle state, reason) from a thing's GET /state answer ("" for what it lacks)."""
    status = thing_status(state)
    if status is None:
        return "", ""
    return status.lifecycle.value, status.reason or ""


def domain_of(state: dict[str, Any] | None) -> str:
    """The operator domain a thing's GET /state answer names ("" if none)."""
    status = thing_status(state)
    return "" if status is None else status.domain or ""


def wait_commissioned(
    engine: Engine,
    plan: Plan,
    on_event: EventFn,
    timeout: float = COMMISSION_TIMEOUT,
) -> dict[str, tuple[str, str]]:
    """Wait until every thing is operational or failed; returns {thing: (state, reason)}.

    Things whose bootstrap does not finish in time are reported with their last state, so the
    caller can say which ones hang and where.
    """
    things = [n.name for n in plan.nodes if n.role == Role.THING]
    return wait_final(engine, plan.run, things, on_event, timeout)


# Where a thing stays until an operator acts (a phase or a control action moves it on): a
# decommissioned or manufactured thing never bootstraps by itself.
RESTING = frozenset({LifecycleState.DECOMMISSIONED, LifecycleState.MANUFACTURED})


def rests(lifecycle: str, attributes: Mapping[str, str]) -> bool:
    """Whether a thing in this lifecycle state stays there until an operator acts: RESTING,
    or installed in a building whose things are commissioned by the phases."""
    return lifecycle in RESTING or (
        lifecycle == LifecycleState.INSTALLED and attributes.get(Attr.AUTO_COMMISSION) == "false"
    )


def wait_final(
    engine: Engine,
    run: str,
    things: list[str],
    on_event: EventFn,
    timeout: float = COMMISSION_TIMEOUT,
    resting: Callable[[str, str], bool] | None = None,
) -> dict[str, tuple[str, str]]:
    """Wait until each named thing of a run is operational or failed (see wait_commissioned),
    or, where ``resting(thing, lifecycle)`` says so, in a state it stays in by itself."""
    pending = list(things)
    result: dict[str, tuple[str, str]] = {}
    deadline = time.monotonic() + timeout
    packed_in = packed.thing_hosts(engine.status(run)) if pending else {}
    while pending:
        states = packed.node_states(engine, run, pending, packed_in)
        still = []
        for name, state in states.items():
            result[name] = lifecycle_of(state)
            lifecycle = result[name][0]
            if lifecycle in SETTLED or (resting is not None and resting(name, lifecycle)):
                on_event(result[name][0], name)
            else:
                still.append(name)
        pending = still
        if pending and time.monotonic() > deadline:
            for name in pending:
                result[name] = (result[name][0] or "unknown", "timeout: still not commissioned")
            break
        if pending:
            time.sleep(0.5)
    return result


def commissioned_by_phases(plan: Plan) -> bool:
    """Whether `up` commissions this plan's things through the Ansible phases."""
    return any(
        n.config.attributes.get(Attr.AUTO_COMMISSION) == "false"
        for n in plan.nodes
        if n.role == Role.THING
    )


def commission_by_phases(
    engine: Engine, plan: Plan, on_event: Callable[[PhaseEvent], None] | None = None
) -> list[PhaseResult]:
    """install, then commission: the same playbooks `testbed phase` runs.

    A failed install is an error (nothing can commission without its voucher imported); hosts
    that fail to commission are reported by wait_commissioned afterwards, like refusals.
    """
    from testbed.phases.runner import PhaseFailed, run_phase

    install = run_phase("install", engine=engine, run=plan.run, on_event=on_event)
    if not install.succeeded:
        raise PhaseFailed(
            f"install failed on {', '.join(install.failed_hosts) or 'the run'}: "
            + "; ".join(install.hosts[h].reason for h in install.failed_hosts),
            f"see `testbed phase install --run {plan.run}` and {install.artifacts}",
        )
    commission = run_phase("commission", engine=engine, run=plan.run, on_event=on_event)
    return [install, commission]


def with_lifecycle(engine: Engine, nodes: list[NodeStatus]) -> list[NodeStatus]:
    """Status entries of running things completed with the lifecycle state and the operator
    domain they report (a transferred thing's label still names its planned owner)."""
    asked = [n for n in nodes if n.role == Role.THING and n.state == "running"]
    answers = {
        f"{node}@{run}": state
        for run in sorted({n.run for n in asked})
        for node, state in packed.node_states(
            engine, run, [n.node for n in asked if n.run == run], packed.thing_hosts(nodes)
        ).items()
    }
    out = []
    for node in nodes:
        answer = answers.get(node.node + "@" + node.run)
        lifecycle, reason = lifecycle_of(answer)
        domain = domain_of(answer)
        out.append(dataclasses.replace(node, lifecycle=lifecycle, reason=reason, domain=domain))
    return out


def live_runs(engine: Engine) -> dict[str, int]:
    """Runs that are up. A run of empty networks alone is what a `down` could not remove (see
    RemovalReport.stale_networks): it is gone, and its next deploy removes or reuses them."""
    return {
        run: count
        for run, count in engine.runs().items()
        if count > len(engine.empty_networks(run))
    }


@dataclass(frozen=True)
class RunState:
    """How much of a run runs: its nodes (services such as Prometheus aside) and how many of them
    the engine reports running. After a daemon restart every node exists and none runs."""

    run: str
    nodes: int
    running: int

    @property
    def word(self) -> str:
        if self.nodes and self.running == self.nodes:
            return "running"
        return "stopped" if self.running == 0 else "partly running"


def run_states(nodes: list[NodeStatus]) -> dict[str, RunState]:
    """Run -> RunState, from status entries (of one run or many)."""
    members = [n for n in nodes if n.role in Role.ALL]
    return {
        run: RunState(
            run,
            nodes=sum(1 for n in members if n.run == run),
            running=sum(1 for n in members if n.run == run and n.state == "running"),
        )
        for run in sorted({n.run for n in members})
    }


def ensure_not_running(engine: Engine, run: str) -> None:
    count = engine.runs().get(run, 0)
    if count and count > len(engine.empty_networks(run)):  # as in live_runs, for one run
        state = run_states(engine.status(run)).get(run)
        if state is not None and state.word == "stopped":
            raise RunStopped(
                f"run {run!r} is stopped: its {state.nodes} nodes exist but none runs (after "
                "`testbed stop`, or a restart of the Docker daemon); nothing was changed",
                f"start it with `testbed start --run {run}`; remove it with "
                f"`testbed down --run {run}`",
            )
        raise AlreadyRunning(
            f"run {run!r} is already up ({count} objects carry its label); nothing was changed",
            f"see it with `testbed status --run {run}`; remove it with "
            f"`testbed down --run {run}`, or pick another --run NAME",
        )


def resolve_run(engine: Engine, run: str | None) -> str:
    """The run a command means: the one named, or the only one that is up."""
    if run:
        return run
    runs = live_runs(engine)
    if not runs:
        raise NotRunning("no testbed run is up", "start one with `testbed up`")
    if len(runs) > 1:
        raise TestbedError(
            f"several runs are up: {', '.join(sorted(runs))}",
            "name one with --run NAME",
        )
    return next(iter(runs))


def down(engine: Engine, run: str, *, keep_files: bool = False) -> RemovalReport:
    run_dirs = {Path(s.run_dir) for s in engine.status(run) if s.run_dir}
    if not engine.runs().get(run) and not run_dirs and not rundir.run_dir_for(run).is_dir():
        raise NotRunning(f"run {run!r} is not up", "list what is up with `testbed status`")
    report = engine.undeploy(run)
    if not keep_files:
        for path in sorted(run_dirs | {rundir.run_dir_for(run)}):
            if rundir.remove_run_dir(path):
                report.run_dirs.append(str(path))
    return report
