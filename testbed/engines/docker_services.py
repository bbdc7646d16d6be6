"""The run's services on Docker: Prometheus and Grafana containers on the run's mgmt network.

What to start and when, and how a failure is announced, is decided in ``testbed.observe.hook``;
this is only how Docker does it (images, containers, finding them again by labels).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import docker

from testbed import rundir
from testbed.observe.announce import announce
from testbed.observe.binaries import Source
from testbed.observe.config import write_observe_dir
from testbed.observe.grafana_service import GrafanaService
from testbed.observe.image import PrometheusImage
from testbed.observe.service import Observer
from testbed.observe.targets import targets_from_plan
from testbed.plan.model import Plan
from testbed.project import PROJECT_ROOT

SOURCE_ENV = "TESTBED_PROMETHEUS_SOURCE"  # auto (default), apt or host: see testbed.observe.image


def prometheus_source() -> Source:
    value = os.environ.get(SOURCE_ENV, "auto").strip().lower()
    if value == "apt":
        return "apt"
    if value == "host":
        return "host"
    return "auto"


class DockerRunServices:
    """``RunServices`` of the Docker engine."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    def prometheus_image(self) -> PrometheusImage:
        from testbed.observe.image import ensure_prometheus_image

        return ensure_prometheus_image(
            self.client,
            project_root=PROJECT_ROOT,
            cache_dir=rundir.cache_dir(),
            source=prometheus_source(),
        )

    def start_prometheus(self, plan: Plan, run_dir: Path) -> Observer:
        from testbed.observe.service import start_observer

        image = self.prometheus_image()
        if image.built:
            announce(
                f"built Prometheus image {image.tag} ({image.source}) in {image.seconds:.0f} s"
            )
        files = write_observe_dir(
            plan.run, run_dir, targets_from_plan(plan), interval_s=plan.scrape_interval_s
        )
        return start_observer(self.client, plan, files.directory, image.tag)

    def prometheus_url(self, run: str) -> str | None:
        from testbed.observe.service import find_observer

        observer = find_observer(self.client, run)
        return observer.url if observer else None

    def provide_image(self, ref: str, on_pull: Callable[[], None]) -> tuple[str | None, str]:
        from testbed.engines.images import ensure_pulled

        return ensure_pulled(self.client, ref, rundir.cache_dir(), on_pull)

    def start_grafana(
        self, plan: Plan, run_dir: Path, image: str, dashboards: Path
    ) -> GrafanaService:
        from testbed.observe.grafana_service import start_grafana

        return start_grafana(self.client, plan, run_dir, image, dashboards)

    def grafana(self, run: str) -> GrafanaService | None:
        from testbed.observe.grafana_service import find_grafana

        return find_grafana(self.client, run)
