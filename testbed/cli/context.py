"""The container engine of one `testbed` invocation: named once (``--engine`` or
``$TESTBED_ENGINE``, default docker) and shared by every verb and helper of that invocation.
``--backend`` and ``$TESTBED_BACKEND``, the earlier names, are hidden aliases.

It connects on first use, not when a verb starts: a verb checks its own input first (topology,
options), so a bad option is reported as such also when no engine answers, and ``validate``,
``plan`` and ``render --no-mint`` need no engine at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from testbed import engines
from testbed.errors import InputError

if TYPE_CHECKING:
    from testbed.engines.base import Engine


class _ConnectedOnFirstUse:
    """Stands for the chosen engine; connects it when one of its attributes is first used."""

    def __init__(self, name: str) -> None:
        self._chosen = name
        self._connected: Engine | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._connected is None:
            self._connected = engines.get(self._chosen)
        return getattr(self._connected, attribute)


_current = _ConnectedOnFirstUse(engines.DEFAULT)


def engine_name(engine: str | None, legacy: str | None) -> str:
    """The engine named by ``--engine``/``$TESTBED_ENGINE`` or by the alias ``--backend``/
    ``$TESTBED_BACKEND``; both naming different engines is an error, neither the default."""
    if engine and legacy and engine != legacy:
        raise InputError(
            f"--engine {engine} and --backend {legacy} (or $TESTBED_ENGINE and $TESTBED_BACKEND) "
            "name different engines",
            "give one: --backend is the old name of --engine",
        )
    return engine or legacy or engines.DEFAULT


def choose(name: str) -> None:
    """Name the engine of this invocation (the CLI's callback does, before any verb)."""
    global _current
    if name not in engines.names():
        engines.get(name)  # the error that names the known ones
    _current = _ConnectedOnFirstUse(name)


def engine() -> Engine:
    """The chosen engine (DaemonUnavailable on first use when its engine does not answer)."""
    return cast("Engine", _current)
