"""`testbed group`: one group command to every member of a domain on a PAN, and what it cost.

The backend signs the command under its domain's group key (testbed.node.backend.group) and
sends it once to the group relay of the border router that serves the PAN, at the router's
address on that PAN (testbed.node.coap.group_relay); the router puts it on the PAN once, to
ff05::fd. Everything is found through labels: the router by its ``pans`` attribute, its PAN
address from its radio attribute (or its address on the PAN's network for a bridge PAN), the
backend by its ``kind``.

On a radio PAN the medium's counters are read before and after (``link-show``), so the answer
carries the frames, retries and airtime the PAN carried meanwhile: the command's own cost plus
whatever else ran in that moment (the backend's periodic reads, for example).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from testbed.contracts.radio import pan_address
from testbed.engines.base import Engine, NodeStatus
from testbed.errors import GroupCommandError
from testbed.links.control import LinkActionError, Links, call

MEDIUM_TIMEOUT = 5.0


@dataclass
class GroupOutcome:
    pan: str
    router: str
    backend: str
    sent: dict[str, Any]
    medium: dict[str, float] = field(default_factory=dict)  # counter deltas on a radio PAN


def backend_node(engine: Engine, run: str, name: str | None) -> NodeStatus:
    hosts = [
        n
        for n in engine.status(run)
        if n.role == "internet_host" and "backend" in (n.kind, n.attributes.get("kind"))
    ]
    if name is not None:
        hosts = [n for n in hosts if n.node == name]
    if len(hosts) != 1:
        names = ", ".join(n.node for n in hosts) or "none"
        raise GroupCommandError(
            f"need exactly one backend in run {run!r} (found: {names})",
            "name it with --backend NAME",
        )
    return hosts[0]


def relay_address(router: NodeStatus, pan: str) -> str:
    network = f"pan-{pan}"
    address = pan_address(router.attributes, network) or router.addresses.get(network)
    if not address:
        raise GroupCommandError(
            f"border router {router.node} has no address on {network}",
            f"`testbed status --run {router.run}` shows its addresses",
        )
    return address


def medium_counters(links: Links, router: NodeStatus, pan: str) -> dict[str, float] | None:
    """The PAN's medium counters; None on a bridge PAN or when the router is busy (its control
    endpoint runs one action at a time: a running capture holds it)."""
    if links.radio_config(router, pan) is None:
        return None
    try:
        shown = call(links.engine, links.run, router.node, "link-show", {}, MEDIUM_TIMEOUT)
    except LinkActionError:
        return None
    state = shown.get(pan) or {}
    medium = state.get("medium", {})
    nodes = medium.get("nodes", {}).values()
    return {
        "transmissions": float(medium.get("channel", {}).get("transmissions", 0)),
        "busy_ms": 1e3 * float(medium.get("channel", {}).get("busy_s", 0.0)),
        "frames_received": float(sum(n.get("frames_received", 0) for n in nodes)),
        "acks": float(sum(n.get("acks_sent", 0) for n in nodes)),
    }


def send_group_command(
    engine: Engine,
    run: str,
    pan: str,
    path: str,
    value: Any,
    *,
    domain: str | None = None,
    backend_name: str | None = None,
    settle_s: float = 1.0,
) -> GroupOutcome:
    links = Links(engine, run)
    router = links.router_of(pan)
    host = backend_node(engine, run, backend_name)
    params: dict[str, Any] = {"relay": relay_address(router, pan), "path": path, "value": value}
    if domain is not None:
        params["domain"] = domain
    before = medium_counters(links, router, pan)
    sent = call(engine, run, host.node, "group", params)
    outcome = GroupOutcome(pan, router.node, host.node, sent)
    if before is not None:
        time.sleep(settle_s)  # the frames take a few ms on the air; the hub needs a moment
        after = medium_counters(links, router, pan)
        if after is not None:
            outcome.medium = {k: after[k] - before[k] for k in before}
    return outcome
