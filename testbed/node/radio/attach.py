"""A node's attachment to the radio PANs its config names (``radio-<pan>`` attributes).

    thing           TUN lowpan0 (its PAN address) <-> StationPort <-> ZepClient --ZEP--> hub
    border router   per PAN i: TUN lowpan<i> (its PAN address) <-> StationPort <-> MediumHub
                    (the PAN's medium, a ZEP hub on its carrier address)

The node starts it *before* installing routes (testbed.node.node): the things' routes point at
the router's PAN address, which is on-link only once the TUN carries the /64. The router
forwards between its TUNs and the backbone like between any interfaces (forwarding is on).

Control actions (the later ``testbed link`` CLI calls them on the router):
    link-show  {}                                       links, nodes, counters per PAN
    link-set   {loss, [pan], [src], [dst], [node], [gilbert_elliott: {p, r, loss_good, loss_bad}]}
               loss as 0.1 or "10%"; without src/dst/node it changes every link of the PAN;
               node: every link from and to that station (a thing, packed or not), both ways
    link-reset {[pan]}                                  back to the topology's settings
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from testbed.contracts import impairment
from testbed.contracts.node_config import NodeConfig
from testbed.contracts.radio import TUN_PREFIX, RadioPanConfig, radio_pans
from testbed.node.errors import ActionError, ConfigError
from testbed.node.logs import EventLog
from testbed.node.radio import moves
from testbed.node.radio.addressing import link_local
from testbed.node.radio.bootstrap import RadioMetered
from testbed.node.radio.bridge import RadioBridge
from testbed.node.radio.dongle import DongleError
from testbed.node.radio.frontend import MediumHub, link_config
from testbed.node.radio.metrics import (
    PUBLISH_INTERVAL,
    NodeSample,
    PanSample,
    RadioCollector,
    Samples,
    bootstrap_frames_histogram,
)
from testbed.node.radio.ndrouter import RouterPort
from testbed.node.radio.port import StationPort
from testbed.node.radio.slipuplink import LINK_LOCAL, SlipUplink
from testbed.node.radio.tun import Tun
from testbed.node.radio.zep_client import ZepClient

Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
# (device name, packet handler) -> the station's TUN: its own device, or a packed thing's view
# of the TUN it shares with its packmates (testbed.node.packing.shared_tun).
TunFactory = Callable[[str, Callable[[bytes], None]], Tun]
BIND_DEADLINE = 10.0  # the carrier address may still be tentative right after start


async def _bind(open_: Callable[[], Awaitable[None]], *also: int) -> None:
    """``open_`` until the address can be bound: retried while it is not available (still
    tentative) or, with ``also``, for those errnos too."""
    give_up = time.monotonic() + BIND_DEADLINE
    retry = {errno.EADDRNOTAVAIL, *also}
    while True:
        try:
            await open_()
            return
        except OSError as exc:
            if exc.errno not in retry or time.monotonic() >= give_up:
                raise
            await asyncio.sleep(0.2)


class _Pan:
    """One PAN of this node: its TUN, station port and radio (client or hub)."""

    def __init__(
        self, node: str, config: RadioPanConfig, index: int, hub: bool, tun: TunFactory = Tun
    ) -> None:
        self.config = config
        self.tun = tun(f"{TUN_PREFIX}{index}", self._from_tun)
        self.hub = MediumHub(config) if hub else None
        self.client = None if hub else ZepClient(config)
        self._transmit: Callable[[bytes], None] = lambda frame: None
        port = RouterPort if hub else StationPort  # the router answers 6LoWPAN-ND
        self.port = port(config, lambda frame: self._transmit(frame), self.tun.write)
        self.node = node
        self.index = index
        self.bridges: list[RadioBridge] = []  # USB dongles on this PAN (hub only)
        self.uplinks: list[SlipUplink] = []  # SLIP border router boards (hub only)
        self.radio_errors: list[str] = []
        self.open_failed: list[str] = []  # stations whose device could not be opened

    def _from_tun(self, packet: bytes) -> None:
        self.port.send_packet(packet)

    async def start(self) -> None:
        if self.hub is not None:
            await _bind(self.hub.open)
            self._transmit = self.hub.attach_local(
                self.node, (self.config.short_addr, self.config.ext_addr), self.port.receive_frame
            )
            await self._start_bridges()
        else:
            assert self.client is not None
            self.client.port = self.port
            self._transmit = self.client.transmit
            await _bind(self.client.open)
        await self.tun.open(self.config.address, link_local=self.link_local)
        if isinstance(self.port, RouterPort):
            self.port.tick(asyncio.get_running_loop().time())  # the first RA

    @property
    def link_local(self) -> str:
        return f"{ipaddress.IPv6Address(link_local(self.config.short_addr))}/64"

    async def _start_bridges(self) -> None:
        """Each dongle of the PAN as a station of the medium. A dongle that fails stays out
        (its error is logged and shown in the state); the PAN runs on without it."""
        assert self.hub is not None
        for spec in self.config.radios:
            station, device = str(spec["station"]), str(spec["device"])
            if spec.get("protocol") == "slip":
                await self._start_uplink(station, device, str(spec["prefix"]))
                continue
            bridge = RadioBridge(self.hub, station, device, bool(spec.get("loss_model")))
            try:
                await bridge.start()
            except DongleError as exc:
                self.radio_errors.append(f"{station}: {exc}")
                self.open_failed.append(station)
                continue
            self.bridges.append(bridge)

    async def move(self, config: RadioPanConfig) -> None:
        """This station leaves its medium for another PAN's (a thing that moves): a new port
        with the new PAN's addresses and a new ZEP client towards the new hub. The TUN stays;
        its addresses and routes are the host's part (this process holds no CAP_NET_ADMIN)."""
        assert self.client is not None, "only a station moves"
        self.client.close()
        self.config = config
        self.client = ZepClient(config)
        self.port = StationPort(config, lambda frame: self._transmit(frame), self.tun.write)
        self.client.port = self.port
        self._transmit = self.client.transmit
        await _bind(self.client.open, errno.EADDRINUSE)  # the old socket closes on the next turn

    async def _start_uplink(self, station: str, device: str, prefix: str) -> None:
        """The uplink's TUN carries its routed prefix whether or not the board is there (the
        routes and the policy stay as planned); a line that cannot be opened is an error of
        the uplink alone."""
        uplink = SlipUplink(station, device, prefix, f"slip{self.index}-{len(self.uplinks)}")
        await uplink.tun.open(uplink.address, link_local=LINK_LOCAL)  # TunError: fatal
        self.uplinks.append(uplink)
        try:
            uplink.open_line()
        except OSError as exc:
            uplink.lost = str(exc.strerror or exc)
            self.radio_errors.append(f"{station}: {uplink.lost}")
            self.open_failed.append(station)

    def retry_lines(self, now: float) -> list[str]:
        """The SLIP boards whose line came back (see SlipUplink.retry)."""
        return [u.name for u in self.uplinks if u.retry(now)]

    def lost_devices(self) -> list[tuple[str, str]]:
        """(station, reason) of every device of the PAN whose line ended during the run."""
        out = [(b.name, b.lost) for b in self.bridges if b.lost is not None]
        out += [(u.name, u.lost) for u in self.uplinks if u.lost and u.refused["line-lost"]]
        return out

    def refusals(self) -> dict[tuple[str, str], int]:
        """(station, cause) -> count: what the PAN's dongles and uplinks refused."""
        out: dict[tuple[str, str], int] = {(s, "open-failed"): 1 for s in self.open_failed}
        for bridge in self.bridges:
            for cause, n in (bridge.dongle.refused + bridge.dongle.tx_failed).items():
                out[bridge.name, cause] = n
        for uplink in self.uplinks:
            for cause, n in uplink.refused.items():
                out[uplink.name, cause] = n
        return out

    def stop(self) -> None:
        for bridge in self.bridges:
            bridge.close()
        for uplink in self.uplinks:
            uplink.close()
        with contextlib.suppress(Exception):
            self.tun.close()
        if self.hub is not None:
            self.hub.close()
        if self.client is not None:
            self.client.close()

    def samples(self) -> list[NodeSample]:
        pan, st = self.config.pan, self.port.station
        own = st.snapshot()
        own_dropped: dict[str, int] = dict(own["dropped_frames"])  # type: ignore[call-overload]
        if self.client is not None:
            for reason, count in self.client.dropped.items():
                own_dropped[reason] = own_dropped.get(reason, 0) + count
            own_dropped["tun-write"] = self.tun.write_dropped
            return [
                NodeSample(
                    pan,
                    self.node,
                    st.frames_sent,
                    st.frames_received,
                    self.port.airtime_s,
                    own_dropped,
                    dict(st.fragments_per_packet),
                    dict(self.port.packets_filtered),
                )
            ]
        assert self.hub is not None
        out = []
        nodes: dict[str, dict[str, Any]] = self.hub.medium.snapshot(links=False)["nodes"]  # type: ignore[assignment]
        fates = self.hub.medium.fates.by_sender()
        for name, n in nodes.items():
            dropped = dict(n["dropped"])
            mine = name == self.node
            if mine:
                for cause, count in own_dropped.items():
                    dropped[cause] = dropped.get(cause, 0) + count
            out.append(
                NodeSample(
                    pan,
                    name,
                    n["transmissions"],
                    n["frames_received"],
                    n["airtime_s"],
                    dropped,
                    dict(st.fragments_per_packet) if mine else {},
                    dict(self.port.packets_filtered) if mine else {},
                    retries=n["retries"],
                    queue_length=n["queue_length"],
                    fates=fates.get(name, {}),
                )
            )
        return out

    def pan_sample(self) -> PanSample | None:
        if self.hub is None:
            return None
        default = self.hub.medium.links.default
        nd = self.port.nd if isinstance(self.port, RouterPort) else None
        return PanSample(
            self.config.pan,
            self.hub.medium.busy_s,
            default.expected_loss,
            dict(self.hub.dropped),
            nd_registrations=len(nd.registrations()) if nd else 0,
            nd_requests=dict(nd.counters.registrations) if nd else {},
            nd_advertisements=dict(nd.counters.router_advertisements) if nd else {},
            radio_refused=self.refusals(),
        )

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "address": self.config.address,
            "short": f"0x{self.config.short:04x}",
            "tun": {
                "name": self.tun.name,
                "read": self.tun.packets_read,
                "written": self.tun.packets_written,
                "write_dropped": self.tun.write_dropped,
            },
            "station": self.port.station.snapshot(),
            "filtered": dict(self.port.packets_filtered),
        }
        if isinstance(self.port, RouterPort):
            out["nd"] = self.port.nd.snapshot(asyncio.get_running_loop().time())
        if self.config.radios:
            out["radios"] = [b.snapshot() for b in self.bridges]
            out["radios"] += [u.snapshot() for u in self.uplinks]
            out["radio_errors"] = list(self.radio_errors)
        if self.hub is not None:
            out["medium"] = self.hub.medium.snapshot()
            out["endpoints"] = self.hub.endpoints()
            out["hub_dropped"] = dict(self.hub.dropped)
            default = self.hub.medium.links.default
            out["default_link"] = {"loss": default.expected_loss, "planned": self.config.loss}
        if self.client is not None:
            out["medium_endpoint"] = f"[{self.config.medium}]:{self.config.port}"
            out["zep"] = {
                "sent": self.client.datagrams_sent,
                "received": self.client.datagrams_received,
                "dropped": dict(self.client.dropped),
            }
        return out


