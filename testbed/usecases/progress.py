"""How a use case reports its progress: stages with counts and a detail line.

The CLI draws them as progress bars; a scenario runner may log them or pass ``None`` (nothing
is reported). Callbacks come from worker threads too: keep them short and thread-safe.
"""

from __future__ import annotations

from typing import Literal, Protocol

Stage = Literal["image", "networks", "nodes", "phases", "commissioned", "stopped"]
"""image: the node image; networks and nodes: deploy or start (nodes counts ready nodes);
phases: install + commission through Ansible; commissioned: things operational or failed;
stopped: nodes stopped."""


class Progress(Protocol):
    def begin(self, stage: Stage, total: int | None) -> None:
        """A stage starts; ``total`` None: its length is not known (yet)."""

    def update(
        self,
        stage: Stage,
        detail: str = "",
        *,
        advance: int = 0,
        completed: int | None = None,
        total: int | None = None,
    ) -> None:
        """Something happened in a stage: ``advance`` steps done, or ``completed`` of ``total``."""

    def end(self, stage: Stage, detail: str = "") -> None:
        """The stage is done."""


class NoProgress:
    """Reports nothing."""

    def begin(self, stage: Stage, total: int | None) -> None:
        return None

    def update(
        self,
        stage: Stage,
        detail: str = "",
        *,
        advance: int = 0,
        completed: int | None = None,
        total: int | None = None,
    ) -> None:
        return None

    def end(self, stage: Stage, detail: str = "") -> None:
        return None
