"""The backend of one `testbed` invocation: named once (``--backend``, default docker) and shared
by every verb and helper of that invocation.

It connects on first use, not when a verb starts: a verb checks its own input first (topology,
options), so a bad option is reported as such also when no engine answers, and ``validate``,
``plan`` and ``render --no-mint`` need no engine at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from testbed import backends

if TYPE_CHECKING:
    from testbed.backends.base import Backend


class _ConnectedOnFirstUse:
    """Stands for the chosen backend; connects it when one of its attributes is first used."""

    def __init__(self, name: str) -> None:
        self._chosen = name
        self._connected: Backend | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._connected is None:
            self._connected = backends.get(self._chosen)
        return getattr(self._connected, attribute)


_current = _ConnectedOnFirstUse(backends.DEFAULT)


def choose(name: str) -> None:
    """Name the backend of this invocation (the CLI's callback does, before any verb)."""
    global _current
    if name not in backends.names():
        backends.get(name)  # the error that names the known ones
    _current = _ConnectedOnFirstUse(name)


def backend() -> Backend:
    """The chosen backend (DaemonUnavailable on first use when its engine does not answer)."""
    return cast("Backend", _current)
