"""The proxy service a border router runs when its topology entry has ``proxy``.

End to end: an aiocoap server context on [::]:5683 whose site is the forward proxy; the
outgoing side is a second (client) aiocoap context. Hop by hop: a DTLS (PSK) server on
[::]:5684 for the backends (``DtlsServer`` and ``CoapsSite`` of testbed.node.dtls), the same
forward proxy as its site, and a pool of DTLS sessions to the things. Both legs' sockets count
their datagrams into ``testbed_proxy_wire_bytes_total{leg,direction}``.

Actions: ``proxy-show`` (what it saw, per mode; sessions; whether it tampers) and
``proxy-tamper {"on": bool}`` (the compromised-proxy switch, live).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiocoap

from testbed.contracts.proxy import (
    COAP_PORT,
    COAPS_PORT,
    END_TO_END,
    HOP_BY_HOP,
    ProxyConfig,
    backend_psk,
    thing_psk,
)
from testbed.node.bootstrap.accounting import Peer
from testbed.node.coap.transport import Direction, create_context
from testbed.node.dtls import credentials as creds
from testbed.node.dtls.coaps import CoapsSite
from testbed.node.dtls.endpoint import DtlsServer
from testbed.node.errors import ActionError, ConfigError
from testbed.node.logs import EventLog
from testbed.node.proxy import channels
from testbed.node.proxy import firewall as proxy_firewall
from testbed.node.proxy.forwarder import Forbidden, Outgoing, ThingProxy, destination
from testbed.node.proxy.inspect import Inspector, ProxyMetrics

Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class LegSink:
    """Counts the datagrams of one leg's socket (UDP payload bytes, both directions)."""

    def __init__(self, metrics: ProxyMetrics, leg: str) -> None:
        self.metrics = metrics
        self.leg = leg
        self.bytes = {"sent": 0, "received": 0}
        self.datagrams = {"sent": 0, "received": 0}

    def record(self, direction: Direction, peer: Peer, data: bytes) -> None:
        self.bytes[direction] += len(data)
        self.datagrams[direction] += 1
        self.metrics.wire_bytes.labels(self.leg, direction).inc(len(data))
        self.metrics.datagrams.labels(self.leg, direction).inc()


