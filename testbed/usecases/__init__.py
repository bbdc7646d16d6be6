"""The use cases: what a user does with the testbed, callable from the CLI, a scenario runner and
tests alike (the CLI only parses options and draws progress and results).

    up(engine, topology, run, options, progress) -> UpResult      bring a building up
    down(engine, run, keep_files=...) -> RemovalReport              remove a run
    stop / start / restart(engine, run, node, progress)             a run that exists
    phase(engine, name, run, limit=..., ...) -> PhaseRun            a lifecycle phase
    link_set / link_reset(engine, link, run, ...) -> LinkChange     impair a link live
    move(engine, thing, pan, run, ...) -> MoveResult                a thing to another PAN

The engine comes from ``testbed.engines.get(name)``. Errors are ``testbed.errors`` classes.
"""

from __future__ import annotations

from testbed.usecases.bring_up import UpOptions, UpResult, down, plan_of, up
from testbed.usecases.links import LinkChange, link_reset, link_set
from testbed.usecases.mobility import MoveResult, move
from testbed.usecases.phases import PhaseRun, phase
from testbed.usecases.progress import NoProgress, Progress, Stage
from testbed.usecases.run_control import StartResult, restart, start, state_lines, stop

__all__ = [
    "LinkChange",
    "MoveResult",
    "NoProgress",
    "PhaseRun",
    "Progress",
    "Stage",
    "StartResult",
    "UpOptions",
    "UpResult",
    "down",
    "link_reset",
    "link_set",
    "move",
    "phase",
    "plan_of",
    "restart",
    "start",
    "state_lines",
    "stop",
    "up",
]
