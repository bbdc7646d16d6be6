"""Fixtures of the lifecycle tests: the testbed.iot collection importable, fake nodes."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.unit.phases.fake_node import FakeNode, FakeThing, FakeTrustCenter, serving

ROOT = Path(__file__).resolve().parents[3]
COLLECTIONS = ROOT / "playbooks" / "collections"


def _collection_module(name: str) -> ModuleType:
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    return importlib.import_module(f"ansible_collections.testbed.iot.plugins.{name}")


@pytest.fixture(scope="session")
def thing_module() -> ModuleType:
    return _collection_module("modules.thing")


@pytest.fixture(scope="session")
def tc_module() -> ModuleType:
    return _collection_module("modules.trust_center")


@pytest.fixture(scope="session")
def control() -> ModuleType:
    return _collection_module("module_utils.control")


@pytest.fixture
def thing_node() -> Iterator[FakeNode]:
    with serving(FakeThing()) as node:
        yield node


@pytest.fixture
def tc_node() -> Iterator[FakeNode]:
    with serving(FakeTrustCenter()) as node:
        yield node
