"""What every role provides to the node process.

A role is constructed from the node's config (and refuses bad role facts right there, so that a
misconfigured node exits with code 2 before it binds anything), gets to register its metrics, is
started once and stopped once. Security functions (EDHOC bootstrap, enrollment, backend polling)
live inside roles as background tasks started with :meth:`Role.spawn`, and as control actions
returned by :meth:`Role.actions`.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry

from testbed.contracts.node_config import CONFIG_DIR, NodeConfig
from testbed.node.errors import ConfigError
from testbed.node.logs import EventLog

# A control action: JSON object in, JSON object out. Raise ActionError for bad parameters.
Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class RoleContext:
    config: NodeConfig
    state_dir: Path  # the node's volume; survives container restarts
    log: EventLog
    # Called when a background task dies unexpectedly: the node then stops with exit code 1,
    # because a half-working node produces misleading experiment results.
    fatal: Callable[[BaseException], None]
    # Where the node's credentials are: the directory of its node.json (/etc/testbed in a
    # container; a temp dir in tests that run the node process on the host).
    material_root: Path = CONFIG_DIR


class Role(ABC):
    name: ClassVar[str]
    # Role facts (config.attributes) without which the role makes no sense.
    required_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: RoleContext) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.log = ctx.log
        self._tasks: set[asyncio.Task[None]] = set()
        missing = [a for a in self.required_attributes if not self.config.attributes.get(a)]
        if missing:
            raise ConfigError(
                f"role {self.name} on node {self.config.node} lacks attribute(s): "
                + ", ".join(missing),
                "the planner must write them into node.json 'attributes'",
            )

    def attribute(self, name: str) -> str | None:
        return self.config.attributes.get(name) or None

    def number_attribute(self, name: str, default: float, *, positive: bool = False) -> float:
        """A numeric attribute of node.json (``default`` when absent); ConfigError when it is
        not a number, negative, or (``positive``) zero."""
        raw = self.attribute(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"attribute {name}={raw!r} is not a number") from None
        if value < 0 or (positive and value == 0):
            raise ConfigError(
                f"attribute {name}={raw!r} must {'be positive' if positive else 'not be negative'}"
            )
        return value

    @abstractmethod
    def facts(self) -> dict[str, Any]:
        """Static description of this node in its role (vendor/model, served PANs, kind...)."""

    def state(self) -> dict[str, Any]:
        """What /state shows under "state": the facts plus whatever the role tracks."""
        return self.facts()

    # Optional hooks below are deliberately empty, not abstract: most roles need few of them.
    def register_metrics(self, registry: CollectorRegistry) -> None:  # noqa: B027
        """Create the role's metrics in the node's registry (called once, before start)."""

    def actions(self) -> Mapping[str, Action]:
        """Control actions by name (POST /actions/<name>)."""
        return {}

    async def start(self) -> None:  # noqa: B027
        """Bring the role up; return once it is ready to serve (the node then reports ready)."""

    async def stop(self) -> None:
        """Stop background work. Must finish quickly: the whole node has 2 s after SIGTERM."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run long-lived role work; an unexpected exception in it is fatal for the node."""
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.log.error("role.task_failed", task=task.get_name(), error=repr(exc))
            self.ctx.fatal(exc)
