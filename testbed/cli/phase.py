"""`testbed phase` and `testbed inventory`: lifecycle phases through Ansible.

    testbed phase PHASE [--run R] [--limit PATTERN] [-e k=v ...] [--forks N] [--check] [--resume]
    testbed inventory [--run R] [--graph]

Exit codes (besides the shared ones of testbed.cli.app): 11 the phase could not run at all,
12 it ran and some hosts failed or were unreachable (each is listed with the reason).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from testbed import bringup, usecases
from testbed.cli import context
from testbed.cli.output import console
from testbed.errors import TestbedError
from testbed.phases import inventory as inv
from testbed.phases.runner import DEFAULT_FORKS, PHASES, HostOutcome, PhaseEvent, PhaseResult

RunOption = Annotated[
    str | None, typer.Option("--run", "-r", help="run name (default: the only run that is up)")
]
STYLE = {
    "ok": "green",
    "changed": "yellow",
    "failed": "bold red",
    "unreachable": "bold red",
    "skipped": "dim",
}


def parse_extravars(items: list[str]) -> dict[str, Any]:
    """-e k=v (a string, as ansible-playbook takes it) or -e '{"k": ...}' (JSON)."""
    out: dict[str, Any] = {}
    for item in items:
        text = item.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise TestbedError(f"-e {item!r} is not a JSON object: {exc}", "-e k=v") from exc
            if not isinstance(value, dict):
                raise TestbedError(f"-e {item!r} is not a JSON object", "-e k=v")
            out.update(value)
            continue
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise TestbedError(f"-e {item!r} is not KEY=VALUE", "e.g. -e firmware_version=2.0.0")
        out[key.strip()] = value
    return out


class _HostRow:
    def __init__(self) -> None:
        self.task = ""
        self.counts = {"ok": 0, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 0}
        self.last = ""
        self.message = ""


class PhaseProgress:
    """Progress per host: a live table on a terminal, one line per notable result otherwise."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.rows: dict[str, _HostRow] = {}
        self.task = ""
        self.tasks = 0
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.live: Live | None = None

    def __enter__(self) -> PhaseProgress:
        if console.is_terminal:
            self.live = Live(self.render(), console=console, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def __call__(self, event: PhaseEvent) -> None:
        with self.lock:
            if event.kind == "task":
                self.task = event.task
                self.tasks += 1
            else:
                row = self.rows.setdefault(event.host, _HostRow())
                row.counts[event.kind] = row.counts.get(event.kind, 0) + 1
                row.task = event.task
                row.last = event.kind
                if event.message:
                    row.message = event.message
                if self.live is None and event.kind in ("changed", "failed", "unreachable"):
                    took = f" ({event.duration_s:.1f} s)" if event.duration_s is not None else ""
                    detail = f": {event.message}" if event.message else ""
                    console.print(
                        f"  [{STYLE[event.kind]}]{event.kind}[/] {event.host} "
                        f"- {event.task}{took}{detail}",
                        highlight=False,
                    )
            if self.live is not None:
                self.live.update(self.render())

    def render(self) -> Table:
        elapsed = time.monotonic() - self.started
        table = Table(
            title=f"phase {self.phase}: task {self.tasks} {self.task} ({elapsed:.0f} s)",
            title_justify="left",
        )
        for column in ("host", "ok", "changed", "failed", "last task"):
            table.add_column(column)
        for host, row in sorted(self.rows.items()):
            bad = row.counts["failed"] + row.counts["unreachable"]
            table.add_row(
                host,
                str(row.counts["ok"]),
                str(row.counts["changed"]),
                f"[red]{bad}[/]" if bad else "0",
                f"[{STYLE.get(row.last, '')}]{row.last}[/] {escape(row.task)}",
            )
        return table


def summary(result: PhaseResult) -> Table:
    took = result.end - result.start
    table = Table(
        title=f"phase {result.phase} on run {result.run}: {len(result.hosts)} hosts, "
        f"{result.tasks} tasks, {took:.1f} s" + (" (check mode)" if result.check else ""),
        title_justify="left",
    )
    for column in ("host", "outcome", "ok", "changed", "failed", "reason"):
        table.add_column(column, overflow="fold")
    for host, outcome in sorted(result.hosts.items()):
        table.add_row(
            host,
            f"[{STYLE[outcome.outcome]}]{outcome.outcome}[/]",
            str(outcome.ok),
            str(outcome.changed),
            str(outcome.failed + outcome.unreachable),
            escape(_reason(outcome)),
        )
    return table


def _reason(outcome: HostOutcome) -> str:
    """Why a host failed; for a host that succeeded, the steps it skipped and why."""
    if not outcome.succeeded:
        return outcome.reason
    return "; ".join(f"skipped {step}" for step in outcome.skipped_steps)


def phase(
    name: Annotated[str, typer.Argument(help="phase: " + ", ".join(PHASES), metavar="PHASE")],
    run: RunOption = None,
    limit: Annotated[
        str | None,
        typer.Option("--limit", "-l", help="hosts or groups, e.g. thermostat-03, vendor_acme"),
    ] = None,
    extra: Annotated[
        list[str] | None, typer.Option("--extra-vars", "-e", help="KEY=VALUE or a JSON object")
    ] = None,
    forks: Annotated[int, typer.Option(help="hosts worked on in parallel", min=1)] = DEFAULT_FORKS,
    check: Annotated[bool, typer.Option(help="predict only (Ansible check and diff mode)")] = False,
    resume: Annotated[
        bool,
        typer.Option(help="continue the last failed run of this phase (skip what it finished)"),
    ] = False,
) -> None:
    """Run a lifecycle phase (an Ansible playbook) on the things of a running testbed."""
    extravars = parse_extravars(extra or [])
    engine = context.engine()
    run_name = bringup.resolve_run(engine, run)

    def said(message: str) -> None:
        console.print(f"  {escape(message)}")

    with PhaseProgress(name) as progress:
        done = usecases.phase(
            engine,
            name,
            run_name,
            limit=limit,
            extravars=extravars,
            forks=forks,
            check=check,
            resume=resume,
            on_event=progress,
            on_collections=said,
        )
    result = done.result
    console.print(summary(result))
    console.print(f"  recorded in {result.run_dir}/phases.jsonl", highlight=False)
    if done.grafana is not None:
        console.print(done.grafana)
    done.raise_for_failure()


def inventory(
    run: RunOption = None,
    graph: Annotated[bool, typer.Option("--graph", help="groups and hosts as a tree")] = False,
    live: Annotated[
        bool, typer.Option(help="ask running things for their owner and lifecycle state")
    ] = True,
) -> None:
    """Print the Ansible inventory of a running testbed (derived from its Docker labels)."""
    engine = context.engine()
    built = inv.inventory_for_run(engine, bringup.resolve_run(engine, run), live=live)
    print(built.graph() if graph else built.to_yaml(), end="")


def register(app: typer.Typer) -> None:
    app.command("phase")(phase)
    app.command("inventory")(inventory)
