"""DockerEngine.deploy's order, against a recording daemon: every container is created (and
attached to all its networks) before it starts, and no node of a tier starts before every node
of the tiers below reports ready, however the threads interleave."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from testbed.engines.docker import DockerEngine
from testbed.errors import NodeFailed
from tests.unit.compose.conftest import ROOT, plan_for
from tests.unit.compose.fake_docker import _API, RecordingClient


class _Ordered(_API):
    """Records create, connect, start and ready (the probe's exit) in the order they happen."""

    def __init__(self, fails: str = "") -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.log: list[tuple[str, str]] = []
        self.fails = fails

    def _note(self, what: str, container: str) -> None:
        with self.lock:
            self.log.append((what, container))

    def create_container(self, image: str, **kwargs: Any) -> dict[str, str]:
        created = super().create_container(image, **kwargs)
        self._note("create", kwargs["name"])
        return created

    def connect_container_to_network(self, container: str, net: str, **kwargs: Any) -> None:
        super().connect_container_to_network(container, net, **kwargs)
        self._note("connect", container)

    def start(self, container: str) -> None:
        self._note("start", container)

    def exec_inspect(self, exec_id: str) -> dict[str, int]:
        if exec_id == self.fails:
            return {"ExitCode": 1}
        self._note("ready", exec_id)
        return {"ExitCode": 0}

    def inspect_container(self, container: str) -> dict[str, Any]:
        if container == self.fails:  # probed once, then found stopped
            return {"State": {"Running": self._probed(container), "ExitCode": 2}}
        return super().inspect_container(container)

    def _probed(self, container: str) -> bool:
        with self.lock:
            first = ("probe", container) not in self.log
            self.log.append(("probe", container))
        return first

    def logs(self, container: str, tail: int) -> bytes:
        return b"node.failed\n"


def test_tiers_start_in_order_and_every_container_is_made_before_it_starts(
    tmp_path: Path,
) -> None:
    plan = plan_for(ROOT / "topologies" / "default.yaml", "order", tmp_path / "run")
    client = RecordingClient()
    client.api = api = _Ordered()
    DockerEngine(client).deploy(plan, "img", tmp_path, lambda event, name: None)  # type: ignore[arg-type]

    position = {entry: i for i, entry in enumerate(api.log)}
    nodes = plan.containers()
    assert {n.resource for n in nodes} == {c for what, c in api.log if what == "ready"}
    tiers = sorted({n.tier for n in nodes})
    assert len(tiers) > 1  # the default building has infrastructure and things
    for node in nodes:
        last_made = max(
            i
            for (what, c), i in position.items()
            if c == node.resource and what in ("create", "connect")
        )
        assert last_made < position[("start", node.resource)]
        for below in (n for n in nodes if n.tier < node.tier):
            assert position[("ready", below.resource)] < position[("start", node.resource)]


def test_a_failed_lower_tier_starts_no_higher_tier(tmp_path: Path) -> None:
    plan = plan_for(ROOT / "topologies" / "default.yaml", "order", tmp_path / "run")
    lowest = min(n.tier for n in plan.containers())
    failing = next(n for n in plan.containers() if n.tier == lowest)
    client = RecordingClient()
    client.api = api = _Ordered(fails=failing.resource)
    with pytest.raises(NodeFailed) as caught:
        DockerEngine(client).deploy(plan, "img", tmp_path, lambda event, name: None)  # type: ignore[arg-type]
    assert caught.value.node == failing.name
    started = {c for what, c in api.log if what == "start"}
    assert started == {n.resource for n in plan.containers() if n.tier == lowest}
