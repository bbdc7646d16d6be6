"""`testbed move THING --pan PAN`: carry a running thing to another PAN of the building.

    testbed move lamp-101 --pan floor2 [--run R] [--keep-contexts] [--wait-read S] [--json]

The use case (testbed.usecases.mobility) re-attaches its radio to the new PAN's medium, gives it
the new PAN's address, and lets it re-register with its trust center (one handshake of its
profile, new OSCORE contexts); by default it then waits until every backend has read it at the
new address. ``--keep-contexts`` moves it without re-registering: contexts kept, nobody told.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from testbed import usecases
from testbed.cli import context
from testbed.cli.output import console

RunOption = Annotated[
    str | None, typer.Option("--run", "-r", help="run name (default: the only run that is up)")
]


def move(
    thing: Annotated[str, typer.Argument(help="the thing to move")],
    pan: Annotated[str, typer.Option("--pan", help="the PAN to move it to (a radio PAN)")],
    run: RunOption = None,
    keep_contexts: Annotated[
        bool,
        typer.Option(
            "--keep-contexts",
            help="do not re-register with the trust center (contexts kept, backends not told)",
        ),
    ] = False,
    wait_read: Annotated[
        float,
        typer.Option(
            help="seconds to wait until every backend read it at its new address (0: no wait)"
        ),
    ] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Move a running thing to another PAN (another border router, or another PAN of its own)."""
    result = usecases.move(
        context.engine(),
        thing,
        pan,
        run,
        reregister=not keep_contexts,
        wait_read=wait_read or None,
    )
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        return
    console.print(
        f"[bold]{escape(thing)}[/] moved from {escape(result.old_pan)} "
        f"({escape(result.old_router)}) to {escape(result.pan)} ({escape(result.router)}): "
        f"{escape(result.old_address)} -> "
        f"{escape(result.address)} (short 0x{result.short:04x})"
    )
    if result.reregistered:
        cost = result.bootstrap or {}
        console.print(
            f"re-registered with its trust center ({escape(result.profile)}): "
            f"{result.handshakes} handshake(s), {cost.get('bytes', '?')} B in "
            f"{cost.get('datagrams', '?')} datagrams; now {escape(result.lifecycle)}"
        )
    else:
        console.print("contexts kept, trust center and backends not told (--keep-contexts)")
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items())
    console.print(f"timings from the start of the move: {timings}")


def register(app: typer.Typer) -> None:
    app.command("move")(move)
