"""The backend: polls its trust centers for operational things and reads them end to end.

Every ``poll_interval`` (2 s) it asks each trust center for GET /things; every
``read_interval`` (5 s) it reads every GET resource of every listed thing's device class, each
thing through the OSCORE context the trust center granted for it. A thing that leaves the
listing (revoked, decommissioned) is no longer read and its context is closed.

Errors of one poll or one read are measured and logged, never fatal: a backend under a lossy
link or a thing under attack is exactly what experiments look at.

The ``read`` and ``write`` actions (``request``) do not wait for the next poll when the thing
says it does not know our context (an unprotected 4.01 or 4.00: re-keyed, re-bootstrapped,
transferred):
they ask the trust center at once and, if it lists a new generation, send the request again
through it, once. A thing that is no longer listed is reported as such, never retried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiocoap
from aiocoap import error

from testbed.contracts.proxy import COAPS_PORT, ProxyRoute
from testbed.node.backend import probes
from testbed.node.backend.directory import ListingError, ThingEntry, TrustCenterDirectory
from testbed.node.backend.group import GroupCommander
from testbed.node.backend.metrics import BackendMetrics, outcome_of
from testbed.node.backend.peers import (
    PeerContexts,
    PeerKey,
    Reply,
    ThingPeer,
    find_peers,
    labelled,
)
from testbed.node.backend.proxied import (
    VIA_PROXY,
    VIAS,
    DtlsProxyClient,
    IntegrityFailure,
    oscore_via_proxy,
)
from testbed.node.coap.errors import ChannelError, CredentialError
from testbed.node.coap.transport import create_context
from testbed.node.errors import ActionError, StateError
from testbed.node.logs import EventLog
from testbed.node.thing import catalog

Spawn = Callable[[Coroutine[Any, Any, None], str], Any]
# What a request to a thing or a trust center can end in besides an answer.
_TRANSPORT_ERRORS = (TimeoutError, ChannelError, error.Error, OSError)


class Backend:
    def __init__(
        self,
        *,
        trust_centers: dict[str, str],
        material_root: Path,
        state_dir: Path,
        metrics: BackendMetrics,
        log: EventLog,
        poll_interval: float = 2.0,
        read_interval: float = 5.0,
        timeout: float = 10.0,
        proxies: list[ProxyRoute] | None = None,
        name: str = "backend",
    ) -> None:
        self.trust_centers = trust_centers
        self.material_root = material_root
        self.contexts = PeerContexts(state_dir / "backend")
        self.metrics = metrics
        self.log = log
        self.poll_interval = poll_interval
        self.read_interval = read_interval
        self.timeout = timeout
        self.directories: dict[str, TrustCenterDirectory] = {}
        # By (domain, serial): the serial is what the trust center authenticated, the domain
        # whose trust center listed it. A name is only a label (two domains may list one).
        self.peers: dict[PeerKey, ThingPeer] = {}
        self.polled: dict[str, dict[str, Any]] = {}  # domain -> last poll outcome
        self.refusals: dict[str, int] = {}  # responses our contexts refused to unprotect
        self.coap: aiocoap.Context | None = None
        # Border routers' CoAP proxies (testbed.node.proxy) and the DTLS sessions to them.
        self.proxies = proxies or []
        self.dtls_proxy = (
            DtlsProxyClient(name, material_root) if any(r.coaps for r in self.proxies) else None
        )
        self.commander = GroupCommander(material_root)

    async def start(self, spawn: Spawn) -> None:
        """Load credentials (CredentialError for unusable files) and start the loops."""
        for domain, uri in self.trust_centers.items():
            self.directories[domain] = await TrustCenterDirectory.connect(
                domain, uri, self.material_root
            )
        self.coap = await create_context(loggername="backend")
        for domain in self.directories:
            spawn(self._poll_loop(domain), f"poll-{domain}")
        spawn(self._read_loop(), "read")

    async def stop(self) -> None:
        for directory in self.directories.values():
            await directory.close()
        if self.coap is not None:
            await self.coap.shutdown()
            self.coap = None
        for peer in self.peers.values():
            peer.context.close()
        self.peers.clear()
        if self.dtls_proxy is not None:
            await self.dtls_proxy.close()

    # -- polling ------------------------------------------------------------------------------

    async def _poll_loop(self, domain: str) -> None:
        while True:
            await self.poll(domain)
            await asyncio.sleep(self.poll_interval)

    async def poll(self, domain: str) -> None:
        directory = self.directories[domain]
        # Not asyncio.wait_for: it waits for the cancelled request to finish, and an EDHOC
        # exchange started while the trust center was not serving yet could swallow the
        # cancellation and hold the poll loop forever. Give up on it and reconnect instead.
        listing = asyncio.ensure_future(directory.things())
        listing.add_done_callback(_consume)
        done, _ = await asyncio.wait({listing}, timeout=self.timeout)
        try:
            if not done:
                listing.cancel()
                raise TimeoutError(f"no listing from {domain} within {self.timeout} s")
            things = listing.result()
        except (*_TRANSPORT_ERRORS, ListingError) as exc:
            self.metrics.polls.labels(domain, "error").inc()
            if self.polled.get(domain, {}).get("ok", True):  # log the change, not every poll
                self.log.warning("backend.poll_failed", domain=domain, error=repr(exc))
            self.polled[domain] = {"ok": False, "at": time.time(), "error": repr(exc)}
            if not isinstance(exc, ListingError):
                await self._reconnect(domain)
            return
        self.metrics.polls.labels(domain, "ok").inc()
        self.metrics.things.labels(domain).set(len(things))
        self.polled[domain] = {"ok": True, "at": time.time(), "things": len(things)}
        self.commander.update(domain, directory.group)
        self._update(domain, things)

    async def _reconnect(self, domain: str) -> None:
        """A fresh channel to the trust center; the old one is closed in the background."""
        old = self.directories[domain]
        try:
            self.directories[domain] = await TrustCenterDirectory.connect(
                domain, self.trust_centers[domain], self.material_root
            )
        except (*_TRANSPORT_ERRORS, CredentialError) as exc:
            self.log.warning("backend.reconnect_failed", domain=domain, error=repr(exc))
            return
        closing = asyncio.ensure_future(asyncio.wait_for(old.close(), self.timeout))
        closing.add_done_callback(_consume)

    def _update(self, domain: str, things: list[ThingEntry]) -> None:
        listed = {(domain, t.serial): t for t in things}
        for key, gone in list(self.peers.items()):
            if gone.entry.domain == domain and key not in listed:
                self.log.info("backend.thing_gone", thing=gone.entry.name, domain=domain)
                gone.context.close()
                del self.peers[key]
        for key, entry in listed.items():
            name = entry.name
            peer = self.peers.get(key)
            if peer is not None and peer.entry == entry:
                continue
            if peer is not None and peer.entry.grant == entry.grant:
                peer.entry = entry  # moved (address), same context
                continue
            if peer is not None:
                peer.context.close()  # re-keyed: the old generation is dead
            try:
                context = self.contexts.open(entry, self._refused)
            except StateError as exc:
                self.peers.pop(key, None)
                self._refused("key-reuse")  # shown in /state refused_responses
                self.log.error("backend.context_refused", thing=name, domain=domain, error=str(exc))
                continue
            self.peers[key] = ThingPeer(entry, context, {} if peer is None else peer.last)
            self.log.info(
                "backend.thing_added",
                thing=name,
                domain=domain,
                address=entry.address,
                generation=entry.grant.generation,
            )

    def _refused(self, why: str) -> None:
        self.refusals[why] = self.refusals.get(why, 0) + 1
        self.metrics.refused_responses.labels(why).inc()

    # -- reading ------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        # Each thing on its own clock, starting when it first appears in a listing: a freshly
        # commissioned thing is read at once, not at the next round of the others.
        due: dict[PeerKey, float] = {}
        tick = min(self.read_interval, 0.25)
        while True:
            now = time.monotonic()
            ready = [p for k, p in self.peers.items() if due.setdefault(k, now) <= now]
            for peer in ready:
                due[peer.key] = now + self.read_interval
            for key in set(due) - set(self.peers):
                del due[key]
            await asyncio.gather(*(self._read_thing(p) for p in ready))
            await asyncio.sleep(tick)

    async def _read_thing(self, peer: ThingPeer) -> None:
        for resource in catalog.readable(peer.entry.device_class):
            try:
                await self.read(peer, resource)
            except Exception as exc:  # one odd read must not end the measurement
                name = peer.entry.name
                self.log.warning(
                    "backend.read_crashed", thing=name, resource=resource, error=repr(exc)
                )

    async def read(self, peer: ThingPeer, resource: str) -> dict[str, Any]:
        return await self._exchange(peer, aiocoap.GET, resource)

    async def request(
        self, peer: ThingPeer, resource: str, value: Any = None, *, write: bool = False
    ) -> dict[str, Any]:
        """A read or write for a control action: re-polls and retries once on a stale context."""
        result = await (self.write(peer, resource, value) if write else self.read(peer, resource))
        # Unprotected 4.01 (no such context) or 4.00 (it does not decrypt: same IDs under a
        # new secret) means the thing holds other keys than ours now.
        if result["code"] in ("4.00", "4.01") and result["protected"] is False:
            await self.poll(peer.entry.domain)
            fresh = self.peers.get(peer.key)
            result["stale_context"] = True
            if fresh is None:
                result["listed"] = False
            elif fresh.entry.grant != peer.entry.grant:
                retried = await (
                    self.write(fresh, resource, value) if write else self.read(fresh, resource)
                )
                result = {**retried, "stale_context": True, "retried": True}
                peer = fresh
        result["generation"] = peer.entry.grant.generation
        return result

    async def write(self, peer: ThingPeer, resource: str, value: Any) -> dict[str, Any]:
        return await self._exchange(
            peer, aiocoap.PUT, resource, catalog.encode(value), content_format=catalog.CF_CBOR
        )

    async def _exchange(
        self,
        peer: ThingPeer,
        code: aiocoap.numbers.Code,
        resource: str,
        payload: bytes = b"",
        **options: Any,
    ) -> dict[str, Any]:
        assert self.coap is not None
        reply: Reply | None = None
        failure = None
        try:
            reply = await peer.request(self.coap, code, resource, payload, self.timeout, **options)
        except (TimeoutError, error.TimeoutError):  # ours, or CoAP gave up retransmitting
            failure = "timeout"
        except (error.NetworkError, OSError):
            failure = "unreachable"
        except (ChannelError, error.Error) as exc:
            failure = "error"
            self.log.warning("backend.request_failed", thing=peer.entry.name, error=repr(exc))
        outcome = failure or outcome_of(reply.code if reply else None)
        result: dict[str, Any] = {
            "thing": peer.entry.name,
            "resource": resource,
            "method": code.name,
            "outcome": outcome,
            "code": None if reply is None else reply.code,
            "protected": None if reply is None else reply.protected,
            "latency_s": None if reply is None else round(reply.latency_s, 6),
            "at": time.time(),
        }
        if reply is not None:
            self.metrics.latency.labels(peer.entry.device_class).observe(reply.latency_s)
            if reply.ok:
                result["value"] = _value(reply.payload)
            else:
                result["diagnostic"] = reply.diagnostic()
        if code == aiocoap.GET:
            self.metrics.reads.labels(peer.entry.name, resource, outcome).inc()
            peer.last[resource] = result
        return result

    # -- through a border router's proxy ------------------------------------------------------

    def proxy_route(self, peer: ThingPeer, via: str) -> ProxyRoute:
        if via not in VIAS:
            raise ActionError(f"unknown via {via!r}", "one of: " + ", ".join(VIAS))
        for route in self.proxies:
            if route.serves(peer.entry.address) and (
                route.coap if via == VIA_PROXY else route.coaps
            ):
                return route
        raise ActionError(
            f"no {via} route to {peer.entry.name}",
            "give the thing's border router a proxy with that mode in the topology",
        )

    async def proxied(
        self, peer: ThingPeer, resource: str, via: str, value: Any = None, *, write: bool = False
    ) -> dict[str, Any]:
        """A read or write through the proxy: ``via`` proxy (OSCORE end to end) or
        proxy-dtls (DTLS hop by hop)."""
        assert self.coap is not None
        route = self.proxy_route(peer, via)
        code = aiocoap.PUT if write else aiocoap.GET
        payload = catalog.encode(value) if write else b""
        options = {"content_format": catalog.CF_CBOR} if write else {}
        reply: Reply | None = None
        failure = None
        try:
            if via == VIA_PROXY:
                assert route.coap is not None
                reply = await oscore_via_proxy(
                    self.coap,
                    peer.context,
                    route.coap,
                    (peer.entry.address, peer.entry.port),
                    code,
                    resource,
                    payload,
                    self.timeout,
                    **options,
                )
            else:
                assert self.dtls_proxy is not None
                reply = await self.dtls_proxy.request(
                    route,
                    (peer.entry.address, COAPS_PORT),
                    code,
                    resource,
                    payload,
                    self.timeout,
                    **options,
                )
        except IntegrityFailure:
            failure = "integrity-failure"
        except (TimeoutError, error.TimeoutError):
            failure = "timeout"
        except (*_TRANSPORT_ERRORS, ValueError) as exc:
            failure = "error"
            self.log.warning("backend.proxied_failed", thing=peer.entry.name, error=repr(exc))
        result: dict[str, Any] = {
            "thing": peer.entry.name,
            "resource": resource,
            "method": code.name,
            "via": via,
            "proxy": route.router,
            "outcome": failure or outcome_of(reply.code if reply else None),
            "code": None if reply is None else reply.code,
            "protected": None if reply is None else reply.protected,
            "latency_s": None if reply is None else round(reply.latency_s, 6),
            "at": time.time(),
        }
        self.metrics.proxied.labels(via, code.name, result["outcome"]).inc()
        if reply is not None:
            self.metrics.proxied_latency.labels(via).observe(reply.latency_s)
            if reply.ok:
                result["value"] = _value(reply.payload)
            else:
                result["diagnostic"] = reply.diagnostic()
        return result

    # -- control actions ----------------------------------------------------------------------

    async def peer(self, params: dict[str, Any]) -> tuple[ThingPeer, str]:
        name, resource = params.get("thing"), params.get("resource")
        domain = params.get("domain")
        if not isinstance(name, str) or not isinstance(resource, str):
            raise ActionError(
                "parameters 'thing' and 'resource' are required",
                '{"thing": "thermostat-01", "resource": "temperature"}',
            )
        found = find_peers(self.peers, name, domain)
        if not found:
            # Commissioned since the last poll (`testbed up` has just said so, and the next
            # poll is up to poll_interval away): ask the trust centers now, then decide.
            await asyncio.gather(*(self.poll(domain) for domain in self.directories))
            found = find_peers(self.peers, name, domain)
        if not found:
            known = ", ".join(sorted({p.entry.name for p in self.peers.values()})) or "none yet"
            raise ActionError(f"no operational thing {name!r} listed", f"known: {known}")
        if len(found) > 1:
            where = ", ".join(f"{p.entry.domain}/{p.entry.serial}" for p in found)
            raise ActionError(
                f"{len(found)} things are listed as {name!r}: {where}",
                "add 'domain', or name the thing by its serial",
            )
        return found[0], resource.lstrip("/")

    async def probe_unprotected(self, peer: ThingPeer, resource: str) -> dict[str, Any]:
        assert self.coap is not None
        try:
            reply = await probes.probe_unprotected(
                self.coap, f"{peer.entry.uri}/{resource}", self.timeout
            )
        except TimeoutError:
            return {"thing": peer.entry.name, "resource": resource, "code": None}
        return {
            "thing": peer.entry.name,
            "resource": resource,
            "code": reply.code,
            "diagnostic": reply.diagnostic(),
            "latency_s": round(reply.latency_s, 6),
        }

    async def probe_replay(self, peer: ThingPeer, resource: str) -> dict[str, Any]:
        result = await probes.probe_replay(peer, resource, self.timeout)
        return {"thing": peer.entry.name, "resource": resource, **result}

    def state(self) -> dict[str, Any]:
        return {
            "trust_centers": {
                d: {"uri": self.trust_centers[d], **self.polled.get(d, {})}
                for d in self.trust_centers
            },
            "things": {
                label: {
                    "name": p.entry.name,
                    "domain": p.entry.domain,
                    "serial": p.entry.serial,
                    "address": p.entry.address,
                    "port": p.entry.port,
                    "device_class": p.entry.device_class,
                    "generation": p.entry.grant.generation,
                    "last": p.last,
                }
                for label, p in labelled(self.peers)
            },
            "refused_responses": self.refusals,
            "group": self.commander.snapshot(),
        }


def _value(payload: bytes) -> Any:
    try:
        return catalog.decode(payload) if payload else None
    except ValueError:
        return {"undecodable": payload.hex()}


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a request we gave up on, so asyncio does not log it."""
    if not task.cancelled():
        task.exception()
