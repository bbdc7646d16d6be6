"""The run directory a rendered compose file needs, made without starting anything.

Compose cannot mint credentials, so ``testbed render`` does what ``testbed.bringup.up`` does
before it deploys: the plan and topology copy (``rundir.write_run_dir``), every node's
credentials (``manufacture.mint``), the Prometheus files (``observe.config``), with file_sd
targets from the plan, and the admin password of the run's Grafana (0600). A run that is up
keeps its directory: minting anew would leave its nodes with credentials nobody else knows, so
``existing_run_dir`` hands out that directory, read-only, for the compose file of a run that exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed import bringup, manufacture, rundir
from testbed.compose.document import run_dir_of
from testbed.errors import AlreadyRunning, InputError, RunStopped, TestbedError
from testbed.observe import grafana_service
from testbed.observe.config import write_observe_dir
from testbed.observe.targets import targets_from_plan
from testbed.plan.model import Plan

if TYPE_CHECKING:
    from testbed.engines.base import Engine


def prepare_run_dir(plan: Plan, topology_text: str, engine: Engine | None = None) -> Path:
    """Write and mint the run directory of ``plan`` (refused while the run is up)."""
    if engine is not None:
        bringup.ensure_not_running(engine, plan.run)
    run_dir = Path(run_dir_of(plan))
    # Nothing of this run is up, so a directory left behind is stale: start clean, as `up` does.
    rundir.remove_run_dir(run_dir)
    rundir.write_run_dir(plan, run_dir, topology_text)
    try:
        manufacture.mint(plan, run_dir)
        write_observe_dir(
            plan.run, run_dir, targets_from_plan(plan), interval_s=plan.scrape_interval_s
        )
        grafana_service.write_password(run_dir)  # the compose file's Grafana mounts it
    except BaseException:
        rundir.remove_run_dir(run_dir)
        raise
    return run_dir


def existing_run_dir(plan: Plan, engine: Engine | None) -> Path | None:
    """The run directory of ``plan``'s run when that run exists (up or stopped), else None.

    Nothing is written: the directory is the one the run's nodes were made with. It must hold
    this very plan (the same topology and run name give the same plan); a run made from another
    topology is an error rather than a compose file that does not describe it.
    """
    if engine is None:
        return None
    try:
        bringup.ensure_not_running(engine, plan.run)
        return None
    except (AlreadyRunning, RunStopped):
        pass
    run_dir = Path(run_dir_of(plan))
    recorded = run_dir / "plan.json"
    try:
        theirs: dict[str, Any] = json.loads(recorded.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TestbedError(
            f"run {plan.run!r} is up, but its plan {recorded} cannot be read ({exc})",
            f"render it under another --run NAME, or `testbed down --run {plan.run}` first",
        ) from exc
    ours = json.loads(json.dumps(plan.to_dict()))
    theirs.pop("topology_path", None)
    ours.pop("topology_path", None)
    if theirs != ours:
        raise InputError(
            f"run {plan.run!r} is up from another topology or run directory than "
            f"{plan.topology_path or 'the one given'}; nothing was written",
            f"render the topology it was made from ({run_dir / 'topology.yaml'} is its copy), "
            "or pick another --run NAME",
        )
    return run_dir