class RadioAttachment:
    def __init__(
        self,
        config: NodeConfig,
        pans: list[RadioPanConfig],
        log: EventLog,
        tun: TunFactory = Tun,
    ) -> None:
        self.config = config
        self.log = log
        self.is_hub = config.role == "border_router"
        self.pans = {p.pan: _Pan(config.node, p, i, self.is_hub, tun) for i, p in enumerate(pans)}
        self.collector = RadioCollector()
        self.bootstrap_frames: Histogram | None = None
        self.metered: RadioMetered | None = None
        self._task: asyncio.Task[None] | None = None
        self._reported_lost: set[tuple[str, str]] = set()

    @classmethod
    def for_node(
        cls, config: NodeConfig, log: EventLog, tun: TunFactory = Tun
    ) -> RadioAttachment | None:
        """The attachment the config asks for; None when no PAN of the node is a radio PAN."""
        try:
            pans = radio_pans(config.attributes)
        except ValueError as exc:
            raise ConfigError(str(exc), "the planner writes radio-<pan> attributes") from None
        if not pans:
            return None
        if config.role != "border_router" and len(pans) != 1:
            raise ConfigError(f"node {config.node} is on {len(pans)} radio PANs; a thing has one")
        return cls(config, pans, log, tun)

    # ------------------------------------------------------------ node integration

    def register_metrics(self, registry: CollectorRegistry) -> None:
        registry.register(self.collector)
        if not self.is_hub:
            self.bootstrap_frames = bootstrap_frames_histogram(registry)

    def instrument(self, role: object) -> None:
        """Count frames per bootstrap: wrap the role's bootstrap profile, where it has one (a
        thing that is to commission; ``profile`` is what its Bootstrapper runs)."""
        profile = getattr(role, "profile", None)
        if self.is_hub or profile is None or not hasattr(profile, "bootstrap"):
            return
        port = next(iter(self.pans.values())).port
        self.metered = RadioMetered(profile, port.counters, self.bootstrap_frames)
        role.profile = self.metered  # type: ignore[attr-defined]

    async def start(self) -> None:
        for pan in self.pans.values():
            try:
                await pan.start()
            except OSError as exc:
                await self.stop()
                raise ConfigError(
                    f"radio PAN {pan.config.pan}: {exc}",
                    "the node needs CAP_NET_ADMIN and /dev/net/tun (the plan asks for both)",
                ) from exc
            for error in pan.radio_errors:
                self.log.error(
                    "radio.dongle_failed",
                    pan=pan.config.pan,
                    error=error,
                    hint="check the device path in the topology's radios: and that it runs "
                    "OpenThread's ot-rcp firmware (spinel) or speaks tunslip6's SLIP (slip)",
                )
            self.log.info(
                "radio.attached",
                pan=pan.config.pan,
                tun=pan.tun.name,
                address=pan.config.address,
                short=f"0x{pan.config.short:04x}",
                medium=f"[{pan.config.medium}]:{pan.config.port}",
                hub=self.is_hub,
            )
        self._task = asyncio.create_task(self._housekeeping(), name="radio:housekeeping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for pan in self.pans.values():
            pan.stop()
        self.publish()

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL)
            for pan in self.pans.values():
                pan.port.station.expire(loop.time())
                if isinstance(pan.port, RouterPort):
                    pan.port.tick(loop.time())
                self._report_lost(pan)
                for station in pan.retry_lines(loop.time()):
                    self._reported_lost.discard((pan.config.pan, station))
                    self.log.info("radio.dongle_back", pan=pan.config.pan, radio=station)
            self.publish()

    def _report_lost(self, pan: _Pan) -> None:
        """A dongle or board whose line ended mid-run: logged once; its station falls silent,
        the PAN runs on (the state and testbed_radio_dongle_refused_total say it too)."""
        for station, reason in pan.lost_devices():
            if (pan.config.pan, station) not in self._reported_lost:
                self._reported_lost.add((pan.config.pan, station))
                self.log.error(
                    "radio.dongle_lost",
                    pan=pan.config.pan,
                    radio=station,
                    reason=reason,
                    hint="plug it in again: a SLIP board's line is reopened by itself, a "
                    "Spinel dongle needs the border router restarted (testbed restart NODE)",
                )

    def publish(self) -> None:
        nodes, pans = [], []
        for pan in self.pans.values():
            nodes += pan.samples()
            sample = pan.pan_sample()
            if sample is not None:
                pans.append(sample)
        self.collector.publish(Samples(tuple(nodes), tuple(pans)))

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {p: pan.snapshot() for p, pan in self.pans.items()}
        if self.metered is not None and self.metered.last is not None:
            out["last_bootstrap"] = self.metered.last
        return out

    # ------------------------------------------------------------ actions

    def actions(self) -> Mapping[str, Action]:
        if not self.is_hub:
            return {"link-show": self._show, "radio-move": lambda p: moves.radio_move(self, p)}
        return {
            "link-show": self._show,
            "link-set": self._set,
            "link-reset": self._reset,
            "station-admit": lambda params: moves.station_admit(self, params),
            "station-release": lambda params: moves.station_release(self, params),
        }

    def _pan(self, params: dict[str, Any]) -> _Pan:
        name = params.get("pan")
        if name is None:
            if len(self.pans) == 1:
                return next(iter(self.pans.values()))
            raise ActionError("this router has several radio PANs: name one", '{"pan": "floor1"}')
        if name not in self.pans:
            raise ActionError(f"no radio PAN {name!r} here", f"one of: {', '.join(self.pans)}")
        return self.pans[name]

    async def _show(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.snapshot()

    async def _set(self, params: dict[str, Any]) -> dict[str, Any]:
        pan = self._pan(params)
        assert pan.hub is not None
        loss = probability(params.get("loss", 0.0), "loss")
        burst = None
        if (ge := params.get("gilbert_elliott")) is not None:
            if not isinstance(ge, dict):
                raise ActionError("gilbert_elliott must be an object", '{"p": 0.1, "r": 0.5}')
            try:
                burst = impairment.GilbertElliott(
                    **{k: probability(v, k) for k, v in ge.items()}  # p, r, loss_good, loss_bad
                )
            except (TypeError, ValueError) as exc:
                raise ActionError(f"gilbert_elliott: {exc}") from None
        try:
            config = link_config(loss, burst)
        except ValueError as exc:
            raise ActionError(f"gilbert_elliott: {exc}") from None
        names = {k: params.get(k) for k in ("src", "dst", "node")}
        if names["node"] is not None and (names["src"], names["dst"]) != (None, None):
            raise ActionError("give either node or src/dst", '{"node": "lamp-07", "loss": 0.5}')
        try:
            pan.hub.set_links(config, **names)
        except KeyError as exc:
            raise ActionError(
                f"no node {exc.args[0]!r} on PAN {pan.config.pan}",
                "link-show lists the medium's nodes",
            ) from None
        self.log.info("radio.link_set", pan=pan.config.pan, loss=loss, burst=burst is not None)
        return {"pan": pan.config.pan, "loss": loss, **names}

    async def _reset(self, params: dict[str, Any]) -> dict[str, Any]:
        pan = self._pan(params)
        assert pan.hub is not None
        pan.hub.reset_links()
        self.log.info("radio.link_reset", pan=pan.config.pan)
        return {"pan": pan.config.pan, "loss": pan.config.loss}


def probability(value: Any, name: str) -> float:
    """0.1, "0.1" or "10%" -> 0.1 (the contract's parser, as the host's); ActionError else."""
    try:
        return impairment.probability(value, name)
    except impairment.ImpairmentError as exc:
        raise ActionError(f'{exc}; e.g. 0.1 or "10%"') from None
