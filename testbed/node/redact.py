"""Keep secrets out of everything the node emits (logs, /state, metric labels).

Key material must never leave the node through an observation channel: the testbed is used to
study attacks, and logs and metrics are collected off-node. Rather than trusting every caller,
values are dropped by the *name* they travel under, and raw bytes are never rendered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

_SECRET_WORDS = frozenset(
    {
        "secret",
        "password",
        "passwd",
        "passphrase",
        "token",
        "psk",
        "private",
        "privkey",
        "credential",
        "credentials",
        "cookie",
        "authorization",
        "seed",
    }
)
# "key" alone is ambiguous: public keys and key identifiers are fine to show.
_KEY_OK = frozenset({"public", "pub", "id", "kid", "ids"})


def is_secret_name(name: str) -> bool:
    parts = set(re.split(r"[^a-z0-9]+", name.lower()))
    if parts & _SECRET_WORDS:
        return True
    return "key" in parts and not parts & _KEY_OK


def scrub(value: Any) -> Any:
    """A JSON-friendly copy of ``value`` with secret-named entries and raw bytes removed."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED if is_secret_name(str(k)) else scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        # Bytes in this code base are key material, nonces or ciphertext: show the size only.
        return f"<{len(value)} bytes>"
    return value
