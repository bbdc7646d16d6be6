"""The running node: config + role + control endpoint + metrics, started and stopped in order.

Start order, and why:
  1. control endpoint  (127.0.0.1 is always bindable: /ready can answer 503 from the first
                        second, so the host sees "starting" rather than "refused")
  2. network setup     (IPv6, forwarding, routes, mgmt filter; may wait out DAD), then the
                        network capabilities the role does not need at run time are dropped
                        (testbed.node.capabilities), before any thread of the role exists
  3. metrics endpoint  (on the mgmt address, which may still be tentative: retried)
  4. role start        (then /ready answers 200)
Stop runs the other way round, every step bounded, within the 2 s Docker waits after SIGTERM
(with the default 10 s we would not need to hurry, but `testbed down` on 50 nodes would).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.contracts import impairment
from testbed.contracts import radio as radio_contract
from testbed.contracts.node_config import CONFIG_DIR, NodeConfig
from testbed.node import capabilities, netns
from testbed.node.control import ControlServer
from testbed.node.energy import meter_for
from testbed.node.errors import NetSetupError, ServeError, UnknownAction
from testbed.node.logs import EventLog
from testbed.node.metrics import NodeMetrics
from testbed.node.netsetup import setup_network
from testbed.node.phase_marks import PhaseMarks
from testbed.node.redact import scrub
from testbed.node.roles import role_class
from testbed.node.roles.base import Action, Role, RoleContext

if TYPE_CHECKING:
    from testbed.node.radio.attach import RadioAttachment, TunFactory
    from testbed.node.shaping.manager import LinkShaping

ROLE_STOP_TIMEOUT = 0.8
THREADS_DEADLINE = 3.0  # for threads started before the capability drop to end


def describe(
    config: NodeConfig, ready: bool, started_at: float, network: dict[str, object]
) -> dict[str, Any]:
    """What GET /state says of a node process before its role's state: who it is, its
    attributes, whether it is ready, since when, its network set-up."""
    return {
        "node": config.node,
        "run": config.run,
        "building": config.building,
        "role": config.role,
        "attributes": dict(config.attributes),
        "ready": ready,
        "started_at": started_at,
        "network": network,
    }


class Node:
    def __init__(
        self,
        config: NodeConfig,
        state_dir: Path,
        log: EventLog,
        material_root: Path = CONFIG_DIR,
        *,
        tun: TunFactory | None = None,
        packed: bool = False,
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.log = log
        self.started_at = time.time()
        self._ready = False
        self._network: dict[str, object] = {}
        self._failure: BaseException | None = None
        # A packed thing (testbed.node.packing): its thing host set up the network namespace
        # it shares with its packmates (routes, filters, the TUN, capabilities) once for all.
        self.packed = packed
        self.failed = asyncio.Event()
        ctx = RoleContext(
            config=config,
            state_dir=state_dir,
            log=log,
            fatal=self._fatal,
            material_root=material_root,
        )
        # Raises UnknownRole/ConfigError before anything is bound: exit code 2.
        self.role: Role = role_class(config.role)(ctx)
        self.metrics = NodeMetrics(config, process=not packed)
        self.role.register_metrics(self.metrics.registry)
        # Lifecycle phase runs (phase-mark), on every role: the playbooks mark every host.
        self.phase_marks = PhaseMarks(self.metrics.registry)
        # Radio PANs (medium: radio): TUN + 802.15.4 emulation; None on bridge PANs.
        self.radio = radio_attachment(config, log, tun)
        if self.radio is not None:
            self.radio.register_metrics(self.metrics.registry)
            self.radio.instrument(self.role)
        # Energy estimate of a thing on a radio PAN (topology `energy`); None elsewhere.
        self.energy = meter_for(config, self.radio)
        self._energy_task: asyncio.Task[None] | None = None
        if self.energy is not None:
            self.metrics.registry.register(self.energy)
            self.phase_marks.listeners.append(self.energy.on_phase)
        # IP link impairments (border routers: links-* attributes); None on other nodes.
        self.shaping = link_shaping(config, log, self.radio)
        if self.shaping is not None:
            self.shaping.register_metrics(self.metrics.registry)
        self.control = ControlServer(self, config.control_port, log)
        self._role_started = False

    # -- lifecycle of the process ---------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.control.start()
        except OSError as exc:
            raise ServeError(
                f"cannot serve control on 127.0.0.1:{self.config.control_port}: "
                f"{exc.strerror or exc}",
                "another process holds the port; check control_port in node.json",
            ) from exc
        self.log.info("control.serving", port=self.config.control_port)
        if self.packed:
            await self._start_packed()
            return
        where = netns.check()
        if not where.own and (self.radio is not None or self.shaping is not None):
            raise NetSetupError(
                f"refusing to create radio or shaping devices: {where.reason}",
                "run the node in its container, or on a host inside `unshare -n`",
            )
        if self.radio is not None:  # before the routes: their next hop is on the TUN
            await self.radio.start()
        if self.energy is not None:  # samples for per-phase energy
            self._energy_task = asyncio.get_running_loop().create_task(self.energy.run())
        self._network = await setup_network(self.config, self.log)
        if self.shaping is not None:  # after the routes: netem/redirects on a working link
            await self.shaping.start()
        if where.own:  # on a developer's host the process has nothing to give up
            await self._drop_capabilities()
        await self.metrics.serve(self.config.address("mgmt"), self.config.metrics_port, self.log)
        await self.role.start()
        self._role_started = True
        self._ready = True
        self.metrics.ready.set(1)
        self.log.info("node.ready", state=self.role.state())

    async def _start_packed(self) -> None:
        if self.radio is not None:
            await self.radio.start()
        if self.energy is not None:
            self._energy_task = asyncio.get_running_loop().create_task(self.energy.run())
        self._network = {"packed": True}
        await self.metrics.serve(self.config.address("mgmt"), self.config.metrics_port, self.log)
        await self.role.start()
        self._role_started = True
        self._ready = True
        self.metrics.ready.set(1)
        self.log.info("node.ready", state=self.role.state())

    async def _drop_capabilities(self) -> None:
        self._network.update(await drop_capabilities(self.config.role, self.log))

    async def stop(self) -> None:
        self._ready = False
        self.metrics.ready.set(0)
        if self._role_started:
            try:
                await asyncio.wait_for(self.role.stop(), ROLE_STOP_TIMEOUT)
            except TimeoutError:
                self.log.warning("role.stop_timeout", timeout=ROLE_STOP_TIMEOUT)
            except Exception:
                self.log.exception("role.stop_failed")
        if self._energy_task is not None:
            self._energy_task.cancel()
        if self.shaping is not None:
            with contextlib.suppress(Exception):
                await self.shaping.stop()
        if self.radio is not None:
            with contextlib.suppress(Exception):
                await self.radio.stop()
        with contextlib.suppress(Exception):
            await self.control.close()
        with contextlib.suppress(Exception):
            await self.metrics.close()

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    def _fatal(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self.failed.set()

    # -- ControlTarget ----------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready

    def snapshot(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = scrub(
            {
                **describe(self.config, self._ready, self.started_at, self._network),
                "state": self.role.state() if self._role_started else None,
                **({"radio": self.radio.snapshot()} if self.radio is not None else {}),
                **({"links": self.shaping.snapshot()} if self.shaping is not None else {}),
            }
        )
        return snapshot

    async def _energy(self, params: dict[str, Any]) -> dict[str, Any]:
        """The thing's energy estimate now, per component and per phase run."""
        assert self.energy is not None
        return {**self.energy.state(), "changed": False}

    def _actions(self) -> dict[str, Action]:
        return {
            **self.role.actions(),
            **(self.radio.actions() if self.radio else {}),
            **(self.shaping.actions() if self.shaping else {}),
            **self.phase_marks.actions(),
            **({"energy": self._energy} if self.energy else {}),
        }

    def action_names(self) -> Sequence[str]:
        return list(self._actions())

    async def dispatch(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        action = self._actions().get(name)
        if action is None:
            raise UnknownAction(
                f"role {self.role.name} has no action {name!r}",
                "GET /actions lists them",
            )
        return await action(params)


# The radio and shaping stacks are imported only by the nodes whose config names a radio PAN or
# an IP link to shape: on the others they were start-up CPU spent for nothing.


def radio_attachment(
    config: NodeConfig, log: EventLog, tun: TunFactory | None = None
) -> RadioAttachment | None:
    """The node's radio PANs (RadioAttachment.for_node); None without a radio-* attribute.
    ``tun`` makes each TUN (default: the real device)."""
    if not any(k.startswith(radio_contract.ATTRIBUTE_PREFIX) for k in config.attributes):
        return None
    from testbed.node.radio.attach import RadioAttachment
    from testbed.node.radio.tun import Tun

    return RadioAttachment.for_node(config, log, tun or Tun)


def link_shaping(
    config: NodeConfig, log: EventLog, radio: RadioAttachment | None
) -> LinkShaping | None:
    """The node's shaped IP links (LinkShaping.for_node); None without a links-* attribute."""
    if not any(k.startswith(impairment.ATTRIBUTE_PREFIX) for k in config.attributes):
        return None
    from testbed.node.shaping.manager import LinkShaping

    return LinkShaping.for_node(config, log, radio)


async def drop_capabilities(role: str, log: EventLog) -> dict[str, str]:
    """Give up what ``role`` does not need at run time; what was done, for /state's network
    section. NetSetupError if that fails."""
    dropping = capabilities.to_drop(role)
    if not dropping:
        return {"capabilities_kept": "CAP_NET_ADMIN, CAP_NET_RAW"}
    # Threads started so far (the default executor's, e.g. for getaddrinfo) keep their own
    # sets: replace the executor, so that every later thread descends from this one.
    loop = asyncio.get_running_loop()
    old = getattr(loop, "_default_executor", None)
    loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="node"))
    if old is not None:
        await asyncio.to_thread(old.shutdown, True)
    try:
        capabilities.drop(dropping)
    except OSError as exc:
        raise NetSetupError(
            f"cannot drop network capabilities: {exc}", "the node needs CAP_SETPCAP to start"
        ) from exc
    # asyncio reaps each subprocess (ip, nft) on a thread of its own that ends with it:
    # give those a moment to end before calling a holder a failure.
    give_up = time.monotonic() + THREADS_DEADLINE
    while (holders := capabilities.holders(dropping)) and time.monotonic() < give_up:
        await asyncio.sleep(0.05)
    if holders:
        raise NetSetupError(
            f"threads {', '.join(holders)} still hold network capabilities",
            "start no thread before the network is set up",
        )
    names = [capabilities.NAMES[c] for c in dropping]
    log.info("node.capabilities_dropped", dropped=names)
    return {"capabilities_dropped": ", ".join(names)}
