"""`testbed dashboards push`: dashboards and a run's phase annotations into an existing Grafana.

    testbed dashboards push --url URL --token TOKEN [--run RUN] [--prometheus-url URL]

``--url`` and ``--token`` default to $GRAFANA_URL and $GRAFANA_TOKEN. Annotations come from
RUN/phases.jsonl: of the run named, else of the only run that is up; without one, only the
dashboards are pushed. See testbed.observe.grafana for what is called.

``testbed up`` ends with ``publish_after_up``: with $GRAFANA_URL and $GRAFANA_TOKEN set it pushes
the dashboards, the run's Prometheus as datasource and the install/commission annotations, and
prints where to look; without them it says how to connect a Grafana later. It never fails a run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from testbed import bringup, rundir
from testbed.cli.render import console
from testbed.errors import TestbedError
from testbed.lifecycle.records import phases_path, read_phases
from testbed.observe import grafana
from testbed.observe.dashboards import DATASOURCE_UID
from testbed.observe.errors import ObserveError
from testbed.project import DASHBOARDS

if TYPE_CHECKING:
    from testbed.observe.grafana_service import GrafanaService

URL_ENV, TOKEN_ENV = "GRAFANA_URL", "GRAFANA_TOKEN"

DASHBOARD_DIR = DASHBOARDS / "json"

dashboards_app = typer.Typer(
    help="Grafana dashboards: push them and the phase annotations to a Grafana.",
    no_args_is_help=True,
)


def _run_context(run: str | None) -> tuple[str | None, Path | None, str | None]:
    """(run, its run directory, its Prometheus URL) as far as they can be known."""
    try:
        from testbed.backends.docker import DockerBackend
        from testbed.observe.hook import url_of

        backend = DockerBackend()
        name = bringup.resolve_run(backend, run)
    except TestbedError:
        # No daemon, no run up, or several: a named run's directory may still hold its phases.
        return (run, rundir.run_dir_for(run), None) if run else (None, None, None)
    dirs = {Path(n.run_dir) for n in backend.status(name) if n.run_dir}
    return name, (dirs.pop() if len(dirs) == 1 else rundir.run_dir_for(name)), url_of(backend, name)


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


def _own_grafana(run: str) -> GrafanaService | None:
    """The run's own Grafana container, if it runs (None without a daemon too)."""
    try:
        from testbed.backends.docker import DockerBackend
        from testbed.observe.grafana_service import find_grafana

        return find_grafana(DockerBackend().client, run)
    except Exception:  # no daemon, a listing race: then there is none to annotate
        return None


def annotate_own_grafana(run: str, run_dir: Path) -> str | None:
    """Sync the run's phase annotations into its own Grafana; a line to print, None if none."""
    own = _own_grafana(run)
    if own is None:
        return None
    link = f"{own.url}/d/testbed-lifecycle?var-run={run}"
    try:
        annotations = grafana.phase_annotations(read_phases(run_dir), run)
        report = grafana.sync_annotations(
            grafana.connect(own.url, own.credential()), own.url, run, annotations
        )
    except (ObserveError, OSError) as exc:
        why = exc.message if isinstance(exc, ObserveError) else str(exc)
        return f"  Grafana:  {link} ([yellow]phase annotations not written[/]: {escape(why)})"
    total = report.created + report.updated + report.unchanged
    return f"  Grafana:  {link} (the run's own; {total} phase annotations)"


def publish_after_up(run: str, run_dir: Path, prometheus_url: str | None) -> None:
    """The Grafana lines of `testbed up`: the run's own Grafana when it runs, and a push to
    $GRAFANA_URL when one is configured; without either, how to connect one."""
    own = annotate_own_grafana(run, run_dir)
    if own is not None:
        console.print(own)
    url, token = os.environ.get(URL_ENV, "").strip(), os.environ.get(TOKEN_ENV, "").strip()
    later = f"testbed dashboards push --url URL --token TOKEN --run {run}"
    if not url:
        if own is None:
            console.print(
                f"  Grafana:  none configured (set {URL_ENV} and {TOKEN_ENV}, or later: {later})"
            )
        return
    if not token:
        console.print(
            f"  [yellow]Grafana:  {URL_ENV} is set but {TOKEN_ENV} is not[/]: give a service "
            f"account token (Editor), then: {later}"
        )
        return
    try:
        report = grafana.push(
            grafana.connect(url, token),
            url,
            grafana.load_dashboards(DASHBOARD_DIR),
            run=run,
            annotations=grafana.phase_annotations(read_phases(run_dir), run),
            prometheus_url=prometheus_url,
        )
    except ObserveError as exc:  # the run is up and useful without Grafana
        console.print(f"  [yellow]Grafana:  not updated[/]: {escape(exc.message)}")
        if exc.hint:
            console.print(f"            {escape(exc.hint)}; then: {later}")
        return
    base = url.rstrip("/")
    # The lifecycle dashboard first: it shows the phases `up` has just run.
    shown = next((d for d in report.dashboards if "lifecycle" in d), "".join(report.dashboards[:1]))
    console.print(
        f"  Grafana:  {base}{shown}?var-run={run} ({len(report.dashboards)} dashboards in folder "
        f"{grafana.FOLDER_TITLE}; datasource {DATASOURCE_UID} {report.datasource}; "
        f"{report.created + report.updated + report.unchanged} phase annotations)"
    )
