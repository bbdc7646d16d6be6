"""The things the backend talks to, each through its own OSCORE context on the state volume.

Contexts are aiocoap context directories (testbed.node.thing.contexts): the backend's sender
sequence number survives its restarts, so it never reuses a nonce, and the thing never sees
an old sequence number again (it would refuse it as a replay). ``contexts.json`` names the
current directory per (domain, serial); a new grant (re-keying) gets a new directory, and a
key once used never gets a fresh one (``PeerContexts``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiocoap
from aiocoap import oscore
from aiocoap.transports.oscore import OSCOREAddress

from testbed.node.backend.directory import ThingEntry
from testbed.node.enrollment_api import OscoreContextGrant
from testbed.node.errors import StateError
from testbed.node.statefile import read_json, write_json_atomic
from testbed.node.thing import contexts
from testbed.node.thing.contexts import PersistentContext, RefusalHook

INDEX = "contexts.json"
USED_KEYS = "used-keys.json"


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


PeerKey = tuple[str, str]  # (domain, serial)


@dataclass
class ThingPeer:
    entry: ThingEntry
    context: PersistentContext
    last: dict[str, dict[str, Any]] = field(default_factory=dict)  # resource -> last read

    @property
    def key(self) -> PeerKey:
        return (self.entry.domain, self.entry.serial)

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


def key_fingerprint(grant: OscoreContextGrant) -> str:
    """What identifies an AES-CCM key and nonce space: secret, salt, IDs, ID context."""
    digest = hashlib.sha256()
    for part in (
        grant.master_secret,
        grant.master_salt,
        grant.sender_id,
        grant.recipient_id,
        grant.id_context or b"",
    ):
        digest.update(len(part).to_bytes(2, "big") + part)
    return digest.hexdigest()


class PeerContexts:
    """Opens (and on a new grant, first writes) the backend's context for a thing.

    Contexts are kept per (domain, serial, generation): two trust centers that list the same
    serial each get their own directory, and neither poll replaces the other's. A new
    directory starts its sender sequence number at 0, which is safe only under a key never
    used before; so every key this backend ever wrote a context for is in a ledger
    (``used-keys.json``, written before the context), and a grant whose key is in the ledger
    but whose directory is gone (superseded and deleted) is refused rather than started again
    at sequence number 0 (that would reuse AES-CCM nonces).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, entry: ThingEntry, on_refusal: RefusalHook | None = None) -> PersistentContext:
        index = read_json(self.root / INDEX) or {}
        key = f"{entry.domain}/{entry.serial}"
        directory = _current(self.root, index, key, entry)
        if directory is None:
            fingerprint = key_fingerprint(entry.grant)
            used = read_json(self.root / USED_KEYS) or {}
            if fingerprint in used:
                raise StateError(
                    f"the context {entry.domain} grants for {entry.serial} (generation"
                    f" {entry.grant.generation}) uses a key this backend has sent under before,"
                    " and its sequence state is gone",
                    "starting it again at sequence number 0 would reuse nonces; the trust"
                    " center must grant a fresh key (re-key the thing)",
                )
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            used[fingerprint] = key
            write_json_atomic(self.root / USED_KEYS, used)  # before the key is ever used
            per_thing = self.root / "oscore" / _dir_name(entry.domain) / _dir_name(entry.serial)
            directory = contexts.write_context(per_thing, entry.grant)
            index[key] = str(directory.relative_to(self.root))
            index.pop(entry.serial, None)  # a serial-only entry of an older backend
            write_json_atomic(self.root / INDEX, index)
            contexts.remove_except(per_thing, {directory})
        return PersistentContext(directory, on_refusal)


def _current(root: Path, index: dict[str, Any], key: str, entry: ThingEntry) -> Path | None:
    """The directory that holds this grant: the index's entry for (domain, serial), or the
    serial-only entry an older backend wrote, if it holds exactly this grant."""
    for name in (key, entry.serial):
        current = index.get(name)
        if current is not None and contexts.holds(root / str(current), entry.grant):
            return root / str(current)
    return None


def find_peers(peers: dict[PeerKey, ThingPeer], thing: str, domain: Any = None) -> list[ThingPeer]:
    """The peers a control action means by ``thing``: its serial, or its name (a label that
    two domains may both list), optionally restricted to ``domain``."""
    return [
        p
        for p in peers.values()
        if thing in (p.entry.serial, p.entry.name) and domain in (None, p.entry.domain)
    ]


def labelled(peers: dict[PeerKey, ThingPeer]) -> list[tuple[str, ThingPeer]]:
    """Peers under their name where it is unique, else "domain/name" for each of them."""
    counts: dict[str, int] = {}
    for peer in peers.values():
        counts[peer.entry.name] = counts.get(peer.entry.name, 0) + 1
    out = [
        (p.entry.name if counts[p.entry.name] == 1 else f"{p.entry.domain}/{p.entry.name}", p)
        for p in peers.values()
    ]
    return sorted(out, key=lambda item: item[0])
