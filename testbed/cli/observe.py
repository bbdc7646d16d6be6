"""`testbed metrics ...`: the run's Prometheus (URL, targets, alerts, checks, snapshots).

Importing this module also routes ``testbed.observe.announce`` to the console, so that
``testbed up`` prints the Prometheus URL (or why there is none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from testbed import bringup
from testbed.cli import context
from testbed.cli.output import console
from testbed.observe import announce
from testbed.observe.api import PrometheusAPI
from testbed.observe.errors import ObserveError

announce.set_sink(console.print)

metrics_app = typer.Typer(
    help="The run's Prometheus: URL, targets, alerts, rule checks, snapshots for papers.",
    no_args_is_help=True,
)

RunOption = Annotated[
    str | None, typer.Option("--run", "-r", help="run name (default: the only run that is up)")
]


def _api(run: str | None) -> tuple[str, PrometheusAPI]:
    from testbed.observe.hook import url_of

    engine = context.engine()
    name = run or bringup.resolve_run(engine, run)
    url = url_of(engine, name)
    if url is None:
        raise ObserveError(
            f"run {name!r} has no running Prometheus",
            "it starts with `testbed up`; `testbed status` shows whether a prometheus node runs",
        )
    return name, PrometheusAPI(url)


@metrics_app.command("url")
def url(run: RunOption = None) -> None:
    """Print the URL of the run's Prometheus."""
    _, api = _api(run)
    print(api.url)


@metrics_app.command("snapshot")
def snapshot(
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write")],
    run: RunOption = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="json or csv (default: from the file name, else json)"),
    ] = None,
    step: Annotated[
        float | None, typer.Option(help="seconds between samples (default: 5 s or more)")
    ] = None,
) -> None:
    """Export the run's key series over its lifetime (Prometheus query_range) as JSON or CSV."""
    from testbed.observe import snapshot as snap

    chosen = (fmt or ("csv" if output.suffix.lower() == ".csv" else "json")).lower()
    if chosen not in ("json", "csv"):
        raise ObserveError(f"unknown format {chosen!r}", "use --format json or --format csv")
    name, api = _api(run)
    window = snap.lifetime(api, name)
    if step is not None:
        window = snap.Window(window.start, window.end, max(step, 1.0))
    data = snap.collect(api, name, window)
    text = snap.render(data, "csv" if chosen == "csv" else "json")
    output.write_text(text, encoding="utf-8")
    samples = sum(len(s["values"]) for s in data["series"])
    console.print(
        f"wrote {output} ({chosen}): {len(data['series'])} series, {samples} samples, "
        f"{window.end - window.start:.0f} s at {window.step:g} s steps"
    )


@metrics_app.command("targets")
def targets(
    run: RunOption = None,
    sync: Annotated[
        bool, typer.Option(help="first rewrite the targets from the nodes that run now")
    ] = True,
) -> None:
    """Show what Prometheus scrapes and whether it answers; resynchronise the targets first."""
    from testbed.observe.hook import sync_targets

    name, api = _api(run)
    if sync:
        path = sync_targets(context.engine(), name)
        console.print(f"targets rewritten: {path}")
    table = Table(title=f"Prometheus targets of run {name}", title_justify="left")
    for column in ("node", "role", "endpoint", "health", "last error"):
        table.add_column(column)
    for target in sorted(api.targets(), key=lambda t: t["labels"].get("node", "")):
        health = str(target.get("health", ""))
        table.add_row(
            target["labels"].get("node", ""),
            target["labels"].get("role", ""),
            escape(str(target.get("scrapeUrl", ""))),
            f"[green]{health}[/]" if health == "up" else f"[red]{health}[/]",
            escape(str(target.get("lastError", ""))),
        )
    console.print(table)


@metrics_app.command("alerts")
def alerts(run: RunOption = None) -> None:
    """Alerts that are pending or firing in the run's Prometheus."""
    name, api = _api(run)
    found = api.alerts()
    if not found:
        console.print(f"no alerts in run {name!r}")
        return
    for alert in sorted(found, key=lambda a: (a["labels"].get("alertname", ""), str(a["labels"]))):
        labels = alert["labels"]
        colour = "red" if alert.get("state") == "firing" else "yellow"
        console.print(
            f"[{colour}]{alert.get('state')}[/] {labels.get('alertname')}: "
            f"{alert.get('annotations', {}).get('summary', '')}"
        )


@metrics_app.command("check")
def check(
    directory: Annotated[
        Path | None, typer.Argument(help="an observe directory (default: the run's)")
    ] = None,
    run: RunOption = None,
) -> None:
    """promtool check config (and through it every rule file) of a run's Prometheus files."""
    from testbed import rundir
    from testbed.observe.config import CONFIG_FILE, observe_dir
    from testbed.observe.promtool import check_config

    if directory is None:
        name = run or bringup.resolve_run(context.engine(), run)
        directory = observe_dir(rundir.run_dir_for(name))
    result = check_config(directory / CONFIG_FILE)
    console.print(result.output, markup=False, highlight=False)
    if not result.ok:
        raise typer.Exit(1)
