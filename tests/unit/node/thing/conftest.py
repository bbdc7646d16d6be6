"""Fixtures of the thing tests: one freshly minted building per test (minting is cheap)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.node.thing.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)
