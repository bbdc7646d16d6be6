"""`testbed dashboards push`: dashboards and a run's phase annotations into an existing Grafana.

    testbed dashboards push --url URL --token TOKEN [--run RUN] [--prometheus-url URL]

``--url`` and ``--token`` default to $GRAFANA_URL and $GRAFANA_TOKEN. Annotations come from
RUN/phases.jsonl: of the run named, else of the only run that is up; without one, only the
dashboards are pushed. See testbed.observe.grafana for what is called.

``testbed up`` ends with ``testbed.observe.publish.publish_after_up``: with $GRAFANA_URL and
$GRAFANA_TOKEN set it pushes the dashboards, the run's Prometheus as datasource and the
install/commission annotations, and prints where to look; without them it says how to connect a
Grafana later. It never fails a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from testbed import bringup, rundir
from testbed.cli import context
from testbed.cli.output import console
from testbed.errors import TestbedError
from testbed.observe import grafana
from testbed.observe.dashboards import DATASOURCE_UID
from testbed.observe.publish import DASHBOARD_DIR
from testbed.phases.records import phases_path, read_phases

if TYPE_CHECKING:
    pass

dashboards_app = typer.Typer(
    help="Grafana dashboards: push them and the phase annotations to a Grafana.",
    no_args_is_help=True,
)


def _run_context(run: str | None) -> tuple[str | None, Path | None, str | None]:
    """(run, its run directory, its Prometheus URL) as far as they can be known."""
    try:
        from testbed.observe.hook import url_of

        engine = context.engine()
        name = bringup.resolve_run(engine, run)
    except TestbedError:
        # No daemon, no run up, or several: a named run's directory may still hold its phases.
        return (run, rundir.run_dir_for(run), None) if run else (None, None, None)
    dirs = {Path(n.run_dir) for n in engine.status(name) if n.run_dir}
    return name, (dirs.pop() if len(dirs) == 1 else rundir.run_dir_for(name)), url_of(engine, name)


@dashboards_app.command("push")
def push(
    url: Annotated[str, typer.Option(envvar="GRAFANA_URL", help="Grafana base URL")],
    token: Annotated[
        str, typer.Option(envvar="GRAFANA_TOKEN", help="service account token (Editor)")
    ],
    run: Annotated[
        str | None, typer.Option("--run", "-r", help="run whose phases to annotate")
    ] = None,
    prometheus_url: Annotated[
        str | None,
        typer.Option(help="create the datasource with this URL when Grafana lacks it"),
    ] = None,
    directory: Annotated[Path, typer.Option("--dir", help="dashboard JSON files")] = DASHBOARD_DIR,
    annotations: Annotated[bool, typer.Option(help="push the run's phase annotations")] = True,
) -> None:
    """Upload the dashboards (folder Testbed) and one annotation per phase run of a run."""
    dashboards = grafana.load_dashboards(directory)
    name, run_dir, run_prometheus = _run_context(run) if annotations else (run, None, None)
    wanted: list[grafana.PhaseAnnotation] = []
    if name is not None and run_dir is not None:
        wanted = grafana.phase_annotations(read_phases(run_dir), name)
        if not wanted:
            console.print(f"no phase runs recorded in {phases_path(run_dir)}")
    elif annotations:
        console.print("no run named and none is up: pushing the dashboards only")
    api = grafana.connect(url, token)
    report = grafana.push(
        api,
        url,
        dashboards,
        run=name,
        annotations=wanted,
        prometheus_url=prometheus_url or run_prometheus,
    )
    console.print(
        f"[green]pushed {len(report.dashboards)} dashboards[/] to {url} "
        f"(folder {grafana.FOLDER_TITLE}: {report.folder})"
    )
    for path in report.dashboards:
        console.print(f"  {url.rstrip('/')}{path}")
    if report.datasource == "missing":
        console.print(
            f"[yellow]Grafana has no datasource {DATASOURCE_UID!r}[/]: panels stay empty "
            "until it exists; pass --prometheus-url (reachable from Grafana) to create it"
        )
    else:
        console.print(f"  datasource {DATASOURCE_UID}: {report.datasource}")
    if name is not None and wanted:
        console.print(
            f"  phase annotations of run {name}: {report.created} added, "
            f"{report.updated} updated, {report.unchanged} unchanged"
        )
