"""Impairing a run's links live as use cases: what `testbed link set|reset` and scenario runners
call. Options take the topology's units ("20%", "30ms", "250kbit"); see testbed.links."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from testbed import bringup
from testbed.engines.base import Engine
from testbed.links import options
from testbed.links.control import Links
from testbed.links.options import LinkName


@dataclass(frozen=True)
class LinkChange:
    link: LinkName
    # IP links: one answer per border router interface (router, device, describe,
    # implementation); PAN links: the medium's answer (loss, ...)
    answers: list[dict[str, Any]]


def link_set(
    engine: Engine,
    link: str,
    run: str | None = None,
    *,
    loss: str | None = None,
    delay: str | None = None,
    jitter: str | None = None,
    rate: str | None = None,
    duplicate: str | None = None,
    reorder: str | None = None,
    corrupt: str | None = None,
    gilbert_elliott: str | None = None,
    node: str | None = None,
) -> LinkChange:
    """Replace a link's impairments with exactly the options given (``tc qdisc replace``).
    ``node`` (PAN links only): just the links from and to that thing's station, packed or not;
    its neighbours keep theirs."""
    name = options.parse_link(link)
    params = options.parameters(
        {
            "loss": loss, "delay": delay, "jitter": jitter, "rate": rate,
            "duplicate": duplicate, "reorder": reorder, "corrupt": corrupt,
            "gilbert_elliott": gilbert_elliott,
        }
    )  # fmt: skip
    # Bad values are refused before any run is looked for.
    if name.kind == "pan":
        pan = options.pan_parameters(name, params)
        if node:
            pan["node"] = node
        links = Links(engine, bringup.resolve_run(engine, run))
        return LinkChange(name, [links.set_pan(name, pan)])
    if node:
        raise options.LinkOptionError(
            f"--node: {name.text} is an IP link; only a PAN's radio medium has a link per thing",
            f"impair one thing's radio with `testbed link set pan-<its PAN> --node {node} ...`",
        )
    impairment = options.ip_impairment(params).to_dict()
    links = Links(engine, bringup.resolve_run(engine, run))
    return LinkChange(name, links.set_ip(name, impairment))


def link_reset(engine: Engine, link: str, run: str | None = None) -> LinkChange:
    """Back to the topology's settings for that link."""
    name = options.parse_link(link)
    links = Links(engine, bringup.resolve_run(engine, run))
    if name.kind == "pan":
        return LinkChange(name, [links.reset_pan(name)])
    return LinkChange(name, links.reset_ip(name))
