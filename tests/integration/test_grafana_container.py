"""The run's own Grafana container, started by `testbed up` when a Grafana image is available.

Grafana itself cannot run here (no registry, not in Debian), so this test builds a FAKE Grafana
image: the node image with tests/unit/observe/fake_grafana.py as its entry point, which speaks
Grafana's HTTP API, reads Grafana's settings from the same GF_* variables and loads Grafana's
provisioning files. It is NOT Grafana. What the test shows is the testbed's side for real: the
container is made from $TESTBED_GRAFANA_IMAGE with the repository's provisioning mounted
read-only, sits on mgmt where the datasource URL http://prometheus:9090 answers, is published on
127.0.0.1 only, gets its admin password from a 0600 file of the run directory, receives the
phase annotations of `up` and of later phases, and leaves with `testbed down`.
"""

from __future__ import annotations

import base64
import json
import stat
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT, remove_run, run_cli

pytestmark = pytest.mark.integration
MINIMAL = ROOT / "topologies" / "minimal.yaml"
RUN = f"gf-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def run(docker_client, fake_grafana_image: str, cli_env) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    env = dict(cli_env, TESTBED_GRAFANA="1", TESTBED_GRAFANA_IMAGE=fake_grafana_image)
    env.pop("GRAFANA_URL", None)
    remove_run(docker_client, RUN)
    up = run_cli(["up", "-t", str(MINIMAL), "--run", RUN], env, timeout=900)
    try:
        status = json.loads(run_cli(["status", "--run", RUN, "--json"], env).stdout)
        (grafana,) = [s for s in status if s["node"] == "grafana"]
        yield {"up": up.stdout, "env": env, "grafana": grafana}
    finally:
        run_cli(["down", "--run", RUN], cli_env, check=False)
        remove_run(docker_client, RUN)


def get(url: str, auth: tuple[str, str] | None = None, data: Any = None) -> Any:
    request = urllib.request.Request(url, method="POST" if data is not None else "GET")
    if data is not None:
        request.data = json.dumps(data).encode()
        request.add_header("Content-Type", "application/json")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_up_starts_the_runs_grafana_provisioned_and_published_on_localhost(
    run: dict[str, Any], docker_client: Any
) -> None:
    url = run["grafana"]["attributes"]["url"]
    assert url.startswith("http://127.0.0.1:") and run["grafana"]["role"] == "observer"
    assert f"Grafana: {url}" in run["up"], run["up"]
    # Anonymous users see the provisioned dashboards, in the folder the push uses too.
    found = get(f"{url}/api/search?type=dash-db")
    assert {d["uid"] for d in found} == {
        json.loads(p.read_text())["uid"] for p in (ROOT / "dashboards" / "json").glob("*.json")
    }
    assert {d["folderUid"] for d in found} == {"testbed"}
    datasource = get(f"{url}/api/datasources/uid/testbed-prometheus")
    assert datasource["url"] == "http://prometheus:9090"
    # ... and that URL answers from inside the Grafana container (mgmt, the alias "prometheus").
    container = docker_client.containers.get(f"tb-{RUN}-grafana")
    probe = "import urllib.request as u; print(u.urlopen('http://prometheus:9090/-/ready').status)"
    result = container.exec_run(["python3", "-c", probe])
    assert result.exit_code == 0 and result.output.decode().strip() == "200", result.output
    ports = container.attrs["HostConfig"]["PortBindings"]["3000/tcp"]
    assert [p["HostIp"] for p in ports] == ["127.0.0.1"]
    assert set(container.attrs["NetworkSettings"]["Networks"]) == {f"tb-{RUN}-mgmt"}


def test_the_admin_password_is_a_private_file_mounted_read_only(
    run: dict[str, Any], docker_client: Any
) -> None:
    run_dir = Path(run["grafana"]["run_dir"])
    password_file = run_dir / "grafana" / "admin-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    assert len(password) >= 24 and password not in run["up"]
    container = docker_client.containers.get(f"tb-{RUN}-grafana")
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    for target in (
        "/run/secrets/testbed-grafana",
        "/etc/grafana/provisioning",
        "/var/lib/grafana/dashboards/testbed",
    ):
        assert mounts[target]["RW"] is False, target
    env = container.attrs["Config"]["Env"]
    assert not any(password in e for e in env)  # by file, never in the environment or labels
    assert password not in json.dumps(container.attrs["Config"]["Labels"])
    url = run["grafana"]["attributes"]["url"]
    # Anonymous users may look, not write; a wrong password is refused.
    annotation = {"text": "x", "tags": ["t"], "time": 1}
    for auth in (None, ("admin", "wrong")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(f"{url}/api/annotations", auth, annotation)
        assert refused.value.code == 401


def test_phases_are_annotated_in_the_runs_grafana(run: dict[str, Any]) -> None:
    url = run["grafana"]["attributes"]["url"]
    password = (Path(run["grafana"]["run_dir"]) / "grafana" / "admin-password").read_text()
    auth = ("admin", password.strip())

    def phases() -> list[str]:
        found = get(f"{url}/api/annotations?tags=phase&tags=run:{RUN}&limit=100", auth)
        return sorted(t for a in found for t in a["tags"] if t.startswith("phase:"))

    assert phases() == ["phase:commission", "phase:install"]
    assert "the run's own; 2 phase annotations" in run["up"]
    again = run_cli(["phase", "commission", "--run", RUN], run["env"])
    assert "the run's own; 3 phase annotations" in again.stdout
    assert phases() == ["phase:commission", "phase:commission", "phase:install"]


def test_down_removes_the_grafana_container_and_volume(
    docker_client: Any, fake_grafana_image: str, cli_env: dict[str, str]
) -> None:
    name = f"gf-{uuid.uuid4().hex[:6]}"
    env = dict(cli_env, TESTBED_GRAFANA="1", TESTBED_GRAFANA_IMAGE=fake_grafana_image)
    try:
        run_cli(["up", "-t", str(MINIMAL), "--run", name, "--no-wait"], env, timeout=900)
        labels = {"label": [f"testbed.run={name}", "testbed.node=grafana"]}
        assert len(docker_client.containers.list(filters=labels)) == 1
        assert len(docker_client.volumes.list(filters=labels)) == 1
        run_cli(["down", "--run", name], env)
        assert docker_client.containers.list(all=True, filters=labels) == []
        assert docker_client.volumes.list(filters=labels) == []
    finally:
        remove_run(docker_client, name)


def test_without_an_image_up_says_grafana_is_skipped_and_how_to_get_one(
    docker_client: Any, node_image: str, cli_env: dict[str, str]
) -> None:
    name = f"gf-{uuid.uuid4().hex[:6]}"
    missing = "testbed/no-such-grafana:0"
    env = dict(cli_env, TESTBED_GRAFANA="1", TESTBED_GRAFANA_IMAGE=missing)
    try:
        up = run_cli(["up", "-t", str(MINIMAL), "--run", name, "--no-wait"], env, timeout=900)
        assert f"Grafana: skipped, image {missing} is not available" in up.stdout, up.stdout
        assert "`docker load` it" in up.stdout
        status = json.loads(run_cli(["status", "--run", name, "--json"], env).stdout)
        assert "grafana" not in {s["node"] for s in status}
    finally:
        run_cli(["down", "--run", name], env, check=False)
        remove_run(docker_client, name)


def test_fake_image_is_labelled_as_fake(docker_client: Any, fake_grafana_image: str) -> None:
    labels = docker_client.images.get(fake_grafana_image).labels
    assert "FAKE Grafana" in labels["org.opencontainers.image.title"]
