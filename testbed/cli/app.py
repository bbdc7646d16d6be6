"""`testbed` verbs. Exit codes: 0 ok, 1 generic failure, 2 bad input, 3 images, 4..7 backend
(5 no daemon, 6 already up, 7 a node failed), 8 not running, 130 interrupted."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from testbed import bringup, rundir
from testbed.cli.compose_cli import render_command
from testbed.cli.dashboards import dashboards_app, publish_after_up
from testbed.cli.group import register as register_group_command
from testbed.cli.links import print_implementations
from testbed.cli.links import register as register_link_commands
from testbed.cli.observe import metrics_app
from testbed.cli.phase import register as register_phase_commands
from testbed.cli.render import console, error, status_json, status_table
from testbed.errors import CommissioningFailed, TestbedError
from testbed.lifecycle.runner import PhaseEvent
from testbed.topology import load_topology
from testbed.topology.schema import Topology

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


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


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


def _ensure_image(base_image: str | None, force: bool) -> str:
    from testbed.backends import docker as docker_backend
    from testbed.backends.images import ensure_node_image

    client = docker_backend.connect()
    with _progress() as progress:
        task = progress.add_task("node image", total=None, detail="")

        def report(message: str, step: int | None, total: int | None) -> None:
            if total:
                progress.update(task, total=total, completed=step or 0, detail=escape(message[:60]))
            else:
                progress.update(task, detail=escape(message[:60]))
            if message.startswith(("no registry", "built offline", "using")):
                progress.console.print(f"  {escape(message)}")

        result = ensure_node_image(
            client,
            project_root=bringup.PROJECT_ROOT,
            cache_dir=rundir.cache_dir(),
            base_image=base_image,
            force=force,
            progress=report,
        )
        progress.update(
            task, completed=progress.tasks[0].total or 1, total=progress.tasks[0].total or 1
        )
    verb = "built" if result.built else "up to date"
    console.print(f"image [bold]{result.tag}[/] {verb} (base {result.base_image})")
    return result.tag


@images_app.command("build")
def images_build(
    base_image: Annotated[
        str | None, typer.Option(help="base image (default python:3.11-slim, else offline Debian)")
    ] = None,
    force: Annotated[bool, typer.Option(help="rebuild even if the inputs did not change")] = False,
) -> None:
    """Build the node image offline when needed (rebuilt only when its inputs change)."""
    _ensure_image(base_image, force)


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
    from testbed.backends.docker import DockerBackend
    from testbed.observe.hook import url_of

    the_plan, text = bringup.plan_for(topology, run)
    backend = DockerBackend()
    bringup.ensure_not_running(backend, the_plan.run)
    image = _ensure_image(base_image, force=False)
    with _progress() as progress:
        nets = progress.add_task("networks", total=len(the_plan.networks), detail="")
        ready = progress.add_task("nodes ready", total=len(the_plan.nodes), detail="")

        def on_event(event: str, name: str) -> None:
            if event == "network":
                progress.advance(nets)
            elif event == "ready":
                progress.update(ready, advance=1, detail=name)

        result = bringup.up(backend, the_plan, text, image, on_event, keep_on_error=keep_on_error)
        outcomes: dict[str, tuple[str, str]] = {}
        things = [n for n in the_plan.nodes if n.role == "thing"]
        if wait and bringup.commissioned_by_phases(the_plan):
            # The same path as `testbed phase install` / `commission` (Ansible).
            phases = progress.add_task("install + commission", total=None, detail="")

            def on_phase(event: PhaseEvent) -> None:
                if event.kind != "task":
                    progress.update(phases, detail=escape(f"{event.host}: {event.task[:40]}"))

            bringup.commission_by_phases(backend, the_plan, on_phase)
            progress.update(phases, total=1, completed=1, detail="done")
        if wait:
            commissioned = progress.add_task("commissioned", total=len(things), detail="")

            def on_commission(event: str, name: str) -> None:
                progress.update(commissioned, advance=1, detail=f"{name}: {event}")

            outcomes = bringup.wait_commissioned(
                backend, the_plan, on_commission, timeout=commission_timeout
            )
    console.print(
        f"[green]run {result.plan.run!r} is up[/]: {len(result.plan.nodes)} nodes, "
        f"{len(result.plan.networks)} networks ({result.plan.ula_prefix})"
    )
    console.print(f"  status:   testbed status --run {result.plan.run}")
    console.print(f"  logs:     testbed logs NODE --run {result.plan.run}")
    console.print(f"  run dir:  {result.run_dir}")
    console.print(f"  tear down: testbed down --run {result.plan.run}")
    print_implementations(backend, result.plan.run)
    publish_after_up(result.plan.run, result.run_dir, url_of(backend, result.plan.run))
    failed = {n: o for n, o in outcomes.items() if o[0] != "operational"}
    if outcomes:
        console.print(f"  commissioned: {len(outcomes) - len(failed)} of {len(outcomes)} things")
    if failed:
        for name, (state, reason) in sorted(failed.items()):
            console.print(f"  [red]{name}[/]: {escape(state or 'no answer')} {escape(reason)}")
        raise CommissioningFailed(
            f"{len(failed)} of {len(outcomes)} things are not operational; the run stays up",
            f"inspect with `testbed status --run {result.plan.run}` and "
            f"`testbed logs NODE --run {result.plan.run}`",
        )


@app.command()
def down(
    run: RunOption = None,
    all_runs: Annotated[bool, typer.Option("--all", help="remove every run")] = False,
    keep_files: Annotated[bool, typer.Option(help="keep the run directory")] = False,
) -> None:
    """Remove every container, network, volume and file of a run (found by labels)."""
    from testbed.backends.docker import DockerBackend

    backend = DockerBackend()
    runs = sorted(backend.runs()) if all_runs else [bringup.resolve_run(backend, run)]
    for name in runs:
        report = bringup.down(backend, name, keep_files=keep_files)
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


@app.command()
def status(
    run: RunOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show the nodes of one run, or of every run, as Docker reports them."""
    from testbed.backends.docker import DockerBackend

    backend = DockerBackend()
    nodes = bringup.with_lifecycle(backend, backend.status(run))
    if as_json:
        print(status_json(nodes))
        return
    if not nodes:
        console.print("no testbed run is up" + (f" named {run!r}" if run else ""))
        raise typer.Exit(8 if run else 0)
    status_table(nodes)


@app.command()
def logs(
    node: Annotated[str, typer.Argument(help="node name")],
    run: RunOption = None,
    tail: Annotated[int, typer.Option(help="lines from the end")] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
) -> None:
    """Print a node's log (structured JSON lines)."""
    from testbed.backends.docker import DockerBackend

    backend = DockerBackend()
    for chunk in backend.logs(bringup.resolve_run(backend, run), node, tail, follow):
        sys.stdout.write(chunk.decode("utf-8", "replace"))
        sys.stdout.flush()


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    node: Annotated[str, typer.Argument(help="node name")],
    command: Annotated[list[str], typer.Argument(help="command, after --")],
    run: RunOption = None,
) -> None:
    """Run a command in a node: testbed exec NODE -- CMD ARGS. Exits with its exit code."""
    from testbed.backends.docker import DockerBackend

    backend = DockerBackend()
    result = backend.exec(bringup.resolve_run(backend, run), node, command)
    sys.stdout.buffer.write(result.output)
    sys.stdout.flush()
    raise typer.Exit(result.exit_code)


register_phase_commands(app)
register_link_commands(app)
register_group_command(app)
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
        sys.exit(130)


if __name__ == "__main__":
    main()
