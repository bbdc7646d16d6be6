"""The bring-up hook never takes a run down: failures are announced, the run goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.errors import ImageError
from testbed.observe import announce, hook
from testbed.plan import Plan


class FakeServices:
    """Run services that are never reached: the tests replace ``hook._start``."""


class FakeEngine:
    def services(self) -> FakeServices:
        return FakeServices()


class NoServices:
    """A backend whose engine has no run services."""

    def services(self) -> None:
        return None


@pytest.fixture
def said() -> Any:
    messages: list[str] = []
    announce.set_sink(messages.append)
    yield messages
    announce.set_sink(None)


def test_an_image_failure_is_announced_not_raised(
    plan: Plan, tmp_path: Path, said: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any) -> Any:
        raise ImageError("no prometheus anywhere", "install Debian's prometheus package")

    monkeypatch.setattr(hook, "_start", fail)
    assert hook.start_for_run(FakeEngine(), plan, tmp_path) is None  # type: ignore[arg-type]
    assert len(said) == 1
    assert "Prometheus not started" in said[0] and "no prometheus anywhere" in said[0]
    assert "install Debian's prometheus package" in said[0]


def test_a_bug_is_announced_not_raised(
    plan: Plan, tmp_path: Path, said: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug(*args: Any) -> Any:
        raise KeyError("oops")

    monkeypatch.setattr(hook, "_start", bug)
    assert hook.start_for_run(FakeEngine(), plan, tmp_path) is None  # type: ignore[arg-type]
    assert "KeyError" in said[0]


def test_off_by_environment(
    plan: Plan, tmp_path: Path, said: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(hook.ENABLE_ENV, "0")
    monkeypatch.setattr(hook, "_start", lambda *a: pytest.fail("must not start"))
    assert hook.start_for_run(FakeEngine(), plan, tmp_path) is None  # type: ignore[arg-type]
    assert said == [f"Prometheus: off ({hook.ENABLE_ENV}=0)"]


def test_backends_without_docker_are_left_alone(
    plan: Plan, tmp_path: Path, said: list[str]
) -> None:
    assert hook.start_for_run(NoServices(), plan, tmp_path) is None  # type: ignore[arg-type]
    assert said == []
