"""Build the node image for real, with whatever base this machine can have (no registry: the
offline Debian base made by mmdebstrap), and prove that the wheelhouse fits the image.

Needs a Docker daemon. Outside CI the test is skipped without one; in CI (CI=true) a missing daemon
is a failure, because there the daemon is part of what is tested (.ci/run starts one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from testbed.engines.images import (
    DOCKERFILE,
    INPUTS_HASH_LABEL,
    NODE_IMAGE_LATEST,
    ensure_node_image,
    ensure_wheelhouse,
    inputs_hash,
    probe_platform,
    read_node_requirements,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
IMPORTS = "import testbed.node, aiocoap, lakers, prometheus_client, cryptography, cbor2"


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true but no Docker daemon answers: {exc}")
        pytest.skip(f"no Docker daemon: {exc}")
    yield client
    client.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A snapshot of the image inputs, so edits in the work tree during the test change nothing."""
    root = tmp_path / "project"
    (root / DOCKERFILE.parent).mkdir(parents=True)
    shutil.copy2(REPO_ROOT / DOCKERFILE, root / DOCKERFILE)
    for name in ("pyproject.toml", "README.md"):
        if (REPO_ROOT / name).exists():
            shutil.copy2(REPO_ROOT / name, root / name)
    shutil.copytree(
        REPO_ROOT / "testbed",
        root / "testbed",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return root


def _run(client: docker.DockerClient, image: str, code: str) -> str:
    out = client.containers.run(image, entrypoint=["python3", "-c", code], remove=True)
    return out.decode() if isinstance(out, bytes) else str(out)


def test_node_image_builds_offline_and_fits_its_wheelhouse(
    client: docker.DockerClient, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    steps: list[tuple[str, int | None, int | None]] = []
    started = time.monotonic()
    first = ensure_node_image(
        client,
        project_root=project,
        cache_dir=cache,
        progress=lambda m, s, t: steps.append((m, s, t)),
    )
    took = time.monotonic() - started
    if not first.built:
        # This code was built before (same machine): build it again for real, without the cache.
        steps.clear()
        started = time.monotonic()
        first = ensure_node_image(
            client,
            project_root=project,
            cache_dir=cache,
            force=True,
            progress=lambda m, s, t: steps.append((m, s, t)),
        )
        took = time.monotonic() - started
    assert first.built
    with capsys.disabled():
        print(
            f"\nnode image {first.tag} built in {took:.1f} s (base {first.base_image}, "
            f"offline base built now: {first.offline_base_built})"
        )
        for message, step, _total in steps:
            if step is None:
                print(f"  {message}")

    numbered = [(s, t) for _, s, t in steps if s is not None]
    assert numbered and numbered[-1][0] == numbered[-1][1]  # the last step was reached
    image = client.images.get(first.tag)
    assert image.id == first.image_id
    assert image.labels[INPUTS_HASH_LABEL] == first.inputs_hash
    assert client.images.get(NODE_IMAGE_LATEST).id == first.image_id
    assert first.inputs_hash == inputs_hash(project, client.images.get(first.base_image).id)
    assert (
        len(client.images.list(filters={"label": f"{INPUTS_HASH_LABEL}={first.inputs_hash}"})) == 1
    )

    # Up to date: nothing is built the second time.
    second = ensure_node_image(client, project_root=project, cache_dir=cache)
    assert second.built is False
    assert (second.tag, second.image_id, second.inputs_hash) == (
        first.tag,
        first.image_id,
        first.inputs_hash,
    )

    # The wheels fit the image's Python, glibc and machine: the compiled ones import.
    assert _run(client, first.tag, f"{IMPORTS}; print('ok')").strip() == "ok"

    # The image's layout: venv first on PATH, ip present, state and config dirs, no wheelhouse.
    layout = _run(
        client,
        first.tag,
        "import os, shutil, sys; "
        "print(sys.prefix, shutil.which('python3'), shutil.which('ip'), "
        "os.path.isdir('/var/lib/testbed'), os.path.isdir('/etc/testbed'), "
        "os.path.exists('/wheels'))",
    ).split()
    assert layout[:2] == ["/opt/testbed", "/opt/testbed/bin/python3"]
    assert layout[2].endswith("/ip")
    assert layout[3:] == ["True", "True", "False"]
    config = image.attrs["Config"]
    assert config["Entrypoint"] == ["python3", "-m", "testbed.node"]
    assert any(e.startswith("PATH=/opt/testbed/bin:") for e in config["Env"])


def test_a_change_of_project_code_rebuilds_without_downloading(
    client: docker.DockerClient, project: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = ensure_node_image(client, project_root=project, cache_dir=cache)
    base = client.images.get(first.base_image).id
    # the wheelhouse this base needs (the first call may have reused an image, not downloaded)
    wheelhouse = ensure_wheelhouse(
        cache, read_node_requirements(project), probe_platform(client, first.base_image)
    )
    wheels_before = sorted(p.name for p in wheelhouse.iterdir())

    (project / "testbed" / "node" / "_image_test_marker.py").write_text("MARK = 41\n")
    messages: list[str] = []
    started = time.monotonic()
    second = ensure_node_image(
        client, project_root=project, cache_dir=cache, progress=lambda m, s, t: messages.append(m)
    )
    took = time.monotonic() - started
    try:
        assert second.built is True
        assert second.inputs_hash == inputs_hash(project, base) != first.inputs_hash
        assert second.tag != first.tag
        assert not any(m.startswith("downloading wheels") for m in messages), messages
        assert sorted(p.name for p in wheelhouse.iterdir()) == wheels_before
        out = _run(client, second.tag, "import testbed.node._image_test_marker as m; print(m.MARK)")
        assert out.strip() == "41"
        print(f"rebuild after a code change: {took:.1f} s")
    finally:
        # put :latest back on the image of the real code; drop the throw-away image
        (project / "testbed" / "node" / "_image_test_marker.py").unlink()
        again = ensure_node_image(client, project_root=project, cache_dir=cache)
        assert again.tag == first.tag and again.built is False
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(second.tag)
