"""Publishing a run to Grafana: its own Grafana's phase annotations, and a push of dashboards,
datasource and annotations to the Grafana named by $GRAFANA_URL/$GRAFANA_TOKEN.

Used at the end of ``up`` and of every phase. Never fails a run: each function returns the lines
to show (rich markup), saying where to look or why nothing was published.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.markup import escape

from testbed.engines.base import Engine
from testbed.observe import grafana
from testbed.observe.dashboards import DATASOURCE_UID
from testbed.observe.errors import ObserveError
from testbed.observe.hook import grafana_of
from testbed.phases.records import read_phases
from testbed.project import DASHBOARDS

URL_ENV, TOKEN_ENV = "GRAFANA_URL", "GRAFANA_TOKEN"
DASHBOARD_DIR = DASHBOARDS / "json"


def annotate_own_grafana(engine: Engine, run: str, run_dir: Path) -> str | None:
    """Sync the run's phase annotations into its own Grafana; a line to print, None if none."""
    try:
        own = grafana_of(engine, run)
    except Exception:  # a listing race, a daemon gone: then there is none to annotate
        return None
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


def publish_after_up(
    engine: Engine, run: str, run_dir: Path, prometheus_url: str | None
) -> list[str]:
    """The Grafana lines of `up`: the run's own Grafana when it runs, and a push to $GRAFANA_URL
    when one is configured; without either, how to connect one."""
    lines: list[str] = []
    own = annotate_own_grafana(engine, run, run_dir)
    if own is not None:
        lines.append(own)
    url, token = os.environ.get(URL_ENV, "").strip(), os.environ.get(TOKEN_ENV, "").strip()
    later = f"testbed dashboards push --url URL --token TOKEN --run {run}"
    if not url:
        if own is None:
            lines.append(
                f"  Grafana:  none configured (set {URL_ENV} and {TOKEN_ENV}, or later: {later})"
            )
        return lines
    if not token:
        lines.append(
            f"  [yellow]Grafana:  {URL_ENV} is set but {TOKEN_ENV} is not[/]: give a service "
            f"account token (Editor), then: {later}"
        )
        return lines
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
        lines.append(f"  [yellow]Grafana:  not updated[/]: {escape(exc.message)}")
        if exc.hint:
            lines.append(f"            {escape(exc.hint)}; then: {later}")
        return lines
    base = url.rstrip("/")
    # The lifecycle dashboard first: it shows the phases `up` has just run.
    shown = next((d for d in report.dashboards if "lifecycle" in d), "".join(report.dashboards[:1]))
    lines.append(
        f"  Grafana:  {base}{shown}?var-run={run} ({len(report.dashboards)} dashboards in folder "
        f"{grafana.FOLDER_TITLE}; datasource {DATASOURCE_UID} {report.datasource}; "
        f"{report.created + report.updated + report.unchanged} phase annotations)"
    )
    return lines
