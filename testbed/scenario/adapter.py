"""The one door from scenarios to the testbed's use cases: the same functions the CLI verbs call
(bring-up, phases, links, captures, metrics), never copies of them.

Everything a step does to a run goes through an :class:`Testbed` instance, so a different
use-case layer (or a fake for unit tests of the runner) is a change of this module only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed import bringup, rundir
from testbed.errors import TestbedError

if TYPE_CHECKING:
    from testbed.backends.docker import DockerBackend
    from testbed.lifecycle.runner import PhaseResult
    from testbed.observe.api import PrometheusAPI


class StepFailed(TestbedError):
    """A step could not do what it says (not an expectation: the scenario is in error)."""

    exit_code = 1


@dataclass
class UpOutcome:
    run_dir: Path
    things: dict[str, tuple[str, str]] = field(default_factory=dict)  # name: (state, reason)


class Testbed:
    """The use cases of one run, as the CLI calls them."""

    def __init__(self, run: str, backend: DockerBackend | None = None) -> None:
        if backend is None:
            from testbed.backends.docker import DockerBackend

            backend = DockerBackend()
        self.backend = backend
        self.run = run
        self._api: PrometheusAPI | None = None

    # ------------------------------------------------------------------ bring-up and teardown

    def image(self) -> str:
        from testbed.backends.images import ensure_node_image

        result = ensure_node_image(
            self.backend.client, project_root=bringup.PROJECT_ROOT, cache_dir=rundir.cache_dir()
        )
        return result.tag

    def up(self, topology: Path, *, commission: bool, timeout: float) -> UpOutcome:
        plan, text = bringup.plan_for(topology, self.run)
        bringup.ensure_not_running(self.backend, plan.run)
        result = bringup.up(self.backend, plan, text, self.image(), lambda _e, _n: None)
        outcome = UpOutcome(run_dir=result.run_dir)
        if commission:
            if bringup.commissioned_by_phases(plan):
                bringup.commission_by_phases(self.backend, plan)
            outcome.things = bringup.wait_commissioned(
                self.backend, plan, lambda _e, _n: None, timeout=timeout
            )
        return outcome

    def down(self, *, keep_files: bool = False) -> None:
        bringup.down(self.backend, self.run, keep_files=keep_files)

    def is_up(self) -> bool:
        return bool(self.backend.runs().get(self.run))

    def run_dir(self) -> Path:
        return rundir.run_dir_for(self.run)

    # ------------------------------------------------------------------ phases

    def phase(self, name: str, limit: str | None, extravars: dict[str, Any]) -> PhaseResult:
        from testbed.lifecycle.runner import run_phase

        return run_phase(name, backend=self.backend, run=self.run, limit=limit, extravars=extravars)

    # ------------------------------------------------------------------ links and captures

    def link_set(self, link: str, given: dict[str, str | None]) -> dict[str, Any]:
        from testbed.links import options
        from testbed.links.control import Links

        name = options.parse_link(link)
        params = options.parameters(given)
        links = Links(self.backend, self.run)
        if name.kind == "pan":
            return links.set_pan(name, options.pan_parameters(name, params))
        return {"routers": links.set_ip(name, options.ip_impairment(params).to_dict())}

    def link_reset(self, link: str) -> dict[str, Any]:
        from testbed.links import options
        from testbed.links.control import Links

        name = options.parse_link(link)
        links = Links(self.backend, self.run)
        if name.kind == "pan":
            return links.reset_pan(name)
        return {"routers": links.reset_ip(name)}

    def capture(self, pan: str, duration: float) -> tuple[bytes, dict[str, Any]]:
        from testbed.links import options
        from testbed.links.control import Links

        name = options.parse_link(pan if pan.startswith("pan-") else f"pan-{pan}")
        return Links(self.backend, self.run).capture(name, duration)

    # ------------------------------------------------------------------ nodes

    def things(self) -> list[str]:
        return sorted(n.node for n in self.backend.status(self.run) if n.role == "thing")

    def nodes(self, role: str | None = None) -> list[str]:
        return sorted(
            n.node for n in self.backend.status(self.run) if role is None or n.role == role
        )

    def address_of(self, target: str) -> str:
        """A node's address on its data network (not mgmt); an address is returned as is."""
        if ":" in target:
            return target
        for status in self.backend.status(self.run):
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
        for status in self.backend.status(self.run):
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
        answer = self.backend.node_state(self.run, node)
        if answer is None:
            return None
        inner = answer.get("state")
        return inner if isinstance(inner, dict) else answer

    def action(
        self, node: str, action: str, params: dict[str, Any], timeout: float = 30.0
    ) -> dict[str, Any]:
        from testbed.links.control import call

        return call(self.backend, self.run, node, action, params, timeout=timeout)

    def stop_node(self, node: str) -> None:
        self.backend._container(self.run, node).stop(timeout=10)

    def start_node(self, node: str, wait_ready: bool, timeout: float = 90.0) -> None:
        self.backend._container(self.run, node).start()
        if not wait_ready:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.backend.exec(
                self.run, node, ["python3", "-m", "testbed.node.probe", "ready"]
            )
            if result.exit_code == 0:
                return
            time.sleep(1.0)
        raise StepFailed(
            f"{node} did not become ready within {timeout:g} s after its start",
            f"`testbed logs {node} --run {self.run}`",
        )

    # ------------------------------------------------------------------ metrics

    def prometheus(self) -> PrometheusAPI:
        if self._api is None:
            from testbed.observe.api import PrometheusAPI
            from testbed.observe.hook import url_of

            url = url_of(self.backend, self.run)
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
