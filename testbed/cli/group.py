"""`testbed group PAN PATH VALUE`: one Group OSCORE command to every member on a PAN.

    testbed group floor1 light '{"on": false}' [--domain D] [--backend NAME] [--run R] [--json]

VALUE is JSON (sent as CBOR). The backend signs it under its domain's group key and the border
router of PAN puts it on the PAN once, to ff05::fd; members holding the current generation act
on it and answer nothing. On a radio PAN the medium's counters during the command are shown.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.markup import escape

from testbed import bringup
from testbed.cli import context
from testbed.cli.output import console
from testbed.errors import GroupCommandError
from testbed.links.group import send_group_command

RunOption = Annotated[
    str | None, typer.Option("--run", "-r", help="run name (default: the only run that is up)")
]


def group(
    pan: Annotated[str, typer.Argument(help="PAN name (as in the topology)")],
    path: Annotated[str, typer.Argument(help="resource path, e.g. light")],
    value: Annotated[str, typer.Argument(help="JSON value, e.g. '{\"on\": false}'")],
    domain: Annotated[
        str | None, typer.Option(help="operator domain (default: the only one)")
    ] = None,
    backend_name: Annotated[
        str | None, typer.Option("--backend", help="backend node (default: the only one)")
    ] = None,
    run: RunOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Send one group command (Group OSCORE, multicast on the PAN) to every member."""
    try:
        parsed: Any = json.loads(value)
    except ValueError as exc:
        raise GroupCommandError(f"VALUE is not JSON: {exc}", "e.g. '{\"on\": false}'") from None
    engine = context.engine()
    outcome = send_group_command(
        engine,
        bringup.resolve_run(engine, run),
        pan,
        path,
        parsed,
        domain=domain,
        backend_name=backend_name,
    )
    if as_json:
        console.print_json(json.dumps(asdict(outcome)))
        return
    sent = outcome.sent
    console.print(
        f"[bold]{escape(outcome.backend)}[/] -> {escape(outcome.router)} "
        f"({escape('[' + sent['relay'] + ']')}) -> {escape(sent['group'])} on pan-{escape(pan)}: "
        f"PUT /{escape(path)}, domain {escape(sent['domain'])}, group key generation "
        f"{sent['generation']}, {sent['bytes']} bytes"
    )
    if outcome.medium:
        m = outcome.medium
        console.print(
            f"radio medium meanwhile: {m['transmissions']:g} transmissions, "
            f"{m['frames_received']:g} frames received, {m['acks']:g} ACKs, "
            f"{m['busy_ms']:.2f} ms airtime (all traffic on the PAN in that moment)"
        )


def register(app: typer.Typer) -> None:
    app.command("group")(group)