class CoapProxy:
    def __init__(
        self,
        config: ProxyConfig,
        *,
        name: str,
        material_root: Path,
        metrics: ProxyMetrics,
        log: EventLog,
        bind_host: str = "::",
        ports: Mapping[str, int] | None = None,
        thing_port: int = COAPS_PORT,
        firewall: bool = False,
    ) -> None:
        self.config = config
        self.name = name  # the PSK identity it presents to the things
        self.material_root = material_root
        self.metrics = metrics
        self.log = log
        self.bind_host = bind_host
        self.ports = {END_TO_END: COAP_PORT, HOP_BY_HOP: COAPS_PORT, **(ports or {})}
        self.thing_port = thing_port
        self.firewall = firewall  # nftables: the proxy ports open to the backends only
        self.inspector = Inspector(metrics, log, tamper=config.tamper)
        self.sinks = {
            leg: LegSink(metrics, leg)
            for leg in ("backend-coap", "thing-coap", "backend-coaps", "thing-coaps")
        }
        self._server: aiocoap.Context | None = None
        self._client: aiocoap.Context | None = None
        self._dtls: DtlsServer | None = None
        self._coaps: CoapsSite | None = None
        self.pool: channels.ChannelPool | None = None
        self._thing_psks: dict[str, bytes] = {}

    def _psk(self, relative: str) -> bytes:
        path = self.material_root / relative
        try:
            return creds.read_psk(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"proxy PSK {relative} unusable: {exc}",
                "testbed up mints it for every thing behind a hop-by-hop proxy and every backend",
            ) from exc

    async def start(self) -> None:
        if self.firewall:
            ports = [self.ports[m] for m in self.config.modes]
            await proxy_firewall.install(ports, self.config.allowed_sources, self.log)
        if END_TO_END in self.config.modes:
            await self._start_end_to_end()
        if HOP_BY_HOP in self.config.modes:
            await self._start_hop_by_hop()
        self.log.info(
            "proxy.serving",
            modes=list(self.config.modes),
            ports={m: self.port(m) for m in self.config.modes},
            tamper=self.inspector.tamper,
            pans=list(self.config.pans),
        )

    async def _start_end_to_end(self) -> None:
        self._client = await create_context(sink=self.sinks["thing-coap"], loggername="proxy-out")
        client = self._client

        async def send(request: aiocoap.Message) -> aiocoap.Message:
            response: aiocoap.Message = await client.request(
                request, handle_blockwise=False
            ).response
            return response

        site = ThingProxy(
            Outgoing(END_TO_END, send, self.inspector), self.config, check_source=True
        )
        self._server = await create_context(
            site=site,
            bind=(self.bind_host, self.ports[END_TO_END]),
            sink=self.sinks["backend-coap"],
            loggername="proxy",
        )

    async def _start_hop_by_hop(self) -> None:
        psks = {b: self._psk(backend_psk(b)) for b in self.config.backends}
        self._thing_psks = {n: self._psk(thing_psk(n)) for n in set(self.config.things.values())}
        self.pool = channels.ChannelPool(self.name, sink=self.sinks["thing-coaps"])
        pool = self.pool

        async def send(request: aiocoap.Message) -> aiocoap.Message:
            address, port = destination(request)
            thing = self.config.things.get(address)
            if thing is None:
                raise Forbidden()  # no PSK with whatever sits there
            return await pool.request((address, port), self._thing_psks[thing], request)

        site = ThingProxy(Outgoing(HOP_BY_HOP, send, self.inspector), self.config)
        server = DtlsServer(
            channels.server_configuration(psks),
            on_established=self._established,
            on_data=lambda session, data: (
                self._coaps.on_data(session, data) if self._coaps is not None else None
            ),
            sink=self.sinks["backend-coaps"],
        )
        await server.start((self.bind_host, self.ports[HOP_BY_HOP]))
        self._dtls = server
        self._coaps = CoapsSite(server, site, (self.bind_host, server.port))

    def _established(self, session: Any) -> None:
        self.log.info(
            "proxy.backend_session",
            peer=f"[{session.peer[0]}]:{session.peer[1]}",
            cipher=session.cipher,
        )

    def port(self, mode: str) -> int:
        if mode == END_TO_END and self._server is not None:
            from testbed.node.coap.transport import bound_port

            return bound_port(self._server)
        if mode == HOP_BY_HOP and self._dtls is not None:
            return self._dtls.port
        raise KeyError(mode)

    async def close(self) -> None:
        for ctx in (self._server, self._client):
            if ctx is not None:
                with contextlib.suppress(Exception):
                    await ctx.shutdown()
        self._server = self._client = None
        if self._coaps is not None:
            await self._coaps.close()
        if self._dtls is not None:
            await self._dtls.close()
        if self.pool is not None:
            await self.pool.close()

    # -- state and actions --------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "modes": list(self.config.modes),
            "tamper": self.inspector.tamper,
            "seen": self.inspector.seen,
            "wire": {
                leg: {"bytes": s.bytes, "datagrams": s.datagrams} for leg, s in self.sinks.items()
            },
            "thing_sessions": 0 if self.pool is None else len(self.pool.channels),
            "thing_handshakes": 0 if self.pool is None else self.pool.handshakes,
            "backend_sessions": 0 if self._dtls is None else len(self._dtls.sessions),
        }

    async def _show(self, params: dict[str, Any]) -> dict[str, Any]:
        show = {**self.snapshot(), "changed": False}
        if self.firewall:
            show["firewall_dropped"] = await asyncio.to_thread(proxy_firewall.dropped)
        return show

    def actions(self) -> Mapping[str, Action]:
        return {"proxy-show": self._show, "proxy-tamper": self._tamper}

    async def _tamper(self, params: dict[str, Any]) -> dict[str, Any]:
        on = params.get("on")
        if not isinstance(on, bool):
            raise ActionError("parameter 'on' must be true or false", '{"on": true}')
        changed = on != self.inspector.tamper
        self.inspector.tamper = on
        self.log.warning("proxy.tamper", on=on) if on else self.log.info("proxy.tamper", on=on)
        return {"tamper": on, "changed": changed}
