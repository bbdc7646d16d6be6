"""The things the backend talks to, each through its own OSCORE context on the state volume.

Contexts are aiocoap context directories (testbed.node.thing.contexts): the backend's sender
sequence number survives its restarts, so it never reuses a nonce, and the thing never sees
an old sequence number again (it would refuse it as a replay). ``contexts.json`` names the
current directory per thing serial; a new grant (re-keying) gets a new directory.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiocoap
from aiocoap import oscore
from aiocoap.transports.oscore import OSCOREAddress

from testbed.node.backend.directory import ThingEntry
from testbed.node.statefile import read_json, write_json_atomic
from testbed.node.thing import contexts
from testbed.node.thing.contexts import PersistentContext, RefusalHook

INDEX = "contexts.json"


@dataclass(frozen=True)
class Reply:
    code: str  # dotted, e.g. "2.05"
    payload: bytes
    protected: bool  # False: the thing answered without OSCORE (it has no context for us)
    latency_s: float

    @property
    def ok(self) -> bool:
        return self.code.startswith("2.")

    def diagnostic(self) -> str:
        """An error response's payload is a diagnostic text (RFC 7252 5.5.2)."""
        return "" if self.ok else self.payload.decode("utf-8", "replace")


async def protected_request(
    coap: aiocoap.Context,
    secctx: Any,
    uri: str,
    code: aiocoap.numbers.Code,
    payload: bytes = b"",
    timeout: float = 10.0,
    **options: Any,
) -> Reply:
    """One request through ``secctx`` (never unprotected, whatever the context's credentials)."""
    message = aiocoap.Message(code=code, uri=uri, payload=payload, **options)
    message.remote = OSCOREAddress(secctx, message.remote)
    started = time.monotonic()
    try:
        response = await asyncio.wait_for(coap.request(message).response, timeout)
    except oscore.NotAProtectedMessage as exc:
        plain = exc.plain_message
        return Reply(plain.code.dotted, plain.payload, False, time.monotonic() - started)
    return Reply(response.code.dotted, response.payload, True, time.monotonic() - started)


@dataclass
class ThingPeer:
    entry: ThingEntry
    context: PersistentContext
    last: dict[str, dict[str, Any]] = field(default_factory=dict)  # resource -> last read

    async def request(
        self,
        coap: aiocoap.Context,
        code: aiocoap.numbers.Code,
        resource: str,
        payload: bytes = b"",
        timeout: float = 10.0,
        **options: Any,
    ) -> Reply:
        uri = f"{self.entry.uri}/{resource.lstrip('/')}"
        return await protected_request(coap, self.context, uri, code, payload, timeout, **options)


def _dir_name(serial: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", serial) or "_"


class PeerContexts:
    """Opens (and on a new grant, first writes) the backend's context for a thing."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, entry: ThingEntry, on_refusal: RefusalHook | None = None) -> PersistentContext:
        index = read_json(self.root / INDEX) or {}
        current = index.get(entry.serial)
        directory = None if current is None else self.root / str(current)
        if directory is None or not contexts.holds(directory, entry.grant):
            per_thing = self.root / "oscore" / _dir_name(entry.serial)
            directory = contexts.write_context(per_thing, entry.grant)
            index[entry.serial] = str(directory.relative_to(self.root))
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_json_atomic(self.root / INDEX, index)
            contexts.remove_except(per_thing, {directory})
        return PersistentContext(directory, on_refusal)
