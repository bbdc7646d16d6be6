"""`up` and `down` as use cases: what the CLI, scenario runners and tests call.

up(engine, topology, run, options, progress) -> UpResult
    plan -> node image -> run directory and credentials -> networks, volumes, nodes (ready)
    -> Prometheus, Grafana -> install + commission (Ansible) -> wait until every thing is
    operational or failed -> publish to Grafana
down(engine, run, keep_files=...) -> RemovalReport
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from testbed import bringup, rundir
from testbed.contracts.node_config import Role
from testbed.engines.base import Engine, RemovalReport
from testbed.errors import CommissioningFailed
from testbed.observe.hook import url_of
from testbed.observe.publish import publish_after_up
from testbed.phases.runner import PhaseEvent
from testbed.plan import Plan, make_plan
from testbed.topology.schema import Topology
from testbed.usecases.progress import NoProgress, Progress

OPERATIONAL = "operational"


@dataclass(frozen=True)
class UpOptions:
    base_image: str | None = None  # for the node image (default python:3.11-slim or offline)
    keep_on_error: bool = False  # keep what was made when a node fails
    # commission the things (install + commission phases, or their own bootstrap with
    # `commissioning: auto`) and wait until each is operational or failed
    commission: bool = True
    commission_timeout: float = bringup.COMMISSION_TIMEOUT


@dataclass(frozen=True)
class UpResult:
    plan: Plan
    run_dir: Path
    image: str
    # thing -> (lifecycle state, reason); empty when not commissioned
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)
    prometheus_url: str | None = None
    grafana: list[str] = field(default_factory=list)  # lines: where to look, or why not

    @property
    def failed(self) -> dict[str, tuple[str, str]]:
        """Things that are not operational, with their state and reason."""
        return {n: o for n, o in self.outcomes.items() if o[0] != OPERATIONAL}

    def raise_for_commissioning(self) -> None:
        """CommissioningFailed when some things are not operational (the run stays up)."""
        if self.failed:
            run = self.plan.run
            raise CommissioningFailed(
                f"{len(self.failed)} of {len(self.outcomes)} things are not operational; "
                "the run stays up",
                f"inspect with `testbed status --run {run}` and `testbed logs NODE --run {run}`",
            )


def plan_of(topology: Path | Topology, run: str | None = None) -> tuple[Plan, str]:
    """The plan of a topology (a file, or a Topology made in code) and the topology's text."""
    if isinstance(topology, Topology):
        name = run or topology.building
        plan = make_plan(topology, name, "", str(rundir.run_dir_for(name)))
        return plan, yaml.safe_dump(topology.model_dump(mode="json"), sort_keys=False)
    return bringup.plan_for(topology, run)


def up(
    engine: Engine,
    topology: Path | Topology,
    run: str | None = None,
    options: UpOptions | None = None,
    progress: Progress | None = None,
) -> UpResult:
    """Bring a building up, commissioned; returns the plan, outcomes and where to look.

    Raises AlreadyRunning (or RunStopped) if the run exists, NodeFailed if a node does not
    become ready (what was made is removed unless ``keep_on_error``), PhaseFailed if install
    fails. Things that do not become operational are reported in ``UpResult.failed``, not
    raised: call ``raise_for_commissioning()`` to treat them as an error.
    """
    options = options or UpOptions()
    report = progress or NoProgress()
    plan, text = plan_of(topology, run)
    bringup.ensure_not_running(engine, plan.run)  # before minutes of image building

    report.begin("image", None)
    image = engine.ensure_node_image(
        base_image=options.base_image,
        progress=lambda message, step, total: report.update(
            "image", message, completed=step, total=total
        ),
    )
    report.end("image", image.tag)

    report.begin("networks", len(plan.networks))
    report.begin("nodes", sum(1 for n in plan.nodes if not n.packed_in))  # containers

    def on_deploy(event: str, name: str) -> None:
        if event == "network":
            report.update("networks", name, advance=1)
        elif event == "ready":
            report.update("nodes", name, advance=1)

    deployed = bringup.up(
        engine, plan, text, image.tag, on_deploy, keep_on_error=options.keep_on_error
    )
    report.end("networks")
    report.end("nodes")

    outcomes: dict[str, tuple[str, str]] = {}
    if options.commission:
        if bringup.commissioned_by_phases(plan):
            # The same path as `testbed phase install` / `commission` (Ansible).
            report.begin("phases", None)

            def on_phase(event: PhaseEvent) -> None:
                if event.kind != "task":
                    report.update("phases", f"{event.host}: {event.task[:40]}")

            bringup.commission_by_phases(engine, plan, on_phase)
            report.end("phases", "done")
        things = [n for n in plan.nodes if n.role == Role.THING]
        report.begin("commissioned", len(things))
        outcomes = bringup.wait_commissioned(
            engine,
            plan,
            lambda state, name: report.update("commissioned", f"{name}: {state}", advance=1),
            timeout=options.commission_timeout,
        )
        report.end("commissioned")

    prometheus = url_of(engine, plan.run)
    grafana = publish_after_up(engine, plan.run, deployed.run_dir, prometheus)
    return UpResult(
        plan=plan,
        run_dir=deployed.run_dir,
        image=image.tag,
        outcomes=outcomes,
        prometheus_url=prometheus,
        grafana=grafana,
    )


def down(engine: Engine, run: str | None, *, keep_files: bool = False) -> RemovalReport:
    """Remove every container, network, volume and file of a run (the only one up if None)."""
    return bringup.down(engine, bringup.resolve_run(engine, run), keep_files=keep_files)
