"""The thing's CoAP server: its resources, reachable only through the granted OSCORE contexts.

aiocoap's ``OscoreSiteWrapper`` unprotects requests with the pre-shared contexts (replay
window included) and passes plain requests through unchanged; ``resources.GuardedSite`` then
refuses everything that did not come through one of those contexts with 4.01. The thing runs
no EDHOC responder: an EDHOC request finds no identity here and gets 4.04. With a group
context (``thing.group_member``) the socket also joins the PAN's All CoAP Nodes group and
accepts commanders' signed group requests; ``QuietGroupSite`` keeps it silent towards them.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiocoap
from aiocoap.credentials import CredentialsMap
from aiocoap.oscore_sitewrapper import OscoreSiteWrapper

from testbed.node.coap.transport import bound_port, create_context
from testbed.node.errors import ServeError
from testbed.node.thing import physics
from testbed.node.thing.contexts import PersistentContext
from testbed.node.thing.group_member import QuietGroupSite
from testbed.node.thing.resources import GuardedSite, RequestLog, build_site, notify_changes


class ThingServer:
    def __init__(
        self,
        device_class: str,
        device: physics.Device,
        log: RequestLog,
        context_dirs: dict[str, Path],
        bind: tuple[str, int],
        group: Any | None = None,
        multicast: list[tuple[str, str]] | None = None,
    ) -> None:
        self.device_class = device_class
        self.device = device
        self.log = log
        self.context_dirs = context_dirs
        self.bind = bind
        # The group context (coap.group, receiving commanders' signed requests) and the
        # (group address, interface) pairs the socket joins for it.
        self.group = group
        self.multicast = multicast or []
        self.contexts: dict[str, PersistentContext] = {}
        self._coap: aiocoap.Context | None = None
        self.site: aiocoap.resource.Site | None = None  # the resources, unguarded (DTLS serves it)
        self._notifier: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for purpose, directory in self.context_dirs.items():
            self.contexts[purpose] = PersistentContext(directory, self.log.refused)
        credentials = CredentialsMap()
        for purpose, ctx in self.contexts.items():
            credentials[f":{purpose}"] = ctx
        if self.group is not None:
            credentials[":group"] = self.group
        site, resources = build_site(self.device_class, self.device, self.log)
        self.site = site
        guarded = GuardedSite(site, self._allowed, self.log)
        try:
            self._coap = await create_context(
                site=QuietGroupSite(OscoreSiteWrapper(guarded, credentials)),
                bind=self.bind,
                loggername="thing",
                multicast=self.multicast if self.group is not None else None,
            )
        except OSError as exc:
            self._close_contexts()
            host, port = self.bind
            raise ServeError(
                f"cannot serve CoAP on [{host}]:{port}: {exc.strerror or exc}",
                "another process holds the port; check attributes coap-bind and coap-port",
            ) from exc
        except BaseException:
            self._close_contexts()
            raise
        self._notifier = asyncio.create_task(notify_changes(resources), name="thing:notify")

    def _allowed(self) -> list[Any]:
        group = [] if self.group is None else [self.group]
        return [*self.contexts.values(), *group]

    @property
    def port(self) -> int:
        if self._coap is None:
            raise RuntimeError("server not started")
        return bound_port(self._coap)

    @property
    def serving(self) -> bool:
        return self._coap is not None

    async def close(self) -> None:
        if self._notifier is not None:
            self._notifier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notifier
            self._notifier = None
        if self._coap is not None:
            with contextlib.suppress(Exception):
                await self._coap.shutdown()
            self._coap = None
        self._close_contexts()

    def _close_contexts(self) -> None:
        # After the socket is gone: nothing can race the final write of the replay window.
        for ctx in self.contexts.values():
            ctx.close()
        self.contexts.clear()
