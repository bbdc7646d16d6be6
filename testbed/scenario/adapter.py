"""The one door from scenarios to the testbed's use cases: the same functions the CLI verbs call
(bring-up, phases, links, captures, metrics), never copies of them.

Everything a step does to a run goes through an :class:`Testbed` instance, so a different
use-case layer (or a fake for unit tests of the runner) is a change of this module only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed import rundir, usecases
from testbed.errors import StepFailed

if TYPE_CHECKING:
    from testbed.engines.base import Engine
    from testbed.observe.api import PrometheusAPI
    from testbed.phases.runner import PhaseResult


@dataclass
class UpOutcome:
    run_dir: Path
    things: dict[str, tuple[str, str]] = field(default_factory=dict)  # name: (state, reason)


class Testbed:
    """The use cases of one run, as the CLI calls them."""

    def __init__(self, run: str, engine: Engine | None = None) -> None:
        if engine is None:
            from testbed import engines

            engine = engines.get("docker")
        self.engine = engine
        self.run = run
        self._api: PrometheusAPI | None = None

    # ------------------------------------------------------------------ bring-up and teardown

    def up(self, topology: Path, *, commission: bool, timeout: float) -> UpOutcome:
        options = usecases.UpOptions(commission=commission, commission_timeout=timeout)
        result = usecases.up(self.engine, topology, self.run, options)
        return UpOutcome(run_dir=result.run_dir, things=dict(result.outcomes))

    def down(self, *, keep_files: bool = False) -> None:
        usecases.down(self.engine, self.run, keep_files=keep_files)

    def is_up(self) -> bool:
        return bool(self.engine.runs().get(self.run))

    def run_dir(self) -> Path:
        return rundir.run_dir_for(self.run)

    # ------------------------------------------------------------------ phases

    def phase(self, name: str, limit: str | None, extravars: dict[str, Any]) -> PhaseResult:
        return usecases.phase(self.engine, name, self.run, limit=limit, extravars=extravars).result

    # ------------------------------------------------------------------ links and captures

    def link_set(self, link: str, given: dict[str, str | None]) -> dict[str, Any]:
        change = usecases.link_set(self.engine, link, self.run, **given)
        return _link_answer(change)

    def link_reset(self, link: str) -> dict[str, Any]:
        return _link_answer(usecases.link_reset(self.engine, link, self.run))

    def capture(
        self, pan: str, duration: float, node: str | None = None
    ) -> tuple[bytes, dict[str, Any]]:
        from testbed.links import options
        from testbed.links.control import Links

        name = options.parse_link(pan if pan.startswith("pan-") else f"pan-{pan}")
        return Links(self.engine, self.run).capture(name, duration, node)

    # ------------------------------------------------------------------ mobility

    def move(
        self, thing: str, pan: str, *, reregister: bool, wait_read: float
    ) -> usecases.MoveResult:
        return usecases.move(
            self.engine, thing, pan, self.run, reregister=reregister, wait_read=wait_read
        )

    # ------------------------------------------------------------------ nodes

    def things(self) -> list[str]:
        return sorted(n.node for n in self.engine.status(self.run) if n.role == "thing")

    def nodes(self, role: str | None = None) -> list[str]:
        return sorted(
            n.node for n in self.engine.status(self.run) if role is None or n.role == role
        )

    def address_of(self, target: str) -> str:
        """A node's address on its data network (not mgmt); an address is returned as is."""
        if ":" in target:
            return target
        for status in usecases.mobility.current(self.engine, self.run):
            if status.node == target:
                data = [a for n, a in sorted(status.addresses.items()) if n != "mgmt"]
                if data:
                    return data[0].split("/")[0]
        raise StepFailed(
            f"no node {target!r} with a data address in run {self.run!r}",
            f"`testbed status --run {self.run}` lists the nodes",
        )

    def short_address(self, node: str) -> bytes:
        """A radio station's 802.15.4 short address, from its radio-<pan> label attribute."""
        for status in usecases.mobility.current(self.engine, self.run):
            if status.node != node:
                continue
            for key, value in sorted(status.attributes.items()):
                if key.startswith("radio-"):
                    return int(json.loads(value)["short"]).to_bytes(2, "big")
        raise StepFailed(
            f"{node!r} is not a station of a radio PAN in run {self.run!r}",
            "replay needs a thing on a `medium: radio` PAN",
        )

    def state(self, node: str) -> dict[str, Any] | None:
        answer = self.engine.node_state(self.run, node)
        if answer is None:
            return None
        inner = answer.get("state")
        return inner if isinstance(inner, dict) else answer

    def action(
        self, node: str, action: str, params: dict[str, Any], timeout: float = 30.0
    ) -> dict[str, Any]:
        from testbed.links.control import call

        return call(self.engine, self.run, node, action, params, timeout=timeout)

    def stop_node(self, node: str) -> None:
        usecases.stop(self.engine, self.run, node)

    def start_node(self, node: str, wait_ready: bool, timeout: float = 90.0) -> None:
        if wait_ready:  # as `testbed start NODE`: the readiness probe of `up`
            usecases.start(self.engine, self.run, node, timeout=timeout)
        else:
            self.engine.start_nodes(self.run, [node], lambda _event, _name: None, probe=False)

    def profiles(self) -> dict[str, str]:
        """Each thing's bootstrap profile, from its ``profile`` attribute (the planned one)."""
        from testbed.contracts.node_config import Attr

        return {
            n.node: n.attributes.get(Attr.PROFILE, "")
            for n in self.engine.status(self.run)
            if n.role == "thing"
        }

    # ------------------------------------------------------------------ group commands

    def medium(self, pan: str) -> dict[str, float] | None:
        """A radio PAN's medium counters (transmissions, busy_ms, frames_received, acks); None on
        a bridge PAN or when its router did not answer in time."""
        from testbed.links.control import Links
        from testbed.links.group import medium_counters

        links = Links(self.engine, self.run)
        return medium_counters(links, links.router_of(pan), pan)

    def group_send(self, pan: str, path: str, value: Any) -> dict[str, Any]:
        """One group request to the PAN through its router's relay, as `testbed group` sends it
        (without its medium reading: the caller reads the medium around its own window)."""
        from testbed.links.control import Links
        from testbed.links.group import backend_node, relay_address

        links = Links(self.engine, self.run)
        router = links.router_of(pan)
        host = backend_node(self.engine, self.run, None)
        params = {"relay": relay_address(router, pan), "path": path, "value": value}
        return self.action(host.node, "group", params)

    def backend_host(self) -> str:
        from testbed.links.group import backend_node

        return backend_node(self.engine, self.run, None).node

    # ------------------------------------------------------------------ metrics

    def prometheus(self) -> PrometheusAPI:
        if self._api is None:
            from testbed.observe.api import PrometheusAPI
            from testbed.observe.hook import url_of

            url = url_of(self.engine, self.run)
            if url is None:
                raise StepFailed(
                    f"run {self.run!r} has no running Prometheus: PromQL steps need one",
                    "is TESTBED_OBSERVE=0 set? `testbed status` lists its prometheus node",
                )
            self._api = PrometheusAPI(url)
        return self._api

    def promql(self, expr: str) -> str:
        from testbed.observe.snapshot import selector

        return selector(expr, self.run)

    def snapshot(self) -> dict[str, Any]:
        from testbed.observe import snapshot as snap

        api = self.prometheus()
        return snap.collect(api, self.run, snap.lifetime(api, self.run))


def _link_answer(change: usecases.LinkChange) -> dict[str, Any]:
    """A PAN's medium answer as it is; IP links: the routers' answers."""
    if change.link.kind == "pan":
        return change.answers[0]
    return {"routers": change.answers}
