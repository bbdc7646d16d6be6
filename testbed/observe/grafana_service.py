"""The Grafana container of a run: started when a Grafana image is available, skipped otherwise.

Like the run's Prometheus it sits on mgmt only, is published on 127.0.0.1, and carries the run's
labels (``testbed.node=grafana``, ``testbed.role=observer``, ``testbed.url``), so ``testbed
status`` lists it and ``testbed down`` removes it with its volume. It is provisioned from the
repository (read-only mounts): ``dashboards/provisioning`` (the datasource, the run's Prometheus
as ``http://prometheus:9090`` on mgmt, and the dashboard provider) and ``dashboards/json``.

Access: anonymous users may view (Viewer); the admin password is a random secret written 0600
into the run directory (``RUN/grafana/admin-password``), mounted read-only and handed to Grafana
through ``GF_SECURITY_ADMIN_PASSWORD__FILE``; the testbed uses it to write the phase
annotations. Grafana runs as uid 0 in its container so that it can read that file whoever owns
it on the host. Update checks and news are off: a testbed runs offline.

The image is ``$TESTBED_GRAFANA_IMAGE`` (default ``grafana/grafana-oss``, pinned below); one that
is neither present nor pullable skips Grafana with a message that says how to get it.
``TESTBED_GRAFANA=0`` turns it off.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import yaml

from testbed import rundir
from testbed.observe.config import SCRAPE_INTERVAL_S, observe_dir
from testbed.observe.dashboards import DATASOURCE_FILE, datasource_provisioning
from testbed.observe.errors import ObserveError
from testbed.observe.files import atomic_write, ensure_dir
from testbed.observe.service import create_on_mgmt, start_published, wait_until_ready
from testbed.observe.targets import OBSERVER_ROLE
from testbed.plan import labels as L
from testbed.plan.model import Plan
from testbed.plan.networks import resource_name

IMAGE_ENV = "TESTBED_GRAFANA_IMAGE"
ENABLE_ENV = "TESTBED_GRAFANA"
DEFAULT_IMAGE = "grafana/grafana-oss:10.4.2"
GRAFANA_NODE = "grafana"
GRAFANA_KIND = "grafana"
GRAFANA_PORT = 3000
URL_ATTRIBUTE = "url"
ADMIN_USER = "admin"
PASSWORD_FILE = "admin-password"
PROVISIONING_MOUNT = "/etc/grafana/provisioning"
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards/testbed"
DATA_MOUNT = "/var/lib/grafana"
SECRET_MOUNT = "/run/secrets/testbed-grafana"
READY_TIMEOUT_S = 90.0  # a first start migrates its database: tens of seconds on a slow disk
STOP_TIMEOUT_S = 5


# Grafana's settings (GF_<SECTION>_<KEY>), for `testbed up` and compose.yaml alike.
ENVIRONMENT = {
    "GF_SECURITY_ADMIN_USER": ADMIN_USER,
    "GF_SECURITY_ADMIN_PASSWORD__FILE": f"{SECRET_MOUNT}/{PASSWORD_FILE}",
    "GF_AUTH_ANONYMOUS_ENABLED": "true",
    "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
    "GF_USERS_ALLOW_SIGN_UP": "false",
    "GF_ANALYTICS_REPORTING_ENABLED": "false",
    "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
    "GF_NEWS_NEWS_FEED_ENABLED": "false",
    "GF_PATHS_PROVISIONING": PROVISIONING_MOUNT,
}


@dataclass(frozen=True)
class GrafanaService:
    run: str
    url: str
    container: str  # name
    password_file: Path

    def credential(self) -> tuple[str, str]:
        """Basic-auth credential of the admin (grafana-client accepts the tuple)."""
        return ADMIN_USER, self.password_file.read_text(encoding="utf-8").strip()


def enabled() -> bool:
    return os.environ.get(ENABLE_ENV, "1").strip().lower() not in {"0", "off", "no", "false"}


def image_ref() -> str:
    return os.environ.get(IMAGE_ENV, "").strip() or DEFAULT_IMAGE


def secret_dir(run_dir: Path) -> Path:
    return run_dir / "grafana"


def write_password(run_dir: Path) -> Path:
    """A fresh admin password for this run, 0600 in a 0700 directory."""
    path = secret_dir(run_dir) / PASSWORD_FILE
    rundir.write_private(path, (secrets.token_urlsafe(24) + "\n").encode())
    return path


def datasource_mount(plan: Plan, run_dir: Path) -> dict[str, dict[str, str]]:
    """A run scraped at another interval than the default gets its own datasource file over the
    repository's, so that Grafana's ``$__rate_interval`` spans four of its scrapes."""
    if plan.scrape_interval_s == SCRAPE_INTERVAL_S:
        return {}
    path = ensure_dir(observe_dir(run_dir)) / "grafana-datasource.yaml"
    spec = datasource_provisioning(interval_s=plan.scrape_interval_s)
    atomic_write(path, yaml.safe_dump(spec, sort_keys=False))
    target = f"{PROVISIONING_MOUNT}/datasources/{DATASOURCE_FILE}"
    return {str(path.resolve()): {"bind": target, "mode": "ro"}}


def grafana_labels(plan: Plan, url: str, run_dir: Path) -> dict[str, str]:
    return L.NodeLabels(
        run=plan.run,
        node=GRAFANA_NODE,
        role=OBSERVER_ROLE,
        building=plan.building,
        kind=GRAFANA_KIND,
        run_dir=str(run_dir),
        topology=plan.topology_path,
        attributes=((URL_ATTRIBUTE, url),),
    ).to_labels()


def start_grafana(
    client: docker.DockerClient, plan: Plan, run_dir: Path, image: str, dashboards_dir: Path
) -> GrafanaService:
    """Create and start the run's Grafana; return once /api/health says the database is ok."""
    name = resource_name(plan.run, GRAFANA_NODE)
    volume = resource_name(plan.run, f"{GRAFANA_NODE}-data")
    mgmt = plan.network("mgmt").resource
    password = write_password(run_dir)
    mounts = {
        volume: {"bind": DATA_MOUNT, "mode": "rw"},
        str((dashboards_dir / "provisioning").resolve()): {
            "bind": PROVISIONING_MOUNT,
            "mode": "ro",
        },
        str((dashboards_dir / "json").resolve()): {"bind": DASHBOARDS_MOUNT, "mode": "ro"},
        str(secret_dir(run_dir).resolve()): {"bind": SECRET_MOUNT, "mode": "ro"},
        **datasource_mount(plan, run_dir),
    }

    def create(port: int, url: str) -> str:
        return create_on_mgmt(
            client,
            image,
            name=name,
            hostname=GRAFANA_NODE,
            mgmt=mgmt,
            binds=mounts,
            container_port=GRAFANA_PORT,
            host_port=port,
            labels=grafana_labels(plan, url, run_dir),
            user="0",
            environment=dict(ENVIRONMENT),
        )

    try:
        client.volumes.create(volume, labels={L.RUN: plan.run, L.NODE: GRAFANA_NODE})
        container_id, url = start_published(client, create)
    except docker.errors.DockerException as exc:
        raise ObserveError(
            f"cannot start Grafana ({image}) for run {plan.run}: {exc}",
            "see the message above; `docker info` shows the daemon's state",
        ) from exc
    wait_until_ready(client, container_id, url, "Grafana", lambda: _healthy(url), READY_TIMEOUT_S)
    return GrafanaService(plan.run, url, name, password)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=2) as answer:
            return bool(json.loads(answer.read()).get("database") == "ok")
    except (OSError, ValueError):  # URLError is an OSError; ValueError: not JSON (yet)
        return False


def find_grafana(client: docker.DockerClient, run: str) -> GrafanaService | None:
    """The run's running Grafana, with the password file its labels lead to."""
    flt = {"label": [f"{L.RUN}={run}", f"{L.NODE}={GRAFANA_NODE}"]}
    for container in client.containers.list(filters=flt, ignore_removed=True):
        labels = container.labels or {}
        url = labels.get(L.PREFIX + URL_ATTRIBUTE, "")
        run_dir = labels.get(L.RUN_DIR, "")
        if url and run_dir:
            password = secret_dir(Path(run_dir)) / PASSWORD_FILE
            return GrafanaService(run, url, str(container.name), password)
    return None
