"""`testbed render`: the plan of a topology as a docker-compose file, with its run directory.

    testbed render [-t TOPOLOGY] [--run NAME] [-o compose.yaml] [--image TAG] [--no-mint]

The compose file references the run directory by path; `render` mints it (plan, credentials,
Prometheus configuration) unless ``--no-mint``, and makes sure the node and Prometheus images
exist unless ``--image`` names one or ``--no-build``. For a run that exists (up or stopped) it
mints nothing: the compose file describes that run, with the run directory its nodes use.
Then ``docker-compose -p RUN -f FILE up -d`` starts what ``testbed up`` would, found by the
same labels; ``--profile grafana`` adds the run's Grafana (``$TESTBED_GRAFANA_IMAGE``, not
built here: it comes from a registry).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from testbed import bringup
from testbed.atomic import write_atomically
from testbed.cli import context
from testbed.cli.output import console
from testbed.compose.document import NODE_IMAGE, PROMETHEUS_IMAGE, ComposeOptions, render
from testbed.errors import TestbedError
from testbed.observe.grafana_service import image_ref as grafana_image

if TYPE_CHECKING:
    from testbed.engines.base import Engine

DEFAULT_TOPOLOGY = Path("topologies/default.yaml")


def _engine_or_none() -> Engine | None:
    """The chosen engine when it answers (to find out whether the run exists)."""
    from testbed.errors import DaemonUnavailable

    engine = context.engine()
    try:
        engine.runs()
    except DaemonUnavailable:
        return None
    return engine


def _ensure_images(node: bool, prometheus: bool) -> bool:
    """Build or confirm the images wanted; False when Prometheus' cannot be had."""
    engine = context.engine()
    if node:
        built = engine.ensure_node_image()
        verb = "built" if built.built else "up to date"
        console.print(f"node image {built.tag} {verb} (as {NODE_IMAGE})")
    if not prometheus:
        return True
    services = engine.services()
    if services is None:
        console.print(f"[yellow]engine {engine.name} has no Prometheus image[/]")
        return False
    try:
        prom = services.prometheus_image()
    except TestbedError as exc:
        console.print(f"[yellow]Prometheus image not available[/]: {escape(exc.message)}")
        return False
    console.print(f"Prometheus image {prom.tag} ready (as {PROMETHEUS_IMAGE})")
    return True


def _port_of(url: str | None) -> int:
    """The port of http://127.0.0.1:PORT (0 for None: derived from the run name then)."""
    return int(url.rsplit(":", 1)[1].rstrip("/")) if url else 0


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text, 0o644)


def render_command(
    topology: Annotated[
        Path, typer.Option("--topology", "-t", help="topology file")
    ] = DEFAULT_TOPOLOGY,
    run: Annotated[
        str | None, typer.Option("--run", "-r", help="run name (default: building)")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="compose file to write")] = Path(
        "compose.yaml"
    ),
    image: Annotated[
        str | None, typer.Option(help=f"node image (default {NODE_IMAGE}, built when needed)")
    ] = None,
    prometheus: Annotated[bool, typer.Option(help="include the run's Prometheus")] = True,
    prometheus_port: Annotated[
        int, typer.Option(help="host port on 127.0.0.1 (default: derived from the run name)")
    ] = 0,
    grafana: Annotated[
        bool, typer.Option(help="include the run's Grafana (compose profile 'grafana')")
    ] = True,
    grafana_port: Annotated[
        int, typer.Option(help="its port on 127.0.0.1 (default: derived from the run name)")
    ] = 0,
    mint: Annotated[
        bool, typer.Option(help="write and mint the run directory (off: only the file)")
    ] = True,
    build: Annotated[bool, typer.Option(help="build the images when missing or stale")] = True,
) -> None:
    """Render a topology as a docker-compose file (v1-compatible) and mint its run directory."""
    from testbed.compose.prepare import existing_run_dir, prepare_run_dir
    from testbed.observe.hook import grafana_of, url_of

    the_plan, text = bringup.plan_for(topology, run)
    if mint:
        engine = _engine_or_none()
        existing = existing_run_dir(the_plan, engine)
        if existing is not None and engine is not None:
            console.print(
                f"run {the_plan.run!r} exists: the compose file uses its run directory "
                f"{existing} as it is (nothing minted)"
            )
            # The ports the run's services are published on now, unless others are asked for.
            prometheus_port = prometheus_port or _port_of(url_of(engine, the_plan.run))
            own_grafana = grafana_of(engine, the_plan.run)
            grafana_port = grafana_port or _port_of(own_grafana.url if own_grafana else None)
        else:
            run_dir = prepare_run_dir(the_plan, text, engine)
            console.print(f"run directory {run_dir} written (credentials minted)")
    if build and (image is None or prometheus):
        prometheus = _ensure_images(image is None, prometheus) and prometheus
    options = ComposeOptions(
        node_image=image or NODE_IMAGE,
        prometheus_image=PROMETHEUS_IMAGE if prometheus else None,
        prometheus_port=prometheus_port,
        grafana_image=grafana_image() if grafana and prometheus else None,
        grafana_port=grafana_port,
    )
    _write_atomically(output, render(the_plan, options, file_name=output.name))
    services = len(the_plan.nodes) + (1 if prometheus else 0) + (1 if options.grafana_image else 0)
    console.print(
        f"[green]wrote {output}[/]: run {the_plan.run!r}, {services} services, "
        f"{len(the_plan.networks)} networks"
    )
    console.print(f"  up:     docker-compose -p {the_plan.run} -f {output} up -d")
    if options.grafana_image:
        console.print(
            f"  Grafana ({escape(options.grafana_image)}, when that image is here): "
            f"docker-compose -p {the_plan.run} -f {output} --profile grafana up -d"
        )
    console.print(f"  status: testbed status --run {the_plan.run}")
    console.print(f"  down:   testbed down --run {the_plan.run}")
