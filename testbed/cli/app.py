"""`testbed` verbs. Each error class carries its exit code; the table is testbed.errors.EXIT_CODES
(and the README shows it)."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from testbed import bringup, engines, usecases
from testbed.cli import context
from testbed.cli.compose import render_command
from testbed.cli.dashboards import dashboards_app
from testbed.cli.group import register as register_group_command
from testbed.cli.links import print_implementations
from testbed.cli.links import register as register_link_commands
from testbed.cli.move import register as register_move_command
from testbed.cli.observe import metrics_app
from testbed.cli.output import console, error, status_json, status_table
from testbed.cli.phase import register as register_phase_commands
from testbed.cli.progress import BarProgress, bars
from testbed.cli.scenario import register as register_scenario_commands
from testbed.errors import INTERRUPTED, CommissioningFailed, NotRunning, TestbedError
from testbed.topology import load_topology
from testbed.topology.schema import Topology
from testbed.usecases import placement

DEFAULT_TOPOLOGY = Path("topologies/default.yaml")

app = typer.Typer(
    help="IoT security testbed: emulated IP-based IoT buildings in Docker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
images_app = typer.Typer(
    help="Node images (built locally, no registry needed).", no_args_is_help=True
)
app.add_typer(images_app, name="images")
app.add_typer(metrics_app, name="metrics")
app.add_typer(dashboards_app, name="dashboards")

RunOption = Annotated[
    str | None, typer.Option("--run", "-r", help="run name (default: the only run that is up)")
]


@app.callback()
def choose_engine(
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            envvar="TESTBED_ENGINE",
            help=f"container engine: {', '.join(engines.names())} (default {engines.DEFAULT})",
            show_default=False,
        ),
    ] = None,
    legacy: Annotated[
        str | None,
        # The option's earlier name, kept so that existing commands and scripts still run.
        typer.Option("--backend", envvar="TESTBED_BACKEND", hidden=True),
    ] = None,
) -> None:
    """IoT security testbed: emulated IP-based IoT buildings in Docker."""
    context.choose(context.engine_name(engine, legacy))


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="topology YAML file")]) -> None:
    """Check a topology file; print a summary or every problem with file:line and key."""
    topology = load_topology(file)
    things = sum(len(t.names()) for t in topology.things)
    console.print(
        f"[green]ok[/] {file}: building {topology.building!r}, {len(topology.vendors)} vendors, "
        f"{len(topology.domains)} domains, {len(topology.pans)} PANs, {things} things, "
        f"{len(topology.hosts)} hosts"
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of topology files (for editor completion)."""
    print(json.dumps(Topology.model_json_schema(), indent=2))


@app.command()
def plan(
    topology: Annotated[Path, typer.Option("--topology", "-t")] = DEFAULT_TOPOLOGY,
    run: Annotated[str | None, typer.Option("--run", "-r")] = None,
) -> None:
    """Print the plan (names, addresses, routes) a topology turns into, without running it."""
    the_plan, _ = bringup.plan_for(topology, run)
    print(json.dumps(the_plan.to_dict(), indent=2))


@images_app.command("build")
def images_build(
    base_image: Annotated[
        str | None, typer.Option(help="base image (default python:3.11-slim, else offline Debian)")
    ] = None,
    force: Annotated[bool, typer.Option(help="rebuild even if the inputs did not change")] = False,
) -> None:
    """Build the node image offline when needed (rebuilt only when its inputs change)."""
    engine = context.engine()
    with bars() as progress:
        shown = BarProgress(progress)
        shown.begin("image", None)
        result = engine.ensure_node_image(
            base_image=base_image,
            force=force,
            progress=lambda message, step, total: shown.update(
                "image", message, completed=step, total=total
            ),
        )
        shown.end("image")
    verb = "built" if result.built else "up to date"
    console.print(f"image [bold]{result.tag}[/] {verb} (base {result.base_image})")


@app.command()
def up(
    topology: Annotated[
        Path, typer.Option("--topology", "-t", help="topology file")
    ] = DEFAULT_TOPOLOGY,
    run: Annotated[
        str | None, typer.Option("--run", "-r", help="run name (default: building)")
    ] = None,
    keep_on_error: Annotated[bool, typer.Option(help="keep what was made if a node fails")] = False,
    base_image: Annotated[str | None, typer.Option(help="base image for the node image")] = None,
    wait: Annotated[
        bool,
        typer.Option(
            help="commission the things (install + commission phases, or their own bootstrap"
            " with commissioning: auto) and wait until each is operational or failed"
        ),
    ] = True,
    commission_timeout: Annotated[float, typer.Option(help="seconds to wait for that")] = 180.0,
) -> None:
    """Bring up an emulated building from a topology file, commissioned."""
    engine = context.engine()
    options = usecases.UpOptions(
        base_image=base_image,
        keep_on_error=keep_on_error,
        commission=wait,
        commission_timeout=commission_timeout,
    )
    with bars() as progress:
        result = usecases.up(engine, topology, run, options, BarProgress(progress))
    name = result.plan.run
    console.print(
        f"[green]run {name!r} is up[/]: {len(result.plan.nodes)} nodes, "
        f"{len(result.plan.networks)} networks ({result.plan.ula_prefix})"
    )
    console.print(f"  status:   testbed status --run {name}")
    console.print(f"  logs:     testbed logs NODE --run {name}")
    console.print(f"  run dir:  {result.run_dir}")
    console.print(f"  tear down: testbed down --run {name}")
    print_implementations(engine, name)
    for line in result.grafana:
        console.print(line)
    _print_outcomes(result.outcomes)
    result.raise_for_commissioning()


