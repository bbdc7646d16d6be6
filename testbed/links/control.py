"""Links of a running run, driven through their border routers' control actions.

    IP link (internet, backbone)   every border router shapes its own interface on that
                                   network: shaping-show / shaping-set / shaping-reset
    PAN link (pan-<name>)          the router serving the PAN; ``medium: radio`` PANs have
                                   link-show / link-set / link-reset (frame loss) and capture;
                                   bridge PANs have no frame-level emulation to change

Which router serves which PAN, and whether a PAN is a radio PAN, comes from the routers'
labels (``pans``, ``radio-<pan>`` attributes): no plan file is needed, any shell can do it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from testbed.contracts.node_config import Attr, Role
from testbed.contracts.radio import ATTRIBUTE_PREFIX as RADIO_PREFIX
from testbed.engines.base import Engine, NodeStatus
from testbed.errors import LinkActionError as LinkActionError  # re-exported
from testbed.errors import LinkOptionError, NotRunning
from testbed.links.options import LinkName

PROBE = ["python3", "-m", "testbed.node.probe", "action"]
ACTION_TIMEOUT = 30.0


@dataclass
class LinkRow:
    """One line of ``testbed link show``."""

    link: str
    kind: str  # ip | radio | bridge
    router: str
    implementation: str
    impairment: str
    counts: dict[str, int] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)


def call(engine: Engine, run: str, node: str, action: str, params: dict[str, Any],
         timeout: float = ACTION_TIMEOUT) -> dict[str, Any]:  # fmt: skip
    """One control action on a node; its refusal becomes an error with the node's words."""
    cmd = [*PROBE, action, json.dumps(params), "--timeout", str(timeout)]
    result = engine.exec(run, node, cmd)
    try:
        answer = json.loads(result.output.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        answer = {"error": result.output.decode("utf-8", "replace")[-300:]}
    if result.exit_code != 0 or "result" not in answer:
        raise LinkActionError(
            f"{node} {action}: {answer.get('error', answer)}",
            answer.get("hint") or f"see `testbed logs {node} --run {run}`",
        )
    out: dict[str, Any] = answer["result"]
    return out


class Links:
    def __init__(self, engine: Engine, run: str) -> None:
        self.engine = engine
        self.run = run
        self.routers: list[NodeStatus] = [
            n for n in engine.status(run) if n.role == Role.BORDER_ROUTER and n.state == "running"
        ]
        if not self.routers:
            raise NotRunning(
                f"run {run!r} has no running border router", f"`testbed status --run {run}`"
            )

    def router_of(self, pan: str) -> NodeStatus:
        for router in self.routers:
            pans = [p.strip() for p in router.attributes.get(Attr.PANS, "").split(",")]
            if pan in pans:
                return router
        known = sorted(p for r in self.routers for p in r.attributes.get(Attr.PANS, "").split(","))
        raise LinkOptionError(f"no PAN {pan!r} in run {self.run!r}", f"PANs: {', '.join(known)}")

    @staticmethod
    def radio_config(router: NodeStatus, pan: str) -> dict[str, Any] | None:
        value = router.attributes.get(f"{RADIO_PREFIX}{pan}")
        return json.loads(value) if value else None

    # ------------------------------------------------------------ show

    def show(self) -> list[LinkRow]:
        rows: list[LinkRow] = []
        for router in self.routers:
            shaping = call(self.engine, self.run, router.node, "shaping-show", {})
            for name, link in sorted(shaping["links"].items()):
                rows.append(
                    LinkRow(
                        name, "ip", router.node, link["implementation"], link["describe"],
                        link.get("counts", {}), {"device": link["device"],
                                                 "reason": shaping.get("reason", "")},
                    )
                )  # fmt: skip
            pans = [p for p in router.attributes.get(Attr.PANS, "").split(",") if p]
            radio = (
                call(self.engine, self.run, router.node, "link-show", {})
                if any(self.radio_config(router, p) for p in pans)
                else {}
            )
            for pan in pans:
                rows.append(self._pan_row(router, pan, radio.get(pan)))
        return rows

    def _pan_row(self, router: NodeStatus, pan: str, state: dict[str, Any] | None) -> LinkRow:
        config = self.radio_config(router, pan)
        if config is None or state is None:
            return LinkRow(
                f"pan-{pan}", "bridge", router.node, "docker bridge",
                "none (frame-level impairments need `medium: radio`)",
            )  # fmt: skip
        nodes = state.get("medium", {}).get("nodes", {})
        counts = {
            "transmissions": sum(n.get("transmissions", 0) for n in nodes.values()),
            "retries": sum(n.get("retries", 0) for n in nodes.values()),
            "channel-loss": sum(
                n.get("dropped", {}).get("channel-loss", 0) for n in nodes.values()
            ),
            "retries-exhausted": sum(
                n.get("dropped", {}).get("retries-exhausted", 0) for n in nodes.values()
            ),
        }
        loss = float(state.get("default_link", {}).get("loss", 0.0))
        retries = config.get("max_frame_retries", 3)
        return LinkRow(
            f"pan-{pan}", "radio", router.node, "radio medium (802.15.4 frames)",
            f"frame loss {loss * 100:g}%, MAC retries {retries}", counts,
            {"loss": loss, "planned_loss": config.get("loss", 0.0), "max_frame_retries": retries},
        )  # fmt: skip

    # ------------------------------------------------------------ set / reset

    def set_ip(self, link: LinkName, impairment: dict[str, Any]) -> list[dict[str, Any]]:
        """Every border router's interface on that network (each answer names its router)."""
        params = {"link": link.name, "impairment": impairment}
        return [
            {**call(self.engine, self.run, r.node, "shaping-set", params), "router": r.node}
            for r in self.routers
        ]

    def reset_ip(self, link: LinkName) -> list[dict[str, Any]]:
        params = {"link": link.name}
        return [
            {**call(self.engine, self.run, r.node, "shaping-reset", params), "router": r.node}
            for r in self.routers
        ]

    def _radio_router(self, link: LinkName) -> NodeStatus:
        router = self.router_of(link.name)
        if self.radio_config(router, link.name) is None:
            raise LinkOptionError(
                f"{link.text} is a bridge PAN: it has no frame-level emulation to impair or "
                "capture",
                "frame loss, MAC retries and captures need `medium: radio` for this PAN in the "
                "topology (see topologies/radio.yaml)",
            )
        return router

    def set_pan(self, link: LinkName, params: dict[str, Any]) -> dict[str, Any]:
        return call(self.engine, self.run, self._radio_router(link).node, "link-set", params)

    def reset_pan(self, link: LinkName) -> dict[str, Any]:
        router = self._radio_router(link)
        return call(self.engine, self.run, router.node, "link-reset", {"pan": link.name})

    # ------------------------------------------------------------ capture

    def capture(
        self, link: LinkName, duration: float, node: str | None = None
    ) -> tuple[bytes, dict[str, Any]]:
        """The PAN's air for ``duration`` s; with ``node``, only that station's frames (sent by
        it or addressed to it, and their ACKs)."""
        router = self._radio_router(link)
        params: dict[str, Any] = {"pan": link.name, "duration": duration}
        if node:
            params["node"] = node
        answer = call(
            self.engine, self.run, router.node, "capture", params,
            timeout=duration + ACTION_TIMEOUT,
        )  # fmt: skip
        pcap = base64.b64decode(answer.pop("pcap_b64"))
        return pcap, answer
