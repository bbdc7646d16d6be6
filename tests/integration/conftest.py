"""Fixtures for tests against a real Docker daemon.

In CI (CI=true) a missing daemon fails the suite: .ci/run starts one, so its absence is a bug.
On a developer machine without Docker the integration tests are skipped with a reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tarfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Prepended to the names of the runs these tests start: on a machine several people share,
# each gives their runs a prefix of their own (TESTBED_IT_RUN_PREFIX=ab-).
RUN_PREFIX = os.environ.get("TESTBED_IT_RUN_PREFIX", "")
TESTBED = [sys.executable, "-m", "testbed.cli.app"]


def _daemon_up() -> bool:
    import docker

    try:
        docker.from_env(timeout=10).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def docker_client():  # type: ignore[no-untyped-def]
    if not _daemon_up():
        if os.environ.get("CI"):
            pytest.fail("no Docker daemon answers, but CI must provide one (.ci/run starts it)")
        pytest.skip("no Docker daemon answers: integration tests need one")
    import docker

    return docker.from_env(timeout=120)


@pytest.fixture(scope="session")
def testbed_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("testbed-home")


@pytest.fixture(scope="session")
def cli_env(testbed_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TESTBED_HOME"] = str(testbed_home)
    # The image cache is shared across the session so the node image is built once.
    env.setdefault("COLUMNS", "200")
    # No Grafana container unless a test asks for one (test_grafana_container.py): the other
    # tests behave the same on a machine whose registry would hand out the real image.
    env["TESTBED_GRAFANA"] = "0"
    return env


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*TESTBED, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"testbed {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def node_image(docker_client, cli_env: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    """Builds (or finds) the node image through the CLI, as a user would.

    Its inputs-hash tag, not ``:latest``: on a machine where another checkout builds its own
    node image meanwhile, ``:latest`` moves, and nodes created later would run other code."""
    built = run_cli(["images", "build"], cli_env, timeout=1500)
    tags = re.findall(r"testbed/node:[0-9a-f]{12}\b", built.stdout + built.stderr)
    return tags[-1] if tags else "testbed/node:latest"


@pytest.fixture
def run_name() -> Iterator[str]:
    yield f"{RUN_PREFIX}it-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def phase_environment(cli_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The CLI environment, also set in this process, for tests that run phases in-process.

    The Ansible collections come from the developer's cache when it has them (no second
    download of the ansible wheel).
    """
    from testbed.phases import collections

    env = dict(cli_env)
    shared = ROOT / ".testbed" / "cache" / "collections"
    if (shared / collections.ANSIBLE_VERSION).is_dir():
        env[collections.ENV_OVERRIDE] = str(shared)
    saved = {k: os.environ.get(k) for k in ("TESTBED_HOME", collections.ENV_OVERRIDE)}
    os.environ.update({k: env[k] for k in saved if k in env})
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def remove_run(docker_client, run: str) -> None:  # type: ignore[no-untyped-def]
    """Best-effort cleanup with the SDK directly, so a broken `down` cannot leak objects."""
    flt = {"label": [f"testbed.run={run}"]}
    for c in docker_client.containers.list(all=True, filters=flt):
        c.remove(force=True)
    for n in docker_client.networks.list(filters=flt):
        _remove_network(docker_client, n)
    for v in docker_client.volumes.list(filters=flt):
        v.remove(force=True)


def _remove_network(docker_client, net) -> None:  # type: ignore[no-untyped-def]
    """Docker 20.10 can keep a stale endpoint for a moment after its container is gone: detach
    and retry; if the daemon still holds it, warn (the run's containers are gone, and a leaked
    network of a uniquely named run disturbs no other test) instead of failing the teardown."""
    import docker

    from testbed.engines.docker_networks import detach_endpoints

    for attempt in range(10):
        try:
            net.remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            # A swarm overlay that `down` removed can still be listed for a moment; removing
            # it then answers 500 "network ... not found".
            if "not found" in str(exc):
                return
            if "active endpoints" not in str(exc):
                raise
            detach_endpoints(docker_client, net)
            time.sleep(0.2 * (attempt + 1))
    warnings.warn(
        f"network {net.name} kept an endpoint (Docker 20.10 defect); left behind", stacklevel=3
    )


def assert_networks_gone(docker_client, run: str) -> None:  # type: ignore[no-untyped-def]
    """No network of the run is left, but for one Docker 20.10 refuses to remove although
    nothing is attached (its endpoint count drifted: `testbed down` reports such networks and
    goes on). That one is proven stale here: no endpoint listed and still refused. A network
    that the removal merely forgot is removable, and fails the test."""
    import docker

    for net in docker_client.networks.list(filters={"label": [f"testbed.run={run}"]}):
        net.reload()
        attached = [k for k in (net.attrs.get("Containers") or {}) if not k.startswith("ep-")]
        assert not attached, f"network {net.name} still has containers attached: {attached}"
        try:
            net.remove()
        except docker.errors.APIError as exc:
            if "active endpoints" not in str(exc):
                raise
            warnings.warn(f"network {net.name}: stale endpoint count (Docker 20.10)", stacklevel=2)
            continue
        raise AssertionError(f"network {net.name} was left behind although it can be removed")


FAKE_GRAFANA_IMAGE = "testbed/fake-grafana:test"


@pytest.fixture(scope="session")
def fake_grafana_image(docker_client, node_image: str) -> str:  # type: ignore[no-untyped-def]
    """FAKE Grafana image: the node image running tests/unit/observe/fake_grafana.py (with the
    host's PyYAML). Grafana itself cannot run here (no registry, not in Debian); the fake speaks
    its HTTP API, reads its GF_* settings and loads its provisioning files. It is NOT Grafana."""
    import yaml

    context = io.BytesIO()
    dockerfile = (
        f"FROM {node_image}\n"
        'LABEL org.opencontainers.image.title="FAKE Grafana for testbed tests, not Grafana"\n'
        "COPY fake_grafana.py /fake/fake_grafana.py\n"
        "COPY yaml /fake/lib/yaml\n"
        "ENV PYTHONPATH=/fake/lib\n"
        'ENTRYPOINT ["python3", "/fake/fake_grafana.py"]\n'
    )
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(ROOT / "tests" / "unit" / "observe" / "fake_grafana.py", "fake_grafana.py")
        # Pure Python is enough: without its C extension PyYAML falls back to it.
        yaml_dir = Path(yaml.__file__).parent
        tar.add(yaml_dir, "yaml", filter=lambda t: None if t.name.endswith(".so") else t)
    context.seek(0)
    docker_client.images.build(
        fileobj=context, custom_context=True, tag=FAKE_GRAFANA_IMAGE, rm=True
    )
    return FAKE_GRAFANA_IMAGE