def _print_outcomes(outcomes: dict[str, tuple[str, str]], resting: Collection[str] = ()) -> None:
    failed = {n: o for n, o in outcomes.items() if o[0] != "operational"}
    if outcomes:
        console.print(f"  commissioned: {len(outcomes) - len(failed)} of {len(outcomes)} things")
    for name, (state, reason) in sorted(failed.items()):
        if name in resting:
            console.print(f"  {name}: {escape(state)}, as it was left (an operator moves it on)")
        else:
            console.print(f"  [red]{name}[/]: {escape(state or 'no answer')} {escape(reason)}")


@app.command()
def down(
    run: RunOption = None,
    all_runs: Annotated[bool, typer.Option("--all", help="remove every run")] = False,
    keep_files: Annotated[bool, typer.Option(help="keep the run directory")] = False,
) -> None:
    """Remove every container, network, volume and file of a run (found by labels)."""
    engine = context.engine()
    runs = sorted(engine.runs()) if all_runs else [bringup.resolve_run(engine, run)]
    for name in runs:
        report = usecases.down(engine, name, keep_files=keep_files)
        console.print(
            f"run {name!r} removed: {len(report.containers)} containers, "
            f"{len(report.networks)} networks, {len(report.volumes)} volumes"
            + (", run directory" if report.run_dirs else "")
        )
        if report.stale_networks:
            console.print(
                f"[yellow]warning:[/] Docker refused to remove {len(report.stale_networks)} "
                f"network(s) of run {escape(name)!r} although nothing is attached: "
                f"{escape(', '.join(report.stale_networks))} (a stale endpoint count, a Docker "
                "20.10 libnetwork defect, moby/moby#42119). They are inert; `testbed up` of "
                "this run reuses them, and a daemon restart (`sudo systemctl restart docker`) "
                "removes them."
            )


NodeArgument = Annotated[
    str | None, typer.Argument(help="one node (default: every node and service of the run)")
]


@app.command()
def stop(run: RunOption = None) -> None:
    """Stop a run's nodes and services, keeping them, their state and their networks."""
    stopped = usecases.stop(context.engine(), run)
    console.print(f"stopped {len(stopped)} nodes and services; `testbed start` starts them again")


@app.command()
def start(
    run: RunOption = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the things")] = 180.0,
) -> None:
    """Start a stopped run (after `stop` or a Docker daemon restart), in the order of `up`."""
    with bars() as progress:
        result = usecases.start(
            context.engine(), run, progress=BarProgress(progress), timeout=timeout
        )
    _report_start(result)


@app.command()
def restart(
    node: NodeArgument = None,
    run: RunOption = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the things")] = 180.0,
) -> None:
    """Stop and start a run, or one node of it, with the readiness checks of `up`."""
    with bars() as progress:
        result = usecases.restart(
            context.engine(), run, node, BarProgress(progress), timeout=timeout
        )
    _report_start(result)


def _report_start(result: usecases.StartResult) -> None:
    console.print(f"[green]run {result.run!r} runs[/]: started {len(result.started)}")
    _print_outcomes(result.outcomes, result.resting)
    if result.failed:
        raise CommissioningFailed(
            f"{len(result.failed)} of {len(result.outcomes)} things are not operational",
            f"inspect with `testbed status --run {result.run}` and "
            f"`testbed logs NODE --run {result.run}`",
        )


@app.command()
def status(
    run: RunOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show the nodes of one run, or of every run, as Docker reports them."""
    engine = context.engine()
    nodes = bringup.with_lifecycle(engine, placement.placed_runs(engine.status(run)))
    if as_json:
        print(status_json(nodes))
        return
    if not nodes:
        console.print("no testbed run is up" + (f" named {run!r}" if run else ""))
        raise typer.Exit(NotRunning.exit_code if run else 0)
    status_table(nodes)
    for line in usecases.state_lines(nodes):
        console.print(f"[yellow]{escape(line)}[/]")


@app.command()
def logs(
    node: Annotated[str, typer.Argument(help="node name")],
    run: RunOption = None,
    tail: Annotated[int, typer.Option(help="lines from the end")] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
) -> None:
    """Print a node's log (structured JSON lines)."""
    engine = context.engine()
    for chunk in engine.logs(bringup.resolve_run(engine, run), node, tail, follow):
        sys.stdout.write(chunk.decode("utf-8", "replace"))
        sys.stdout.flush()


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    node: Annotated[str, typer.Argument(help="node name")],
    command: Annotated[list[str], typer.Argument(help="command, after --")],
    run: RunOption = None,
) -> None:
    """Run a command in a node: testbed exec NODE -- CMD ARGS. Exits with its exit code.

    The command gets the node's run-time privileges only (testbed.node.confine): no
    CAP_NET_ADMIN or CAP_NET_RAW except on border routers."""
    engine = context.engine()
    confined = ["python3", "-m", "testbed.node.confine", "--", *command]
    result = engine.exec(bringup.resolve_run(engine, run), node, confined)
    sys.stdout.buffer.write(result.output)
    sys.stdout.flush()
    raise typer.Exit(result.exit_code)


register_phase_commands(app)
register_link_commands(app)
register_scenario_commands(app)
register_group_command(app)
register_move_command(app)
app.command("render")(render_command)


def main() -> None:
    # Standalone mode: typer reports usage errors itself (exit 2); our own errors arrive here.
    try:
        app()
    except TestbedError as exc:
        error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(INTERRUPTED)


if __name__ == "__main__":
    main()
