"""Container engines: the Engine interface, its implementations and node images.

An engine is chosen once by name (``get``; the CLI's ``--engine`` or ``$TESTBED_ENGINE``, default
``docker``; ``--backend``/``$TESTBED_BACKEND`` are hidden aliases) and passed to every use case;
nothing else constructs one. ("Backend" names only the building's backend service.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from testbed.errors import InputError

if TYPE_CHECKING:
    from testbed.engines.base import Engine

DEFAULT = "docker"
# name -> "module:class"; imported only when chosen (each pulls its engine's SDK)
IMPLEMENTATIONS = {
    "docker": "testbed.engines.docker:DockerEngine",
    "swarm": "testbed.engines.swarm:SwarmEngine",
}


def names() -> list[str]:
    return sorted(IMPLEMENTATIONS)


def get(name: str = DEFAULT) -> Engine:
    """The engine of that name, connected (DaemonUnavailable if it answers not)."""
    try:
        target = IMPLEMENTATIONS[name]
    except KeyError:
        raise InputError(
            f"unknown engine {name!r}", f"choose one of: {', '.join(names())}"
        ) from None
    module, _, cls = target.partition(":")
    engine: Engine = getattr(importlib.import_module(module), cls)()
    return engine
