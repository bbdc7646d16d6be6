"""A thing, its border router's proxy and a backend on loopback: real aiocoap (OSCORE), real
Mbed TLS (DTLS PSK), the testbed's own servers. Nothing is mocked."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiocoap
from prometheus_client import CollectorRegistry

from testbed.contracts.proxy import (
    END_TO_END,
    HOP_BY_HOP,
    OPERATION_PSK,
    ProxyConfig,
    ProxyRoute,
    backend_psk,
    router_psk,
    thing_psk,
)
from testbed.node.backend.peers import Reply, protected_request
from testbed.node.backend.proxied import DtlsProxyClient, oscore_via_proxy
from testbed.node.coap.transport import DatagramSink, create_context
from testbed.node.dtls import credentials as creds
from testbed.node.enrollment_api import OscoreContextGrant
from testbed.node.logs import EventLog
from testbed.node.proxy.inspect import ProxyMetrics
from testbed.node.proxy.service import CoapProxy
from testbed.node.thing import catalog, contexts, physics
from testbed.node.thing.dtls_server import ThingDtlsServer
from testbed.node.thing.metrics import ThingMetrics
from testbed.node.thing.oscore_server import ThingServer
from testbed.node.thing.resources import RequestLog

LOOPBACK = "::1"
SECRET = bytes(range(16))


def grant(sender: bytes, recipient: bytes) -> OscoreContextGrant:
    return OscoreContextGrant("backend", sender, recipient, SECRET, b"salt", None, 1)


@dataclass
class Rig:
    thing: ThingServer
    thing_dtls: ThingDtlsServer
    device: physics.Device
    requests: RequestLog
    proxy: CoapProxy
    registry: CollectorRegistry
    coap: aiocoap.Context
    backend_context: contexts.PersistentContext
    dtls_client: DtlsProxyClient
    route: ProxyRoute
    refusals: dict[str, int]

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    async def oscore(self, code: Any, resource: str, value: Any = None) -> Reply:
        assert self.route.coap is not None
        payload, options = _body(value)
        return await oscore_via_proxy(
            self.coap,
            self.backend_context,
            self.route.coap,
            (LOOPBACK, self.thing.port),
            code,
            resource,
            payload,
            5.0,
            **options,
        )

    async def direct(self, code: Any, resource: str, value: Any = None) -> Reply:
        """OSCORE straight to the thing, no proxy (the baseline)."""
        payload, options = _body(value)
        uri = f"coap://[{LOOPBACK}]:{self.thing.port}/{resource}"
        return await protected_request(
            self.coap, self.backend_context, uri, code, payload, 5.0, **options
        )

    async def dtls(self, code: Any, resource: str, value: Any = None) -> Reply:
        payload, options = _body(value)
        return await self.dtls_client.request(
            self.route, (LOOPBACK, self.thing_dtls.port), code, resource, payload, 10.0, **options
        )


def _body(value: Any) -> tuple[bytes, dict[str, Any]]:
    if value is None:
        return b"", {}
    return catalog.encode(value), {"content_format": catalog.CF_CBOR}


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path,
    *,
    tamper: bool = False,
    allowed_sources: tuple[str, ...] = (LOOPBACK,),
    pans: tuple[str, ...] = (f"{LOOPBACK}/128",),
    backend_sink: DatagramSink | None = None,
) -> AsyncIterator[Rig]:
    log = EventLog(logging.getLogger("proxy-test"))
    refusals: dict[str, int] = {}

    def refused(why: str) -> None:
        refusals[why] = refusals.get(why, 0) + 1

    # Manufacture: the thing's operation PSK (shared with the router) and the backend's PSK.
    thing_root, router_root, backend_root = (tmp_path / n for n in ("thing", "br", "backend"))
    thing_key, backend_key = creds.mint_psk(), creds.mint_psk()
    creds.write_psk(thing_root / OPERATION_PSK, thing_key)
    creds.write_psk(router_root / thing_psk("lamp"), thing_key)
    creds.write_psk(router_root / backend_psk("backend"), backend_key)
    creds.write_psk(backend_root / router_psk("br"), backend_key)

    # The thing: OSCORE server and the DTLS server for its proxy, one device behind both.
    thing_dir = contexts.write_context(tmp_path / "thing-ctx", grant(b"\x03", b"\x02"))
    backend_dir = contexts.write_context(tmp_path / "backend-ctx", grant(b"\x02", b"\x03"))
    device = physics.Luminaire("lamp")
    requests = RequestLog(ThingMetrics(CollectorRegistry(), {}))
    thing = ThingServer("luminaire", device, requests, {"backend": thing_dir}, (LOOPBACK, 0))
    await thing.start()
    assert thing.site is not None
    thing_dtls = ThingDtlsServer(
        thing.site, identity="br", material_root=thing_root, log=log, bind=(LOOPBACK, 0)
    )
    await thing_dtls.start()

    registry = CollectorRegistry()
    config = ProxyConfig(
        modes=(END_TO_END, HOP_BY_HOP),
        tamper=tamper,
        pans=pans,
        things={LOOPBACK: "lamp"},
        backends=("backend",),
        allowed_sources=allowed_sources,
    )
    proxy = CoapProxy(
        config,
        name="br",
        material_root=router_root,
        metrics=ProxyMetrics(registry),
        log=log,
        bind_host=LOOPBACK,
        ports={END_TO_END: 0, HOP_BY_HOP: 0},
    )
    await proxy.start()
    route = ProxyRoute(
        "br",
        pans,
        coap=f"[{LOOPBACK}]:{proxy.port(END_TO_END)}",
        coaps=f"[{LOOPBACK}]:{proxy.port(HOP_BY_HOP)}",
    )
    coap = await create_context(sink=backend_sink, loggername="backend-test")
    backend_context = contexts.PersistentContext(backend_dir, refused)
    dtls_client = DtlsProxyClient("backend", backend_root)
    dtls_client.pool.sink = backend_sink
    try:
        yield Rig(
            thing,
            thing_dtls,
            device,
            requests,
            proxy,
            registry,
            coap,
            backend_context,
            dtls_client,
            route,
            refusals,
        )
    finally:
        await dtls_client.close()
        await coap.shutdown()
        backend_context.close()
        await proxy.close()
        await thing_dtls.close()
        await thing.close()
