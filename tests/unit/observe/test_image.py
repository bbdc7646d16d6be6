"""The Prometheus image's inputs hash and Dockerfile (the build itself: integration tests)."""

from __future__ import annotations

from pathlib import Path

from testbed.observe.binaries import HostBinaries
from testbed.observe.image import DOCKERFILE, image_tag, inputs_hash

ROOT = Path(__file__).resolve().parents[3]


def test_the_hash_changes_with_each_input() -> None:
    base = inputs_hash(b"FROM x", "sha256:1", None)
    assert base == inputs_hash(b"FROM x", "sha256:1", None)
    others = {
        inputs_hash(b"FROM y", "sha256:1", None),
        inputs_hash(b"FROM x", "sha256:2", None),
        inputs_hash(b"FROM x", "sha256:1", "a" * 64),
    }
    assert base not in others and len(others) == 3
    assert image_tag(base) == f"testbed/prometheus:{base[:12]}"


def test_binaries_digest_follows_their_content(tmp_path: Path) -> None:
    prometheus, promtool = tmp_path / "prometheus", tmp_path / "promtool"
    prometheus.write_bytes(b"one")
    promtool.write_bytes(b"two")
    binaries = HostBinaries(prometheus, promtool, "host:test")
    first = binaries.digest()
    promtool.write_bytes(b"three")
    assert binaries.digest() != first


def test_dockerfile_uses_the_local_base_and_runs_unprivileged() -> None:
    text = (ROOT / DOCKERFILE).read_text()
    assert "ARG BASE_IMAGE=testbed/base:bookworm" in text and "FROM ${BASE_IMAGE}" in text
    assert "USER 65534:65534" in text
    # no lifecycle API: any node on mgmt could stop the measurement with POST /-/quit
    assert '"--web.enable-lifecycle"' not in text
