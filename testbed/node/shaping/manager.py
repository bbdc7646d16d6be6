"""A border router's IP links: which implementation, which device, live changes, metrics.

The model: a link is the border router's interface on
that network (``backbone``, ``internet``), impaired in both directions with the same
parameters, each direction drawn on its own. A 50 ms delay therefore adds 100 ms to a round
trip through the router, and 20% loss lets (0.8)^2 = 64% of request/response pairs through.

Implementation, chosen once at start: kernel netem if this network namespace can add a netem
qdisc, an ingress qdisc and a u32 mirred redirect to an IFB device (netem.probe); otherwise the
user-space NFQUEUE shaper. ``TESTBED_SHAPING=netem|userspace`` forces one (tests, debugging).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from testbed.contracts.impairment import (
    Impairment,
    ImpairmentError,
    LinkSpec,
    link_specs,
)
from testbed.contracts.node_config import NodeConfig
from testbed.node import declared_metrics as declared
from testbed.node.errors import ActionError, ConfigError, NetSetupError
from testbed.node.logs import EventLog
from testbed.node.radio.attach import RadioAttachment
from testbed.node.shaping import netem, userspace
from testbed.node.shaping.aircapture import AirCapture
from testbed.node.shaping.model import ACTIONS, DROPPED, SHAPED
from testbed.node.shaping.runner import Runner, run

Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
FORCE_ENV = "TESTBED_SHAPING"
POLL_INTERVAL = 5.0  # netem counters are read with `tc -s`; not on every scrape


class Link(Protocol):
    implementation: str
    link: str
    dev: str

    async def apply(self, imp: Impairment) -> None: ...

    async def close(self) -> None: ...


def device_for(address: str, addr_json: str) -> str | None:
    """The interface holding ``address`` in `ip -j addr show` output."""
    try:
        entries = json.loads(addr_json)
    except ValueError:
        return None
    for entry in entries if isinstance(entries, list) else []:
        for info in entry.get("addr_info", []):
            if info.get("local") == address:
                return str(entry.get("ifname"))
    return None


class LinkShaping:
    def __init__(
        self,
        config: NodeConfig,
        specs: list[LinkSpec],
        log: EventLog,
        runner: Runner = run,
        radio: RadioAttachment | None = None,
    ) -> None:
        self.config = config
        # The router's radio PANs can be captured (``capture``); it is the same CLI family.
        self.capture = AirCapture(radio, config.node) if radio and radio.is_hub else None
        self.specs = {s.name: s for s in specs}
        self.log = log
        self.runner = runner
        self.implementation = ""
        self.reason = ""
        self.links: dict[str, Link] = {}
        self.current: dict[str, Impairment] = {s.name: s.planned for s in specs}
        self._netem_seen: dict[str, tuple[int, int]] = {}  # last (packets, drops) read
        self._netem_total: dict[str, dict[str, int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def for_node(
        cls, config: NodeConfig, log: EventLog, radio: RadioAttachment | None = None
    ) -> LinkShaping | None:
        """Border routers (the planner writes ``links-<name>`` for them); None elsewhere."""
        try:
            specs = link_specs(config.attributes)
        except (ImpairmentError, ValueError) as exc:
            raise ConfigError(f"link impairments: {exc}", "the planner writes links-*") from None
        return cls(config, specs, log, radio=radio) if specs else None

    # ------------------------------------------------------------ lifecycle

    async def choose(self) -> None:
        forced = os.environ.get(FORCE_ENV, "").strip().lower()
        if forced in ("netem", "userspace"):
            chosen = netem if forced == "netem" else userspace
            self.implementation = chosen.IMPLEMENTATION
            self.reason = f"forced by {FORCE_ENV}={forced}"
            return
        ok, why = await netem.probe(self.runner)
        if ok:
            self.implementation, self.reason = netem.IMPLEMENTATION, why
        else:
            self.implementation = userspace.IMPLEMENTATION
            self.reason = f"no kernel netem here ({why})"

    async def start(self) -> None:
        await self.choose()
        addresses = await self.runner(["ip", "-j", "addr", "show"])
        for name, spec in self.specs.items():
            dev = device_for(self.config.address(name), addresses.stdout)
            if dev is None:
                raise NetSetupError(
                    f"no interface holds this node's {name} address {self.config.address(name)}",
                    "is the node attached to that network?",
                )
            self.links[name] = self._make(name, dev, spec.seed)
        for name in self.links:
            await self._apply(name, self.current[name])
        self.log.info(
            "shaping.started",
            implementation=self.implementation,
            reason=self.reason,
            links={n: (lk.dev, self.current[n].describe()) for n, lk in self.links.items()},
        )
        if self.implementation == netem.IMPLEMENTATION:
            self._task = asyncio.create_task(self._poll(), name="shaping:counters")

    def _make(self, name: str, dev: str, seed: int) -> Link:
        if self.implementation == netem.IMPLEMENTATION:
            return netem.KernelLink(name, dev, self.runner)
        return userspace.UserspaceLink(name, dev, seed, self.runner)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for link in self.links.values():
            with contextlib.suppress(Exception):
                await link.close()

    async def _apply(self, name: str, imp: Impairment) -> None:
        link = self.links[name]
        if isinstance(link, netem.KernelLink) and link.active:
            await self._read_netem(name, link)  # fold the counters in before a teardown
        try:
            await link.apply(imp)
        except (OSError, netem.ShapingCommandError) as exc:
            raise NetSetupError(
                f"cannot shape link {name} on {link.dev} with {self.implementation}: {exc}",
                "the node needs CAP_NET_ADMIN (and /dev/net/tun for the user-space shaper)",
            ) from exc
        self.current[name] = imp
        if isinstance(link, netem.KernelLink) and not link.active:
            self._netem_seen[name] = (0, 0)

    # ------------------------------------------------------------ counters

    async def _read_netem(self, name: str, link: netem.KernelLink) -> None:
        reading = await link.counters()
        seen_packets, seen_drops = self._netem_seen.get(name, (0, 0))
        if reading.packets < seen_packets or reading.drops < seen_drops:
            seen_packets, seen_drops = 0, 0  # a new qdisc counts from zero
        total = self._netem_total.setdefault(name, {SHAPED: 0, DROPPED: 0})
        total[SHAPED] += reading.packets - seen_packets + reading.drops - seen_drops
        total[DROPPED] += reading.drops - seen_drops
        self._netem_seen[name] = (reading.packets, reading.drops)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            for name, link in self.links.items():
                if isinstance(link, netem.KernelLink) and link.active:
                    with contextlib.suppress(Exception):
                        await self._read_netem(name, link)

    def counts(self, name: str) -> dict[str, int]:
        link = self.links.get(name)
        if isinstance(link, userspace.UserspaceLink):
            return link.counts()
        return dict(self._netem_total.get(name, {}))

    def register_metrics(self, registry: CollectorRegistry) -> None:
        registry.register(_Collector(self))

    # ------------------------------------------------------------ control

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, spec in self.specs.items():
            link = self.links.get(name)
            imp = self.current[name]
            entry: dict[str, Any] = {
                "implementation": self.implementation,
                "device": link.dev if link else None,
                "impairment": imp.to_dict(),
                "describe": imp.describe(),
                "planned": spec.planned.to_dict(),
                "counts": self.counts(name),
            }
            if isinstance(link, userspace.UserspaceLink):
                entry["directions"] = link.snapshot()
            out[name] = entry
        return {
            "implementation": self.implementation,
            "reason": self.reason,
            "links": out,
            # PANs whose air is being captured now (a capture's requester can wait on this)
            "captures": self.capture.running() if self.capture else [],
        }

    def actions(self) -> Mapping[str, Action]:
        return {
            "shaping-show": self._show,
            "shaping-set": self._set,
            "shaping-reset": self._reset,
            **(self.capture.actions() if self.capture else {}),
        }

    def _link(self, params: dict[str, Any]) -> str:
        name = params.get("link")
        if name not in self.links:
            raise ActionError(
                f"no IP link {name!r} on this node", f"one of: {', '.join(self.links) or 'none'}"
            )
        return str(name)

    async def _show(self, params: dict[str, Any]) -> dict[str, Any]:
        for name, link in self.links.items():
            if isinstance(link, netem.KernelLink) and link.active:
                with contextlib.suppress(Exception):
                    await self._read_netem(name, link)
        return self.snapshot()

    async def _set(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._link(params)
        try:
            imp = Impairment.from_dict(params.get("impairment", {}))
        except ImpairmentError as exc:
            raise ActionError(str(exc), f"check the value of {exc.option}") from None
        async with self._lock:
            await self._apply(name, imp)
        self.log.info("shaping.set", link=name, impairment=imp.describe())
        return self._answer(name)

    async def _reset(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._link(params)
        async with self._lock:
            await self._apply(name, self.specs[name].planned)
        self.log.info("shaping.reset", link=name, impairment=self.current[name].describe())
        return self._answer(name)

    def _answer(self, name: str) -> dict[str, Any]:
        imp = self.current[name]
        return {
            "link": name,
            "implementation": self.implementation,
            "device": self.links[name].dev,
            "impairment": imp.to_dict(),
            "describe": imp.describe(),
        }


class _Collector(Collector):
    """testbed_link_packets_total{link,action}; testbed_link_info{link,implementation}."""

    def __init__(self, shaping: LinkShaping) -> None:
        self.shaping = shaping

    def collect(self) -> Iterable[Metric]:
        packets = declared.counter_family("testbed_link_packets")
        info = declared.gauge_family("testbed_link_info")
        for name in self.shaping.specs:
            counts = self.shaping.counts(name)
            for action in ACTIONS:
                if action in counts or self.shaping.implementation == userspace.IMPLEMENTATION:
                    packets.add_metric([name, action], counts.get(action, 0))
            info.add_metric(
                [name, self.shaping.implementation, self.shaping.current[name].describe()], 1
            )
        yield packets
        yield info
