"""Fixtures of the trust center tests: one freshly minted world per test (minting is cheap)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.node.trust_center.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)
