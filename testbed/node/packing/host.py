"""A thing host: one node process that runs several things (packed things) in one container.

Each packed thing keeps what makes it a thing: its own node.json and credentials (its folder
``things/<name>/`` beside the host's node.json, mounted read-only), its own state
(``things/<name>/`` on the host's volume), its own radio station on its PAN's medium (its short
and extended address, its own ZEP port), its own PAN address, its own control endpoint and
metrics endpoint (ports from its node.json) and its own CoAP endpoints bound to its address.
It is a ``testbed.node.node.Node`` built with ``packed=True``.

What the pack shares is the process (one event loop, one copy of the libraries: that is the
saving) and the network namespace: the host sets it up once (the shared TUN with every
thing's addresses, routes, the mgmt filter), drops the network capabilities once, and then
starts its things, each inside a context whose ``SOURCE_ADDRESS`` is its PAN address.

The host's own control endpoint (node.json's ``control_port``) answers /ready when every thing
has started, and its /state lists the pack. A thing that fails fatally fails the host (exit 1),
as a node would: a half-working pack would give misleading results.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from testbed.contracts.node_config import NodeConfig
from testbed.contracts.packing import THINGS_ATTRIBUTE, THINGS_DIR
from testbed.contracts.radio import radio_pans
from testbed.node import netns
from testbed.node.coap.transport import SOURCE_ADDRESS
from testbed.node.control import ControlServer
from testbed.node.errors import ConfigError, NetSetupError, ServeError, UnknownAction
from testbed.node.logs import EventLog
from testbed.node.metrics import NodeMetrics
from testbed.node.netsetup import setup_network
from testbed.node.node import Node, describe, drop_capabilities
from testbed.node.packing.shared_tun import SharedTun
from testbed.node.radio.addressing import link_local
from testbed.node.redact import scrub

START_BATCH = 10  # things started at once (each start binds sockets and reads its volume)


def packed_names(config: NodeConfig) -> list[str]:
    names = [n for n in config.attributes.get(THINGS_ATTRIBUTE, "").split(",") if n]
    if not names:
        raise ConfigError(
            f"thing host {config.node} has no attribute {THINGS_ATTRIBUTE!r}",
            "the planner lists the packed things there",
        )
    return names


class ThingHost:
    def __init__(
        self, config: NodeConfig, state_dir: Path, log: EventLog, material_root: Path
    ) -> None:
        self.config = config
        self.log = log
        self.started_at = time.time()
        self._ready = False
        self._failure: BaseException | None = None
        self.failed = asyncio.Event()
        self._network: dict[str, object] = {}
        self.tun = SharedTun()
        self.things: dict[str, Node] = {}
        self.sources: dict[str, str] = {}  # thing -> its PAN address (its sockets' source)
        self.addresses: list[tuple[str, str]] = []
        for name in packed_names(config):
            thing_config = _load(material_root / THINGS_DIR / name / "node.json")
            pans = radio_pans(thing_config.attributes)
            if len(pans) != 1:
                raise ConfigError(
                    f"packed thing {name} is on {len(pans)} radio PANs; it needs one",
                    "packed things need a PAN with medium: radio",
                )
            pan = pans[0]
            ll = f"{ipaddress.IPv6Address(link_local(pan.short_addr))}/64"
            self.addresses.append((pan.address, ll))
            self.sources[name] = str(pan.ip)
            state = state_dir / THINGS_DIR / name
            state.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.things[name] = Node(
                thing_config,
                state,
                log.bind(thing=name),
                material_root / THINGS_DIR / name,
                tun=self.tun.view(pan.address, ll),
                packed=True,
            )
        self.metrics = NodeMetrics(config)
        self.control = ControlServer(self, config.control_port, log)

    async def start(self) -> None:
        try:
            await self.control.start()
        except OSError as exc:
            raise ServeError(
                f"cannot serve control on 127.0.0.1:{self.config.control_port}: {exc}",
                "another process holds the port; check control_port in node.json",
            ) from exc
        where = netns.check()
        if not where.own:
            raise NetSetupError(
                f"refusing to create the packed things' TUN: {where.reason}",
                "run the thing host in its container",
            )
        await self.tun.open(self.addresses)  # before the routes: their next hop is on it
        # Prometheus scrapes each packed thing at its own metrics port on the host's mgmt
        # address: the mgmt filter must let those in too.
        self._network = await setup_network(
            self.config,
            self.log,
            metrics_ports=[n.config.metrics_port for n in self.things.values()],
        )
        self._network.update(await drop_capabilities(self.config.role, self.log))
        await self.metrics.serve(self.config.address("mgmt"), self.config.metrics_port, self.log)
        names = list(self.things)
        for i in range(0, len(names), START_BATCH):
            await asyncio.gather(*(self._start_thing(n) for n in names[i : i + START_BATCH]))
        self._ready = True
        self.metrics.ready.set(1)
        self.log.info("thing_host.ready", things=len(self.things))

    async def _start_thing(self, name: str) -> None:
        """Start one thing inside a context that makes its CoAP clients send from its address:
        every task it spawns, and every connection its endpoints accept, inherits it."""
        node = self.things[name]
        context = contextvars.copy_context()
        context.run(SOURCE_ADDRESS.set, self.sources[name])
        task = asyncio.get_running_loop().create_task(node.start(), context=context)
        await task
        watcher = asyncio.get_running_loop().create_task(node.failed.wait())
        watcher.add_done_callback(lambda _: self._fatal(name, node.failure))

    def _fatal(self, name: str, exc: BaseException | None) -> None:
        self.log.error("thing_host.thing_failed", thing=name, error=repr(exc))
        if self._failure is None:
            self._failure = exc or RuntimeError(f"packed thing {name} failed")
        self.failed.set()

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    async def stop(self) -> None:
        self._ready = False
        await asyncio.gather(*(node.stop() for node in self.things.values()))
        self.tun.close()
        with contextlib.suppress(Exception):
            await self.control.close()
        with contextlib.suppress(Exception):
            await self.metrics.close()

    # -- ControlTarget ----------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready

    def snapshot(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = scrub(
            {
                **describe(self.config, self._ready, self.started_at, self._network),
                "state": {
                    "things": {
                        name: {"ready": node.ready, "control_port": node.config.control_port}
                        for name, node in self.things.items()
                    },
                    "tun": {
                        "name": self.tun.tun.name,
                        "read": self.tun.tun.packets_read,
                        "written": self.tun.tun.packets_written,
                        "dropped": dict(self.tun.dropped),
                    },
                },
                # Every thing's own /state, so that the host side asks a pack once, not once
                # per thing (each ask is an exec, an interpreter start in the container).
                "packed": {name: node.snapshot() for name, node in self.things.items()},
            }
        )
        return snapshot

    def action_names(self) -> Sequence[str]:
        return []

    async def dispatch(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        raise UnknownAction(
            f"a thing host has no action {name!r}",
            "act on a packed thing through its own control port (GET /state lists them)",
        )


def _load(path: Path) -> NodeConfig:
    try:
        return NodeConfig.load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"cannot read packed thing config {path}: {exc!r}",
            "regenerate it with the host's planner",
        ) from exc
