"""Unit tests of testbed.engines.images (its modules): no Docker daemon, no network."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from testbed.engines.images import (
    DOCKERFILE,
    OFFLINE_BASE,
    ImagePlatform,
    base_image,
    build,
    inputs_hash,
    node_image_tag,
    package_files,
    parse_probe_output,
    pip_download_command,
    platform_tags,
    read_node_requirements,
    wheelhouse_key,
)
from testbed.errors import ImageError

REPO_ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A minimal project tree: pyproject, Dockerfile and a small testbed package."""
    root = tmp_path / "project"
    (root / "images" / "node").mkdir(parents=True)
    (root / DOCKERFILE).write_text("ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "iot-security-testbed"\nversion = "0.1.0"\n'
        "[project.optional-dependencies]\n"
        'node = ["cbor2>=5.6", "aiocoap[oscore]==0.4.17"]\n'
        'dev = ["pytest"]\n'
    )
    pkg = root / "testbed"
    (pkg / "node").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""pkg"""\n')
    (pkg / "py.typed").write_text("")
    (pkg / "node" / "__init__.py").write_text("")
    (pkg / "node" / "thing.py").write_text("ROLE = 'thing'\n")
    return root


# --- inputs hash ---------------------------------------------------------------------------------


def test_hash_is_stable(project: Path) -> None:
    first = inputs_hash(project, "sha256:base")
    assert first == inputs_hash(project, "sha256:base")
    assert len(first) == 64
    int(first, 16)


def test_hash_changes_when_a_package_file_changes(project: Path) -> None:
    before = inputs_hash(project, "sha256:base")
    (project / "testbed" / "node" / "thing.py").write_text("ROLE = 'actuator'\n")
    assert inputs_hash(project, "sha256:base") != before


def test_hash_changes_when_a_package_file_is_added_renamed_or_removed(project: Path) -> None:
    hashes = {inputs_hash(project, "b")}
    new = project / "testbed" / "node" / "radio.py"
    new.write_text("")
    hashes.add(inputs_hash(project, "b"))
    new.rename(project / "testbed" / "node" / "medium.py")
    hashes.add(inputs_hash(project, "b"))
    (project / "testbed" / "node" / "medium.py").unlink()
    assert inputs_hash(project, "b") in hashes  # back to the start
    assert len(hashes) == 3


def test_hash_ignores_pycache_and_compiled_files(project: Path) -> None:
    before = inputs_hash(project, "sha256:base")
    cache = project / "testbed" / "node" / "__pycache__"
    cache.mkdir()
    (cache / "thing.cpython-311.pyc").write_bytes(b"\x00compiled")
    (project / "testbed" / "stray.pyc").write_bytes(b"\x00")
    assert inputs_hash(project, "sha256:base") == before


def test_hash_ignores_files_outside_the_inputs(project: Path) -> None:
    before = inputs_hash(project, "sha256:base")
    (project / "README.md").write_text("docs change")
    (project / "tests").mkdir()
    (project / "tests" / "test_x.py").write_text("")
    assert inputs_hash(project, "sha256:base") == before


@pytest.mark.parametrize("what", ["dockerfile", "pyproject", "base"])
def test_hash_covers_dockerfile_pyproject_and_base_image(project: Path, what: str) -> None:
    before = inputs_hash(project, "sha256:base")
    base = "sha256:base"
    if what == "dockerfile":
        with (project / DOCKERFILE).open("a") as handle:
            handle.write("RUN true\n")
    elif what == "pyproject":
        with (project / "pyproject.toml").open("a") as handle:
            handle.write("# comment\n")
    else:
        base = "sha256:other"
    assert inputs_hash(project, base) != before


def test_hash_does_not_depend_on_where_the_project_lies(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(project, copy)
    assert inputs_hash(copy, "b") == inputs_hash(project, "b")


def test_hash_is_not_fooled_by_moving_bytes_between_files(project: Path) -> None:
    node = project / "testbed" / "node"
    (node / "a.py").write_text("xy")
    (node / "b.py").write_text("")
    first = inputs_hash(project, "b")
    (node / "a.py").write_text("x")
    (node / "b.py").write_text("y")
    assert inputs_hash(project, "b") != first


def test_package_files_are_sorted_and_relative_to_the_package(project: Path) -> None:
    names = [p.relative_to(project).as_posix() for p in package_files(project)]
    assert names == sorted(names)
    assert "testbed/node/thing.py" in names
    assert "testbed/py.typed" in names


def test_hash_of_the_real_project_is_stable() -> None:
    assert inputs_hash(REPO_ROOT, "x") == inputs_hash(REPO_ROOT, "x")


def test_missing_package_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as info:
        inputs_hash(tmp_path, "b")
    assert info.value.hint


def test_node_image_tag_uses_the_first_12_hex() -> None:
    digest = "0123456789abcdef" * 4
    assert node_image_tag(digest) == "testbed/node:0123456789ab"
    with pytest.raises(ValueError):
        node_image_tag("latest")


# --- platform tags -------------------------------------------------------------------------------


def test_platform_tags_from_the_image_glibc_down_to_2_17() -> None:
    tags = platform_tags((2, 36), "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert tags[-2] == "manylinux_2_17_x86_64"
    assert tags[-1] == "manylinux2014_x86_64"
    assert len(tags) == 36 - 17 + 1 + 1
    minors = [int(t.split("_")[2]) for t in tags[:-1]]
    assert minors == list(range(36, 16, -1))


def test_platform_tags_at_exactly_2_17_and_other_machines() -> None:
    assert platform_tags((2, 17), "aarch64") == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert platform_tags((2, 28), "arm64")[0] == "manylinux_2_28_aarch64"
    assert platform_tags((2, 28), "amd64")[0] == "manylinux_2_28_x86_64"


@pytest.mark.parametrize("glibc", [(2, 16), (2, 5), (3, 0)])
def test_platform_tags_reject_glibc_older_than_manylinux2014(glibc: tuple[int, int]) -> None:
    with pytest.raises(ImageError):
        platform_tags(glibc, "x86_64")


def test_pip_download_command_targets_the_image_not_the_host(tmp_path: Path) -> None:
    plat = ImagePlatform(python=(3, 12), glibc=(2, 31), machine="aarch64")
    cmd = pip_download_command(["cbor2>=5.6", "lakers-python>=0.6.2"], plat, tmp_path)
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.12"
    assert cmd[cmd.index("--implementation") + 1] == "cp"
    assert cmd[cmd.index("--abi") + 1] == "cp312"
    platforms = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--platform"]
    assert platforms == platform_tags((2, 31), "aarch64")
    assert cmd[cmd.index("-d") + 1] == str(tmp_path)
    assert cmd[-2:] == ["cbor2>=5.6", "lakers-python>=0.6.2"]


def test_wheelhouse_key_depends_on_requirements_python_and_platform() -> None:
    reqs = ["cbor2>=5.6"]
    tags = platform_tags((2, 36), "x86_64")
    key = wheelhouse_key(reqs, "cp311", tags)
    assert key == wheelhouse_key(list(reqs), "cp311", list(tags))
    assert key != wheelhouse_key([*reqs, "filelock"], "cp311", tags)
    assert key != wheelhouse_key(reqs, "cp312", tags)
    assert key != wheelhouse_key(reqs, "cp311", platform_tags((2, 36), "aarch64"))


def test_probe_output_is_parsed() -> None:
    probe = {"python": [3, 11], "implementation": "cpython", "libc": ["glibc", "2.36"]}
    out = json.dumps({**probe, "machine": "x86_64"})
    plat = parse_probe_output("some banner\n" + out + "\n")
    assert plat == ImagePlatform((3, 11), (2, 36), "x86_64")
    assert plat.python_tag == "cp311"
    assert plat.platform_tags[0] == "manylinux_2_36_x86_64"


@pytest.mark.parametrize(
    "libc, implementation",
    [(["", ""], "cpython"), (["musl", "1.2"], "cpython"), (["glibc", "2.36"], "pypy")],
)
def test_probe_rejects_musl_and_non_cpython(libc: list[str], implementation: str) -> None:
    out = json.dumps(
        {"python": [3, 11], "implementation": implementation, "libc": libc, "machine": "x86_64"}
    )
    with pytest.raises(ImageError):
        parse_probe_output(out)


def test_probe_garbage_is_an_image_error() -> None:
    with pytest.raises(ImageError):
        parse_probe_output("Traceback (most recent call last):")


# --- node extra ----------------------------------------------------------------------------------


def test_node_extra_of_the_real_pyproject() -> None:
    reqs = read_node_requirements(REPO_ROOT)
    names = {r.split("[")[0].split(">")[0].split("=")[0].strip().lower() for r in reqs}
    assert {"aiocoap", "lakers-python", "cryptography", "prometheus-client"} <= names
    # host-side libraries never go into the node image
    assert not names & {"docker", "typer", "rich", "pydantic", "ansible-runner"}


def test_node_extra_is_read_verbatim(project: Path) -> None:
    assert read_node_requirements(project) == ["cbor2>=5.6", "aiocoap[oscore]==0.4.17"]


def test_missing_node_extra_is_an_image_error(project: Path) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ImageError) as info:
        read_node_requirements(project)
    assert "node" in str(info.value)


def test_unreadable_pyproject_is_an_image_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(ImageError):
        read_node_requirements(tmp_path)


# --- the Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_contract() -> None:
    text = (REPO_ROOT / DOCKERFILE).read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in text
    assert "python3 -m venv /opt/testbed" in text
    assert "--no-index" in text
    assert 'ENTRYPOINT ["python3", "-m", "testbed.node"]' in text
    assert "/var/lib/testbed" in text and "/etc/testbed" in text
    assert "PATH=/opt/testbed/bin:" in text
    for secret_ish in ("PRIVATE KEY", "PASSWORD", "TOKEN", ".pem", ".key"):
        assert secret_ish.lower() not in text.lower()


# --- Docker-facing logic with a fake client ------------------------------------------------------


class _FakeImage:
    def __init__(self, image_id: str) -> None:
        self.id = image_id


class _FakeImages:
    def __init__(self, present: dict[str, str]) -> None:
        self.present = present

    def get(self, ref: str) -> _FakeImage:
        if ref not in self.present:
            raise docker.errors.ImageNotFound(ref)
        return _FakeImage(self.present[ref])

    def list(self, filters: dict[str, str] | None = None) -> list[_FakeImage]:
        return []


class _FakeApi:
    def __init__(self, build_stream: list[dict[str, Any]], pull_error: str | None) -> None:
        self.build_stream = build_stream
        self.pull_error = pull_error
        self.pulled: list[tuple[str, str]] = []
        self.build_kwargs: dict[str, Any] = {}

    def pull(self, repository: str, tag: str, stream: bool, decode: bool) -> Iterator[Any]:
        self.pulled.append((repository, tag))
        if self.pull_error:
            yield {"error": self.pull_error}

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.build_kwargs = kwargs
        return iter(self.build_stream)


class _FakeClient:
    def __init__(
        self,
        present: dict[str, str] | None = None,
        build_stream: list[dict[str, Any]] | None = None,
        pull_error: str | None = "no such host",
    ) -> None:
        self.images = _FakeImages(dict(present or {}))
        self.api = _FakeApi(build_stream or [], pull_error)


def _resolve(client: _FakeClient, requested: str | None, tmp_path: Path) -> tuple[str, str, bool]:
    messages: list[str] = []
    result = base_image._resolve_base(
        client,
        requested,
        tmp_path,
        lambda m, s, t: messages.append(m),
    )
    return result


def test_local_default_base_is_used_without_pulling(tmp_path: Path) -> None:
    client = _FakeClient({"python:3.11-slim": "sha256:slim"})
    assert _resolve(client, None, tmp_path) == ("python:3.11-slim", "sha256:slim", False)
    assert client.api.pulled == []


def test_unreachable_registry_falls_back_to_an_existing_offline_base(tmp_path: Path) -> None:
    client = _FakeClient({OFFLINE_BASE: "sha256:offline"})
    assert _resolve(client, None, tmp_path) == (OFFLINE_BASE, "sha256:offline", False)
    assert client.api.pulled == [("python", "3.11-slim")]


def test_a_failed_pull_is_not_retried_for_a_while(tmp_path: Path) -> None:
    client = _FakeClient({OFFLINE_BASE: "sha256:offline"})
    _resolve(client, None, tmp_path)
    _resolve(client, None, tmp_path)
    assert client.api.pulled == [("python", "3.11-slim")]
    # an explicit request always asks the registry
    with pytest.raises(ImageError):
        _resolve(client, "python:3.11-slim", tmp_path)
    assert len(client.api.pulled) == 2


def test_a_stalled_pull_is_abandoned() -> None:
    release = threading.Event()

    class _StalledApi:
        def pull(self, repository: str, tag: str, stream: bool, decode: bool) -> Iterator[Any]:
            release.wait(10)
            yield {"status": "too late"}

    class _Client:
        api = _StalledApi()

    started = time.monotonic()
    try:
        error = base_image._try_pull(_Client(), "python:3.11-slim", 0.3)
    finally:
        release.set()
    assert error is not None and "no answer" in error
    assert time.monotonic() - started < 5


def test_a_pull_that_makes_progress_is_not_cut_short() -> None:
    class _SlowApi:
        def pull(self, repository: str, tag: str, stream: bool, decode: bool) -> Iterator[Any]:
            for _ in range(8):
                time.sleep(0.1)
                yield {"status": "Downloading"}

    class _Client:
        api = _SlowApi()

    assert base_image._try_pull(_Client(), "python:3.11-slim", 0.3) is None


def test_explicit_base_that_cannot_be_had_is_an_error(tmp_path: Path) -> None:
    client = _FakeClient({OFFLINE_BASE: "sha256:offline"})
    with pytest.raises(ImageError) as info:
        _resolve(client, "debian:bookworm", tmp_path)
    assert "debian:bookworm" in str(info.value)


def test_missing_mmdebstrap_is_an_image_error_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("testbed.engines.images.base_image.shutil.which", lambda name: None)
    with pytest.raises(ImageError) as info:
        _resolve(_FakeClient(), None, tmp_path)
    assert "apt-get install mmdebstrap" in info.value.hint


def test_build_reports_steps_and_returns_the_image_id(tmp_path: Path) -> None:
    stream: list[dict[str, Any]] = [
        {"stream": "Step 1/3 : ARG BASE_IMAGE=python:3.11-slim\n"},
        {"stream": "Step 2/3 : FROM ${BASE_IMAGE}\n ---> 123\n"},
        {"stream": "Step 3/3 : RUN    echo    hi\n"},
        {"aux": {"ID": "sha256:abc"}},
        {"stream": "Successfully built abc\n"},
    ]
    client = _FakeClient(build_stream=stream)
    seen: list[tuple[str, int | None, int | None]] = []
    image_id = build._build(
        client,
        tmp_path,
        OFFLINE_BASE,
        {"testbed.inputs-hash": "h"},
        nocache=False,
        report=lambda m, s, t: seen.append((m, s, t)),
    )
    assert image_id == "sha256:abc"
    assert [(s, t) for _, s, t in seen] == [(1, 3), (2, 3), (3, 3)]
    assert seen[2][0] == "Step 3/3 : RUN echo hi"
    kwargs = client.api.build_kwargs
    assert kwargs["pull"] is False and kwargs["rm"] is True and kwargs["decode"] is True
    assert kwargs["buildargs"] == {"BASE_IMAGE": OFFLINE_BASE}
    assert kwargs["labels"] == {"testbed.inputs-hash": "h"}


def test_build_error_names_the_step_and_the_output_tail(tmp_path: Path) -> None:
    stream: list[dict[str, Any]] = [
        {"stream": "Step 1/2 : FROM base\n"},
        {"stream": "Step 2/2 : RUN pip install --no-index x\n"},
        {"stream": "ERROR: No matching distribution found for x\n"},
        {"error": "The command '/bin/sh -c pip install' returned a non-zero code: 1"},
    ]
    with pytest.raises(ImageError) as info:
        build._build(
            _FakeClient(build_stream=stream),
            tmp_path,
            OFFLINE_BASE,
            {},
            nocache=False,
            report=lambda m, s, t: None,
        )
    text = str(info.value)
    assert "step 2/2" in text
    assert "No matching distribution found for x" in text
    assert "non-zero code: 1" in text
    assert info.value.hint
