"""Fixtures that run the real node process; the helpers live in node_harness."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.node.node_harness import NodeProcess, thing_config

NodeFactory = Callable[..., NodeProcess]


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[NodeFactory]:
    started: list[NodeProcess] = []

    def make(config: dict[str, Any], state_dir: Path | None = None) -> NodeProcess:
        node = NodeProcess(tmp_path, config, state_dir)
        started.append(node)
        return node

    yield make
    for node in started:
        node.kill()


@pytest.fixture(scope="module")
def running_thing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One thing node shared by read-mostly tests of a module."""
    node = NodeProcess(tmp_path_factory.mktemp("thing"), thing_config()).start()
    try:
        node.wait_ready()
        yield node
    finally:
        node.kill()


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """logs.setup() reconfigures the root logger, as the node process must; undo it in tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
