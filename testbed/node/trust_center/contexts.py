"""The OSCORE contexts a thing shares with the backends, as the trust center allocates them.

Every thing gets a small index once, at its first enrollment, from a registry counter (never
reused). From it:

- sender IDs: the thing sends with ``2n``, the backend with ``2n + 1``, each as the shortest
  big-endian byte string. Distinct for every thing and for both directions, so a backend that
  holds the contexts of all things can find the right one by kid alone, and short (one byte for
  the first 127 things, as RFC 8613's examples assume).
- ID context: the deterministic CBOR of ``[n, generation]`` (3 bytes for small values).
  Unique per thing and generation, so a context of an older generation never matches a newer
  one, even by accident, and a backend can tell generations apart on the wire.

Master secret (16 bytes) and salt (8 bytes) are fresh random values for every generation; the
registry keeps them once per thing. Every backend of the domain gets its *own* context with the
thing (``for_backend``): its master secret is derived from the stored one with HKDF-SHA256 and
the backend's name, and its sender ID is ``2n + 1`` followed by the backend's slot (its place in
the sorted names; nothing appended for the first). Two backends never share a sender ID under
one key: if they did, both would count sequence numbers from zero and reuse AES-CCM nonces
(RFC 8613 Section 7.2 forbids it), and the thing's replay window would refuse one of them.

The domain's group context (purpose ``group``) is one random master secret, salt and group id
(the ID Context, 4 random bytes) per domain, kept in the registry. Each member sends in the
group with its own thing sender ID (``2n``); the recipient ID ``GROUP_COMMANDER_ID`` (0x00,
never a thing's ID) names the party that sends group commands (the backend; a domain's
backends get ``commander_id(slot)``). Members accept only Group OSCORE group-mode requests
signed by a commander (their grant carries the commanders' CCS, testbed.node.coap.group): with
a shared secret alone any member could forge a command to another member. When a member
is revoked (decommissioned, or transferred to another domain), the registry replaces the group
key with a fresh one, generation + 1; the remaining members receive it with their next contexts
(key renewal or bootstrap), so a member that left cannot read what is sent under the new one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from testbed.node import enrollment_api as api
from testbed.node.enrollment_api import OscoreContextGrant

PURPOSE_BACKEND = api.PURPOSE_BACKEND
PURPOSE_GROUP = api.PURPOSE_GROUP
GROUP_ID_BYTES = 4
GROUP_COMMANDER_ID = b"\x00"
MASTER_SECRET_BYTES = 16
MASTER_SALT_BYTES = 8


def _short(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


@dataclass(frozen=True)
class ContextIds:
    thing_id: bytes  # the thing's sender ID = the backend's recipient ID
    backend_id: bytes  # the backend's sender ID = the thing's recipient ID


def ids_for(index: int) -> ContextIds:
    if index < 1:
        raise ValueError("OSCORE context indexes start at 1")
    return ContextIds(_short(2 * index), _short(2 * index + 1))


def id_context(index: int, generation: int) -> bytes:
    return cbor2.dumps([index, generation], canonical=True)


def fresh_keys() -> tuple[bytes, bytes]:
    """(master secret, master salt) for a new generation."""
    return secrets.token_bytes(MASTER_SECRET_BYTES), secrets.token_bytes(MASTER_SALT_BYTES)


def thing_view(
    index: int, generation: int, master_secret: bytes, master_salt: bytes
) -> OscoreContextGrant:
    """The context as the thing uses it; ``.mirrored()`` is the backend's."""
    ids = ids_for(index)
    return OscoreContextGrant(
        purpose=PURPOSE_BACKEND,
        sender_id=ids.thing_id,
        recipient_id=ids.backend_id,
        master_secret=master_secret,
        master_salt=master_salt,
        id_context=id_context(index, generation),
        generation=generation,
    )


MAX_BACKENDS = 256  # the slot is one byte


def for_backend(thing_grant: OscoreContextGrant, backend: str, slot: int) -> OscoreContextGrant:
    """The thing's view of its context with one backend, from the stored per-thing context."""
    if not 0 <= slot < MAX_BACKENDS:
        raise ValueError(f"backend slot {slot} outside 0..{MAX_BACKENDS - 1}")
    secret = HKDF(
        algorithm=hashes.SHA256(),
        length=MASTER_SECRET_BYTES,
        salt=thing_grant.master_salt,
        info=b"testbed oscore backend context " + backend.encode(),
    ).derive(thing_grant.master_secret)
    backend_id = thing_grant.recipient_id + (bytes([slot]) if slot else b"")
    return replace(
        thing_grant,
        purpose=api.backend_purpose(backend),
        recipient_id=backend_id,
        master_secret=secret,
    )


def backend_slots(names: list[str] | set[str] | frozenset[str]) -> dict[str, int]:
    """Each backend's slot: its place among the domain's backend names, sorted."""
    return {name: slot for slot, name in enumerate(sorted(names))}


def fresh_group() -> tuple[bytes, bytes, bytes]:
    """(group id, master secret, master salt) of a new group key."""
    return (
        secrets.token_bytes(GROUP_ID_BYTES),
        secrets.token_bytes(MASTER_SECRET_BYTES),
        secrets.token_bytes(MASTER_SALT_BYTES),
    )


def commander_id(slot: int) -> bytes:
    """The group sender ID of the backend in ``slot``: 0x00, then 0x00 + slot. A thing's ID is
    the shortest encoding of 2n >= 2 and never starts with a zero byte, so they never meet."""
    if not 0 <= slot < MAX_BACKENDS:
        raise ValueError(f"backend slot {slot} outside 0..{MAX_BACKENDS - 1}")
    return GROUP_COMMANDER_ID + (bytes([slot]) if slot else b"")


def group_view(
    thing_sender_id: bytes,
    group_id: bytes,
    master_secret: bytes,
    master_salt: bytes,
    generation: int,
    commanders: dict[bytes, bytes] | None = None,
    manager_credential: bytes | None = None,
) -> OscoreContextGrant:
    """A member's view of the domain's group context; ``commanders`` (group sender ID -> CCS)
    are the backends whose signed group requests it accepts (testbed.node.coap.group)."""
    return OscoreContextGrant(
        purpose=PURPOSE_GROUP,
        sender_id=thing_sender_id,
        recipient_id=GROUP_COMMANDER_ID,
        master_secret=master_secret,
        master_salt=master_salt,
        id_context=group_id,
        generation=generation,
        peers=tuple(sorted((commanders or {}).items())),
        manager_credential=manager_credential,
    )


def commander_view(
    slot: int,
    group_id: bytes,
    master_secret: bytes,
    master_salt: bytes,
    generation: int,
    manager_credential: bytes,
) -> OscoreContextGrant:
    """A backend's view of the group context: it sends signed group requests as
    ``commander_id(slot)`` and accepts nothing in the group (requests carry No-Response)."""
    return OscoreContextGrant(
        purpose=PURPOSE_GROUP,
        sender_id=commander_id(slot),
        recipient_id=b"",
        master_secret=master_secret,
        master_salt=master_salt,
        id_context=group_id,
        generation=generation,
        manager_credential=manager_credential,
    )
