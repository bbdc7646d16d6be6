"""Container backends: the Backend interface, its implementations and node images.

A backend is chosen once by name (``get``; the CLI's ``--backend``, default ``docker``) and
passed to every use case; nothing else constructs one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from testbed.errors import InputError

if TYPE_CHECKING:
    from testbed.backends.base import Backend

DEFAULT = "docker"
# name -> "module:class"; imported only when chosen (each pulls its engine's SDK)
IMPLEMENTATIONS = {
    "docker": "testbed.backends.docker:DockerBackend",
    "swarm": "testbed.backends.swarm:SwarmBackend",
}


def names() -> list[str]:
    return sorted(IMPLEMENTATIONS)


def get(name: str = DEFAULT) -> Backend:
    """The backend of that name, connected to its engine (DaemonUnavailable if it answers not)."""
    try:
        target = IMPLEMENTATIONS[name]
    except KeyError:
        raise InputError(
            f"unknown backend {name!r}", f"choose one of: {', '.join(names())}"
        ) from None
    module, _, cls = target.partition(":")
    backend: Backend = getattr(importlib.import_module(module), cls)()
    return backend
