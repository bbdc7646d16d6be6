"""The thing's resources over CoAP over DTLS (PSK), for its border router's hop-by-hop proxy.

Only a thing whose router offers the hop-by-hop proxy runs it (attribute
``operation-dtls-identity``: the router's name, the one PSK identity it accepts). The key is the
one minted at manufacture for the pair (``identity/operation.psk``, 0600, read-only); the
session is the proxy's, so the thing learns nothing about who asked through it: DTLS protects
each hop, not the request. The resources are the same objects the OSCORE server serves (same
device, same request counts), started and stopped with it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiocoap import resource

from testbed.contracts.proxy import COAPS_PORT, OPERATION_PSK
from testbed.node.dtls import credentials as creds
from testbed.node.dtls.coaps import CoapsSite
from testbed.node.dtls.endpoint import DtlsServer, ServerSession
from testbed.node.errors import ConfigError, ServeError
from testbed.node.logs import EventLog
from testbed.node.proxy import channels


class ThingDtlsServer:
    def __init__(
        self,
        site: resource.Site,
        *,
        identity: str,
        material_root: Path,
        log: EventLog,
        bind: tuple[str, int] = ("::", COAPS_PORT),
    ) -> None:
        self.site = site
        self.identity = identity
        self.material_root = material_root
        self.log = log
        self.bind = bind
        self.server: DtlsServer | None = None
        self.coaps: CoapsSite | None = None

    async def start(self) -> None:
        path = self.material_root / OPERATION_PSK
        try:
            psk = creds.read_psk(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"operation PSK unusable: {exc}",
                "testbed up mints identity/operation.psk for things behind a hop-by-hop proxy",
            ) from exc
        server = DtlsServer(
            channels.server_configuration({self.identity: psk}),
            on_established=self._established,
            on_data=self._data,
        )
        try:
            await server.start(self.bind)
        except OSError as exc:
            await server.close()
            host, port = self.bind
            raise ServeError(f"cannot serve CoAPS on [{host}]:{port}: {exc}") from exc
        self.server = server
        self.coaps = CoapsSite(server, self.site, (self.bind[0], server.port))

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def _established(self, session: ServerSession) -> None:
        self.log.info(
            "thing.dtls_session",
            peer=f"[{session.peer[0]}]:{session.peer[1]}",
            identity=session.psk_identity or self.identity,
        )

    def _data(self, session: ServerSession, data: bytes) -> None:
        if self.coaps is not None:
            self.coaps.on_data(session, data)

    async def close(self) -> None:
        if self.coaps is not None:
            await self.coaps.close()
            self.coaps = None
        if self.server is not None:
            await self.server.close()
            self.server = None
            # The socket closes in the next loop turn (asyncio's transport); serving again on
            # the same port right after (a re-serve) must find it free.
            await asyncio.sleep(0)
