"""The run directory a rendered compose file needs, made without starting anything.

Compose cannot mint credentials, so ``testbed render`` does what ``testbed.bringup.up`` does
before it deploys: the plan and topology copy (``rundir.write_run_dir``), every node's
credentials (``manufacture.mint``), the Prometheus files (``observe.config``), with file_sd
targets from the plan, and the admin password of the run's Grafana (0600). A run that is up
keeps its directory: minting anew would leave its nodes with credentials nobody else knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from testbed import bringup, manufacture, rundir
from testbed.observe import grafana_service
from testbed.observe.config import write_observe_dir
from testbed.observe.targets import targets_from_plan
from testbed.plan.model import Plan
from testbed.render.compose import run_dir_of

if TYPE_CHECKING:
    from testbed.backends.base import Backend


def prepare_run_dir(plan: Plan, topology_text: str, backend: Backend | None = None) -> Path:
    """Write and mint the run directory of ``plan`` (refused while the run is up)."""
    if backend is not None:
        bringup.ensure_not_running(backend, plan.run)
    run_dir = Path(run_dir_of(plan))
    # Nothing of this run is up, so a directory left behind is stale: start clean, as `up` does.
    rundir.remove_run_dir(run_dir)
    rundir.write_run_dir(plan, run_dir, topology_text)
    try:
        manufacture.mint(plan, run_dir)
        write_observe_dir(plan.run, run_dir, targets_from_plan(plan))
        grafana_service.write_password(run_dir)  # the compose file's Grafana mounts it
    except BaseException:
        rundir.remove_run_dir(run_dir)
        raise
    return run_dir
