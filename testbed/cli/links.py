"""`testbed link show|set|reset` and `testbed capture`: links impaired live, PAN air captured.

    testbed link show [--run R] [--json]
    testbed link set LINK [--loss 20%] [--delay 30ms] [--jitter 5ms] [--rate 250kbit]
                          [--duplicate 1%] [--reorder 5%] [--corrupt 0.1%]
                          [--gilbert-elliott p,r[,loss_good[,loss_bad]]] [--node THING] [--run R]
    testbed link reset LINK [--run R]
    testbed capture PAN -o FILE.pcap [--duration S] [--node THING] [--run R]

LINK: ``internet``, ``backbone`` (IP links: the border routers' interfaces there, both
directions, netem semantics) or ``pan-<name>`` (the PAN's radio medium: frame loss; needs
``medium: radio``). ``set`` replaces the link's impairments with exactly the options given, as
``tc qdisc replace`` would; ``reset`` goes back to the topology's settings. Nothing restarts.
``--node`` narrows a PAN's setting to the links from and to one thing's station (packed or not)
and a capture to that station's frames; ``reset`` of the PAN clears per-thing settings too.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from testbed import bringup, usecases
from testbed.cli import context
from testbed.cli.output import console
from testbed.contracts.impairment import LINK_NAMES
from testbed.links import options
from testbed.links.control import Links

if TYPE_CHECKING:
    from testbed.engines.base import Engine

link_app = typer.Typer(
    help="Links of a run: show them, impair them live (netem semantics), reset them.",
    no_args_is_help=True,
)

RunOption = Annotated[
    str | None, typer.Option("--run", "-r", help="run name (default: the only run that is up)")
]
Value = Annotated[str | None, typer.Option()]


def _links(run: str | None) -> Links:
    engine = context.engine()
    return Links(engine, bringup.resolve_run(engine, run))


@link_app.command("show")
def show(
    run: RunOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Every link: IP links with impairments and implementation, PAN links with loss/retries."""
    links = _links(run)
    rows = links.show()
    if as_json:
        print(json.dumps([asdict(r) for r in rows], indent=2, sort_keys=True))
        return
    table = Table(title=f"links of run {links.run}", title_justify="left")
    for column in ("link", "router", "implementation", "impairments", "packets / frames"):
        table.add_column(column)
    for row in rows:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(row.counts.items()) if v)
        where = f"{row.router} ({row.detail['device']})" if "device" in row.detail else row.router
        table.add_row(row.link, where, row.implementation, escape(row.impairment), counts)
    console.print(table)


@link_app.command("set")
def set_(
    link: Annotated[str, typer.Argument(help="internet, backbone or pan-<name>")],
    loss: Annotated[str | None, typer.Option(help="random loss, e.g. 20%")] = None,
    delay: Annotated[str | None, typer.Option(help="e.g. 30ms (each direction)")] = None,
    jitter: Annotated[str | None, typer.Option(help="uniform +-, e.g. 5ms (needs --delay)")] = None,
    rate: Annotated[str | None, typer.Option(help="e.g. 250kbit")] = None,
    duplicate: Annotated[str | None, typer.Option(help="e.g. 1%")] = None,
    reorder: Annotated[str | None, typer.Option(help="e.g. 5% (needs --delay)")] = None,
    corrupt: Annotated[str | None, typer.Option(help="e.g. 0.1% (one payload bit)")] = None,
    gilbert_elliott: Annotated[
        str | None,
        typer.Option("--gilbert-elliott", help="bursty loss p,r[,loss_good[,loss_bad]]"),
    ] = None,
    node: Annotated[
        str | None, typer.Option(help="PAN only: just the links from and to this thing")
    ] = None,
    run: RunOption = None,
) -> None:
    """Impair a link live; the options given replace the link's current impairments."""
    change = usecases.link_set(
        context.engine(), link, run,
        loss=loss, delay=delay, jitter=jitter, rate=rate, duplicate=duplicate, reorder=reorder,
        corrupt=corrupt, gilbert_elliott=gilbert_elliott, node=node,
    )  # fmt: skip
    name = change.link
    if name.kind == "pan":
        (answer,) = change.answers
        scope = f"every radio link of {node}" if node else "every radio link"
        console.print(f"{name.text}: frame loss {answer['loss'] * 100:g}% on {scope}")
        return
    for answer in change.answers:
        console.print(
            f"{name.text} on {answer['router']} {answer['device']}: "
            f"{escape(answer['describe'])} [dim]({answer['implementation']})[/]"
        )


@link_app.command("reset")
def reset(
    link: Annotated[str, typer.Argument(help="internet, backbone or pan-<name>")],
    run: RunOption = None,
) -> None:
    """Back to the topology's settings for that link."""
    change = usecases.link_reset(context.engine(), link, run)
    name = change.link
    if name.kind == "pan":
        (answer,) = change.answers
        console.print(f"{name.text}: back to the topology (frame loss {answer['loss'] * 100:g}%)")
        return
    for answer in change.answers:
        console.print(
            f"{name.text} on {answer['device']}: back to the topology: {answer['describe']}"
        )


def capture(
    pan: Annotated[str, typer.Argument(help="the PAN: pan-<name> or <name>")],
    output: Annotated[Path, typer.Option("--output", "-o", help="pcap file to write")],
    duration: Annotated[float, typer.Option(help="seconds to record")] = 10.0,
    node: Annotated[
        str | None, typer.Option(help="only this thing's frames (sent by it or to it, ACKs)")
    ] = None,
    run: RunOption = None,
) -> None:
    """Record a radio PAN's air traffic (ZEP/802.15.4 frames from the medium) into a pcap."""
    name = options.parse_link(
        pan if pan.startswith(options.PAN_PREFIX) or pan in LINK_NAMES else f"pan-{pan}"
    )
    if name.kind != "pan":
        raise options.LinkOptionError(
            f"{pan} is an IP link: capture records a PAN's radio medium",
            "on IP links use tcpdump inside the router: `testbed exec ROUTER -- tcpdump ...`",
        )
    if not 0 < duration <= 300:
        raise options.LinkOptionError("--duration must lie in (0, 300] seconds", "e.g. 30")
    console.print(f"recording {name.text} for {duration:g} s ...")
    pcap, info = _links(run).capture(name, duration, node)
    output.write_bytes(pcap)
    note = " (cut at the frame limit)" if info.get("truncated") else ""
    whose = f" of {node}" if node else ""
    console.print(f"{output}: {info['frames']} frames{whose}{note}")
    # IPHC compresses against the PAN prefix (context 0): Wireshark needs it for addresses.
    console.print(
        f"  tshark -r {output} -o 6lowpan.context0:{info['context0']}",
        soft_wrap=True,
        highlight=False,
    )


def print_implementations(engine: Engine, run: str) -> None:
    """For `testbed up`: which implementation shapes each IP link (from the routers' state)."""
    for node in engine.status(run):
        if node.role != "border_router":
            continue
        state = engine.node_state(run, node.node) or {}
        shaping = state.get("links")
        if not shaping:
            continue
        for name, link in sorted(shaping["links"].items()):
            console.print(
                f"  link {name}: {link['implementation']} on {node.node} {link['device']} "
                f"({escape(link['describe'])})"
            )
        console.print(f"  [dim]{escape(shaping.get('reason', ''))}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(link_app, name="link")
    app.command("capture")(capture)
