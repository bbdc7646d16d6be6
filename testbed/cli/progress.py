"""Use-case progress drawn as rich progress bars (testbed.usecases.progress.Progress)."""

from __future__ import annotations

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from testbed.cli.output import console
from testbed.usecases.progress import Stage

TITLES: dict[Stage, str] = {
    "image": "node image",
    "networks": "networks",
    "nodes": "nodes ready",
    "phases": "install + commission",
    "commissioned": "commissioned",
    "stopped": "stopped",
}
# Image messages worth a line of their own: where the base image came from.
NOTABLE_IMAGE = ("no registry", "built offline", "using")


def bars() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


class BarProgress:
    """One bar per stage, in the order the stages begin."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[Stage, TaskID] = {}

    def begin(self, stage: Stage, total: int | None) -> None:
        self.tasks[stage] = self.progress.add_task(TITLES[stage], total=total, detail="")

    def update(
        self,
        stage: Stage,
        detail: str = "",
        *,
        advance: int = 0,
        completed: int | None = None,
        total: int | None = None,
    ) -> None:
        task = self.tasks[stage]
        shown = escape(detail[:60])
        if total:
            self.progress.update(task, total=total, completed=completed or 0, detail=shown)
        elif advance and detail:
            self.progress.update(task, advance=advance, detail=shown)
        elif advance:
            self.progress.update(task, advance=advance)
        elif detail:
            self.progress.update(task, detail=shown)
        if stage == "image" and detail.startswith(NOTABLE_IMAGE):
            self.progress.console.print(f"  {escape(detail)}")

    def end(self, stage: Stage, detail: str = "") -> None:
        task = self.tasks[stage]
        if stage in ("image", "phases"):  # bars of unknown length: show them full
            total = self.progress.tasks[task].total or 1
            self.progress.update(task, total=total, completed=total)
        if detail and stage == "phases":
            self.progress.update(task, detail=escape(detail))
