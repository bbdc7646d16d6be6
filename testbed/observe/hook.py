"""The run's services in every run: the bring-up hook and the target resynchronisation.

``start_for_run`` (Prometheus) and ``start_grafana_for_run`` are called by the bring-up once the
run's networks exist, while the nodes start (their targets come from the plan). They ask the
engine for its run services (``Engine.services()``: None when its engine has none) and never
raise (Ctrl-C aside): without Prometheus or Grafana the testbed is still useful, so a missing
image or a failed start is announced and the run goes on.
``TESTBED_OBSERVE=0`` turns Prometheus off, ``TESTBED_GRAFANA=0`` Grafana. Teardown needs no
hook: the services carry the run's labels.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from testbed import rundir
from testbed.engines.base import Engine, RunServices
from testbed.errors import TestbedError
from testbed.observe.announce import announce
from testbed.observe.config import observe_dir
from testbed.observe.targets import targets_from_status, write_targets
from testbed.plan.model import Plan
from testbed.project import DASHBOARDS

if TYPE_CHECKING:
    from testbed.observe.grafana_service import GrafanaService
    from testbed.observe.service import Observer

ENABLE_ENV = "TESTBED_OBSERVE"


def enabled() -> bool:
    return os.environ.get(ENABLE_ENV, "1").strip().lower() not in {"0", "off", "no", "false"}


def start_for_run(engine: Engine, plan: Plan, run_dir: Path) -> Observer | None:
    services = engine.services()
    if services is None:
        return None
    if not enabled():
        announce(f"Prometheus: off ({ENABLE_ENV}=0)")
        return None
    try:
        return _start(services, plan, run_dir)
    except TestbedError as exc:
        announce(
            f"[yellow]Prometheus not started[/]: {escape(exc.message)}\n"
            f"  the run goes on without metrics storage; {escape(exc.hint or 'see above')}"
        )
    except Exception as exc:  # a bug here must not take a working run down
        unexpected = escape(f"{type(exc).__name__}: {exc}")
        announce(f"[yellow]Prometheus not started[/]: unexpected {unexpected}")
    return None


def _start(services: RunServices, plan: Plan, run_dir: Path) -> Observer:
    started = time.monotonic()
    observer = services.start_prometheus(plan, run_dir)
    announce(
        f"Prometheus: [bold]{observer.url}[/] (scrapes {len(plan.nodes)} nodes on mgmt "
        f"every {plan.scrape_interval_s} s; "
        f"ready in {time.monotonic() - started:.1f} s)"
    )
    return observer


def sync_targets(engine: Engine, run: str) -> Path:
    """Rewrite the run's file_sd targets from the nodes that run now (nodes came or went)."""
    nodes = engine.status(run)
    run_dirs = {n.run_dir for n in nodes if n.run_dir}
    directory = observe_dir(Path(run_dirs.pop()) if run_dirs else rundir.run_dir_for(run))
    return write_targets(directory, targets_from_status(nodes))


def url_of(engine: Engine, run: str) -> str | None:
    """The URL of the run's running Prometheus (None: none runs, or the engine has none)."""
    services = engine.services()
    return services.prometheus_url(run) if services is not None else None


def grafana_of(engine: Engine, run: str) -> GrafanaService | None:
    """The run's running Grafana (None: none runs, or the engine has none)."""
    services = engine.services()
    return services.grafana(run) if services is not None else None


def start_grafana_for_run(engine: Engine, plan: Plan, run_dir: Path) -> GrafanaService | None:
    """The run's Grafana when its image is here or can be pulled; never raises (Ctrl-C aside)."""
    from testbed.observe import grafana_service as G

    services = engine.services()
    if services is None:
        return None
    if not G.enabled():
        announce(f"Grafana: off ({G.ENABLE_ENV}=0)")
        return None
    image = G.image_ref()
    try:
        image_id, why_not = services.provide_image(
            image,
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
        service = services.start_grafana(plan, run_dir, image, DASHBOARDS)
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
