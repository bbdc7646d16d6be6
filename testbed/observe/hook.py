"""Prometheus in every run: the bring-up hook and the target resynchronisation.

``start_for_run`` is called by ``testbed.bringup.up`` once the nodes are ready. It never raises
(Ctrl-C aside): without Prometheus the testbed is still useful, so a missing image or a failed
start is announced and the run goes on. ``TESTBED_OBSERVE=0`` turns it off.
Teardown needs no hook: the container and its volume carry the run's labels.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from testbed import rundir
from testbed.errors import TestbedError
from testbed.observe.announce import announce
from testbed.observe.binaries import Source
from testbed.observe.config import observe_dir, write_observe_dir
from testbed.observe.targets import targets_from_plan, targets_from_status, write_targets
from testbed.plan.model import Plan
from testbed.project import DASHBOARDS, PROJECT_ROOT

if TYPE_CHECKING:  # the docker SDK is imported only when a run is brought up
    from testbed.observe.grafana_service import GrafanaService
    from testbed.observe.service import Observer

ENABLE_ENV = "TESTBED_OBSERVE"
SOURCE_ENV = "TESTBED_PROMETHEUS_SOURCE"  # auto (default), apt or host: see testbed.observe.image


def _source() -> Source:
    value = os.environ.get(SOURCE_ENV, "auto").strip().lower()
    if value == "apt":
        return "apt"
    if value == "host":
        return "host"
    return "auto"


def enabled() -> bool:
    return os.environ.get(ENABLE_ENV, "1").strip().lower() not in {"0", "off", "no", "false"}


def docker_client_of(backend: Any) -> Any | None:
    """The Docker client of a DockerBackend; None for other backends (nothing to start then)."""
    client = getattr(backend, "client", None)
    return client if client is not None and hasattr(client, "api") else None


def start_for_run(backend: Any, plan: Plan, run_dir: Path) -> Observer | None:
    client = docker_client_of(backend)
    if client is None:
        return None
    if not enabled():
        announce(f"Prometheus: off ({ENABLE_ENV}=0)")
        return None
    try:
        return _start(client, plan, run_dir)
    except TestbedError as exc:
        announce(
            f"[yellow]Prometheus not started[/]: {escape(exc.message)}\n"
            f"  the run goes on without metrics storage; {escape(exc.hint or 'see above')}"
        )
    except Exception as exc:  # a bug here must not take a working run down
        unexpected = escape(f"{type(exc).__name__}: {exc}")
        announce(f"[yellow]Prometheus not started[/]: unexpected {unexpected}")
    return None


def _start(client: Any, plan: Plan, run_dir: Path) -> Observer:
    from testbed.observe.image import ensure_prometheus_image
    from testbed.observe.service import start_observer

    started = time.monotonic()
    image = ensure_prometheus_image(
        client, project_root=PROJECT_ROOT, cache_dir=rundir.cache_dir(), source=_source()
    )
    if image.built:
        announce(f"built Prometheus image {image.tag} ({image.source}) in {image.seconds:.0f} s")
    files = write_observe_dir(plan.run, run_dir, targets_from_plan(plan))
    observer = start_observer(client, plan, files.directory, image.tag)
    announce(
        f"Prometheus: [bold]{observer.url}[/] (scrapes {len(plan.nodes)} nodes on mgmt every 5 s; "
        f"ready in {time.monotonic() - started:.1f} s)"
    )
    return observer


def sync_targets(backend: Any, run: str) -> Path:
    """Rewrite the run's file_sd targets from the nodes that run now (nodes came or went)."""
    nodes = backend.status(run)
    run_dirs = {n.run_dir for n in nodes if n.run_dir}
    directory = observe_dir(Path(run_dirs.pop()) if run_dirs else rundir.run_dir_for(run))
    return write_targets(directory, targets_from_status(nodes))


def url_of(backend: Any, run: str) -> str | None:
    from testbed.observe.service import find_observer

    client = docker_client_of(backend)
    observer = find_observer(client, run) if client is not None else None
    return observer.url if observer else None


def start_grafana_for_run(backend: Any, plan: Plan, run_dir: Path) -> GrafanaService | None:
    """The run's Grafana when its image is here or can be pulled; never raises (Ctrl-C aside)."""
    from testbed.backends.images import ensure_pulled
    from testbed.observe import grafana_service as G

    client = docker_client_of(backend)
    if client is None:
        return None
    if not G.enabled():
        announce(f"Grafana: off ({G.ENABLE_ENV}=0)")
        return None
    image = G.image_ref()
    try:
        image_id, why_not = ensure_pulled(
            client,
            image,
            rundir.cache_dir(),
            lambda: announce(f"Grafana: pulling {escape(image)} ({G.ENABLE_ENV}=0 skips Grafana)"),
        )
        if image_id is None:
            announce(
                f"Grafana: skipped, image {escape(image)} is not available ({escape(why_not)}); "
                f"`docker load` it or name another with {G.IMAGE_ENV}. The dashboards are in "
                "dashboards/ (provisioning files and JSON)."
            )
            return None
        started = time.monotonic()
        service = G.start_grafana(client, plan, run_dir, image, DASHBOARDS)
    except TestbedError as exc:
        announce(f"[yellow]Grafana not started[/]: {escape(exc.message)}")
        return None
    except Exception as exc:  # a bug here must not take a working run down
        unexpected = escape(f"{type(exc).__name__}: {exc}")
        announce(f"[yellow]Grafana not started[/]: unexpected {unexpected}")
        return None
    announce(
        f"Grafana: [bold]{service.url}[/] (anonymous view; admin password in "
        f"{service.password_file}; ready in {time.monotonic() - started:.1f} s)"
    )
    return service
