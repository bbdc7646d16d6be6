"""The OSCORE context a thing shares with the backend, as the trust center allocates it.

Every thing gets a small index once, at its first enrollment, from a registry counter (never
reused). From it:

- sender IDs: the thing sends with ``2n``, the backend with ``2n + 1``, each as the shortest
  big-endian byte string. Distinct for every thing and for both directions, so a backend that
  holds the contexts of all things can find the right one by kid alone, and short (one byte for
  the first 127 things, as RFC 8613's examples assume).
- ID context: the deterministic CBOR of ``[n, generation]`` (3 bytes for small values).
  Unique per thing and generation, so a context of an older generation never matches a newer
  one, even by accident, and a backend can tell generations apart on the wire.

Master secret (16 bytes) and salt (8 bytes) are fresh random values for every generation.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import cbor2

from testbed.node.enrollment_api import OscoreContextGrant

PURPOSE_BACKEND = "backend"
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
