"""file_sd targets: atomic replacement (a reader never sees half a file), nodes coming and going."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from testbed.engines.base import NodeStatus
from testbed.observe.targets import (
    read_targets,
    targets_from_plan,
    targets_from_status,
    targets_path,
    write_targets,
)
from testbed.plan import Plan


def _status(node: str, role: str, state: str = "running", **attributes: str) -> NodeStatus:
    return NodeStatus(
        run="r",
        node=node,
        role=role,
        kind="",
        state=state,
        resource=f"tb-r-{node}",
        image="testbed/node:latest",
        addresses={"mgmt": f"fd00::{len(node):x}", "pan-p0": "fd00:10::1"},
        attributes=attributes,
    )


def test_nodes_come_and_go(plan: Plan, tmp_path: Path) -> None:
    write_targets(tmp_path, targets_from_plan(plan))
    assert len(read_targets(tmp_path)) == len(plan.nodes)
    # one thing leaves, one joins: the status of what runs is the new truth
    nodes = [
        _status("br1", "border_router", pans="floor1"),
        _status("t-new", "thing", vendor="acme", model="m", domain="d", pan="floor1"),
        _status("t-stopped", "thing", state="exited", vendor="acme"),
        _status("prometheus", "observer", url="http://127.0.0.1:1"),
    ]
    write_targets(tmp_path, targets_from_status(nodes))
    groups = {g["labels"]["node"]: g for g in read_targets(tmp_path)}
    assert sorted(groups) == ["br1", "t-new"]
    assert groups["t-new"]["labels"] == {
        "run": "r",
        "node": "t-new",
        "role": "thing",
        "vendor": "acme",
        "model": "m",
        "domain": "d",
        "pan": "floor1",
    }
    assert groups["t-new"]["targets"] == ["[fd00::5]:9180"]
    assert [p.name for p in targets_path(tmp_path).parent.iterdir()] == ["nodes.json"]


def test_a_reader_never_sees_a_partial_file(plan: Plan, tmp_path: Path) -> None:
    full = targets_from_plan(plan)
    variants = [full, full[:2], full[:1], full[3:]]
    write_targets(tmp_path, full)
    path = targets_path(tmp_path)
    stop = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            text = path.read_text(encoding="utf-8")
            try:
                seen.append(len(json.loads(text)))
            except ValueError:
                errors.append(text[-80:])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(300):
            write_targets(tmp_path, variants[i % len(variants)])
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert seen and set(seen) <= {len(v) for v in variants}
    leftovers = [p.name for p in path.parent.iterdir() if p.name != "nodes.json"]
    assert leftovers == []


def test_temporary_files_do_not_match_the_file_sd_glob(
    plan: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # file_sd reads targets/*.json; a temp file named *.json could be read half-written.
    names: list[str] = []
    real = tempfile.mkstemp

    def spy(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real(*args, **kwargs)
        names.append(str(name))
        return fd, str(name)

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    write_targets(tmp_path, targets_from_plan(plan))
    assert names and not any(Path(n).match("*.json") for n in names)
