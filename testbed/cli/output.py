"""Terminal output shared by the verbs: errors with hints, tables, progress."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from testbed.contracts.radio import pan_address
from testbed.engines.base import NodeStatus
from testbed.errors import NodeFailed, TestbedError
from testbed.node.lifecycle import LifecycleState
from testbed.usecases.placement import PLANNED_PAN

PIPED_WIDTH = 200


def _console(stderr: bool = False) -> Console:
    """A console; piped or logged (no terminal, no $COLUMNS) it neither wraps nor truncates at
    rich's default of 80 columns, so a URL stays one line and a status table keeps whole names
    and addresses for grep and for CI logs. No emoji codes: an IPv6 address such as
    fd00:1:2:100::10 holds ``:100:``, which rich would print as an emoji."""
    made = Console(stderr=stderr, emoji=False)
    if not made.is_terminal and "COLUMNS" not in os.environ:
        made.soft_wrap = True
        made.width = PIPED_WIDTH
    return made


console = _console()
err_console = _console(stderr=True)


def error(exc: TestbedError) -> None:
    err_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
    if isinstance(exc, NodeFailed) and exc.log_tail:
        err_console.print(f"[dim]--- last lines of {escape(exc.node)}'s log ---[/]")
        err_console.print(exc.log_tail.rstrip(), markup=False, highlight=False)
        err_console.print("[dim]---[/]")
    if exc.hint:
        err_console.print(f"[yellow]hint:[/] {escape(exc.hint)}", highlight=False)


def status_json(nodes: Iterable[NodeStatus]) -> str:
    """Each node as the engine reports it (``addresses``: its attachments to Docker networks),
    plus where experiment traffic reaches it (``data_addresses``) and, on radio PANs, the
    address on the network that only carries the medium's ZEP (``carrier_addresses``)."""
    return json.dumps(
        [
            {
                **asdict(n),
                "data_addresses": data_addresses(n),
                "carrier_addresses": carrier_addresses(n),
            }
            for n in nodes
        ],
        indent=2,
        sort_keys=True,
    )


def _pan_address(node: NodeStatus, network: str) -> str | None:
    try:
        return pan_address(node.attributes, network)
    except ValueError:  # a garbled label: show what Docker says
        return None


def data_addresses(node: NodeStatus) -> dict[str, str]:
    """Network -> the IPv6 address experiment traffic reaches the node at (mgmt left out).

    On a PAN with ``medium: radio`` the Docker network only carries ZEP to the medium; the
    node's PAN address lives on its TUN device, and that is the one to reach it at.
    """
    return {
        net: _pan_address(node, net) or address
        for net, address in sorted(node.addresses.items())
        if net != "mgmt"
    }


def carrier_addresses(node: NodeStatus) -> dict[str, str]:
    """Radio PAN network -> the node's address on its ZEP carrier (the Docker network)."""
    return {
        net: address
        for net, address in sorted(node.addresses.items())
        if _pan_address(node, net) is not None
    }


def status_table(nodes: list[NodeStatus]) -> None:
    runs = sorted({n.run for n in nodes})
    for run in runs:
        members = [n for n in nodes if n.run == run]
        table = Table(title=f"run {run}", title_justify="left")
        columns = ("node", "role", "class", "vendor", "domain", "pan", "state", "lifecycle")
        for column in (*columns, "data address"):
            table.add_column(column)
        for n in members:
            a = n.attributes
            data = [f"{net}: {addr}" for net, addr in data_addresses(n).items()]
            data += [f"{net} carrier: {addr}" for net, addr in carrier_addresses(n).items()]
            state = n.state if n.state == "running" else f"[red]{escape(n.state)}[/]"
            plain = (
                n.node,
                n.role,
                a.get("url") or a.get("device-class", n.kind),
                a.get("vendor", ""),
                _domain(n),
                _pan(a),
            )
            # Names and URLs as they are: "[fd00::1]" in a URL is no style tag.
            table.add_row(*map(escape, plain), state, _lifecycle(n), escape("\n".join(data)))
        console.print(table)


def _pan(attributes: dict[str, str]) -> str:
    """A thing's PAN (``planned`` beside it when `testbed move` took it elsewhere), or the
    PANs a router serves."""
    pan = attributes.get("pan", attributes.get("pans", ""))
    planned = attributes.get(PLANNED_PAN)
    return f"{pan} (planned {planned})" if planned and planned != pan else pan


def _domain(node: NodeStatus) -> str:
    """The owner a thing reports, and the planned one (its label) if a transfer changed it."""
    planned = node.attributes.get("domain", "")
    if node.domain and node.domain != planned:
        return f"{node.domain} (planned {planned})" if planned else node.domain
    return planned


def _lifecycle(node: NodeStatus) -> str:
    if node.role != "thing":
        return ""
    if node.lifecycle == LifecycleState.OPERATIONAL:
        return f"[green]{LifecycleState.OPERATIONAL}[/]"
    if node.lifecycle == LifecycleState.FAILED:
        return f"[red]{LifecycleState.FAILED}[/] {escape(node.reason)}"
    return escape(node.lifecycle) or "[dim]?[/]"
