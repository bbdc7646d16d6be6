"""The thing's CoAP resources, the count of what reached them, and the 4.01 guard before them.

``GuardedSite`` sits between aiocoap's OSCORE site wrapper and the resources: a request that
did not arrive through one of the granted OSCORE contexts is refused with 4.01 before any
resource (or the path lookup: an attacker learns nothing about which paths exist) sees it.
A replayed or forged OSCORE request never gets this far: the context refuses it while
unprotecting (``contexts.PersistentContext`` counts that). So the per-resource counts in
``RequestLog`` are exactly the requests a handler acted on, which is what a security test
compares before and after an attack.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import aiocoap
from aiocoap import error, interfaces, resource
from aiocoap.transports.oscore import OSCOREAddress

from testbed.node.thing import catalog, physics
from testbed.node.thing.catalog import ResourceSpec
from testbed.node.thing.metrics import ThingMetrics


class RequestLog:
    """Handled requests per (resource, method, code) and refusals per reason."""

    def __init__(self, metrics: ThingMetrics) -> None:
        self.metrics = metrics
        self.handled_counts: dict[str, dict[str, dict[str, int]]] = {}
        self.refused_counts: dict[str, int] = {}

    def handled(self, path: str, method: str, code: str) -> None:
        by_code = self.handled_counts.setdefault(path, {}).setdefault(method, {})
        by_code[code] = by_code.get(code, 0) + 1
        self.metrics.requests.labels(path, method, code).inc()

    def refused(self, reason: str) -> None:
        self.refused_counts[reason] = self.refused_counts.get(reason, 0) + 1
        self.metrics.refused.labels(reason).inc()

    def handled_total(self, path: str | None = None) -> int:
        counts = self.handled_counts
        paths = counts.values() if path is None else [counts.get(path, {})]
        return sum(n for methods in paths for codes in methods.values() for n in codes.values())

    def snapshot(self) -> dict[str, Any]:
        return {"handled": self.handled_counts, "refused": self.refused_counts}


class DeviceResource(resource.ObservableResource):  # type: ignore[misc]
    """One resource of the catalog, backed by the device model."""

    def __init__(self, spec: ResourceSpec, device: physics.Device, log: RequestLog) -> None:
        super().__init__()
        self.spec = spec
        self.device = device
        self.log = log
        # aiocoap renders an observed request again for each notification, with the same
        # request object: count a request once, not once per notification.
        self._counted: weakref.WeakSet[aiocoap.Message] = weakref.WeakSet()

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        first = request not in self._counted
        self._counted.add(request)
        method = request.code.name
        try:
            if method not in self.spec.methods:
                raise error.MethodNotAllowed()
            response: aiocoap.Message = await super().render(request)
        except error.RenderableError as exc:
            if first:
                self.log.handled(self.spec.path, method, exc.to_message().code.dotted)
            raise
        if first:
            self.log.handled(self.spec.path, method, response.code.dotted)
        return response

    def _content(self, value: Any, code: aiocoap.numbers.Code = aiocoap.CONTENT) -> aiocoap.Message:
        return aiocoap.Message(
            code=code, payload=catalog.encode(value), content_format=catalog.CF_CBOR
        )

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return self._content(self.device.read(self.spec.name))

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        if request.opt.content_format not in (None, catalog.CF_CBOR):
            raise error.UnsupportedContentFormat("CBOR (60) expected")
        try:
            value = self.device.write(self.spec.name, catalog.decode(request.payload))
        except physics.OutOfRange as exc:
            raise error.UnprocessableEntity(str(exc)) from exc
        except ValueError as exc:  # not CBOR, or physics.Invalid
            raise error.BadRequest(str(exc)) from exc
        if self.spec.observable:
            self.updated_state()
        return self._content(value, aiocoap.CHANGED)


class GuardedSite(interfaces.Resource):  # type: ignore[misc]
    """Passes on only requests that came through an allowed OSCORE context; 4.01 otherwise."""

    def __init__(
        self,
        inner: resource.Site,
        allowed: Callable[[], Iterable[Any]],
        log: RequestLog,
    ) -> None:
        self.inner = inner
        self._allowed = allowed  # the current contexts (they change on re-bootstrap)
        self.log = log

    def authorized(self, request: aiocoap.Message) -> bool:
        remote = request.remote
        if not isinstance(remote, OSCOREAddress):
            return False
        # A group request arrives through an aspect of the group context (one per sender).
        used = remote.security_context
        used = getattr(used, "groupcontext", used)
        return any(used is ctx for ctx in self._allowed())

    async def render_to_pipe(self, pipe: Any) -> None:
        if not self.authorized(pipe.request):
            self.log.refused("unprotected")
            raise error.Unauthorized("OSCORE with the thing's granted context required")
        await self.inner.render_to_pipe(pipe)

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        raise RuntimeError("GuardedSite renders through render_to_pipe only")

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False

    def get_resources_as_linkheader(self) -> Any:
        return self.inner.get_resources_as_linkheader()


def build_site(
    device_class: str, device: physics.Device, log: RequestLog
) -> tuple[resource.Site, list[DeviceResource]]:
    site = resource.Site()
    served = []
    for spec in catalog.resources(device_class):
        res = DeviceResource(spec, device, log)
        site.add_resource([spec.name], res)
        served.append(res)
    return site, served


async def notify_changes(resources: list[DeviceResource], interval_s: float = 1.0) -> None:
    """Send observe notifications when an observable value changed noticeably.

    Polling the model is the simplest honest way for values that drift with time; writes
    notify at once from ``render_put``.
    """
    observable = [r for r in resources if r.spec.observable]
    last: dict[str, Any] = {r.spec.name: None for r in observable}
    while True:
        for res in observable:
            with contextlib.suppress(KeyError):
                value = res.device.read(res.spec.name)
                if last[res.spec.name] is None or res.device.significant(
                    res.spec.name, last[res.spec.name], value
                ):
                    if last[res.spec.name] is not None:
                        res.updated_state()
                    last[res.spec.name] = value
        await asyncio.sleep(interval_s)
