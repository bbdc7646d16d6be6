"""How the observe side talks to the user without importing the CLI.

Library code calls ``announce(message)`` (rich markup allowed); it goes nowhere until a front end
sets a sink: the CLI sets its console when ``testbed.cli.observe`` is imported, so ``testbed up``
prints the Prometheus URL or why there is none. Tests and scripts may set their own.
"""

from __future__ import annotations

from collections.abc import Callable

Sink = Callable[[str], None]
_sink: list[Sink] = []


def set_sink(sink: Sink | None) -> None:
    _sink.clear()
    if sink is not None:
        _sink.append(sink)


def announce(message: str) -> None:
    for sink in _sink:
        sink(message)
