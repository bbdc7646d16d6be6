"""The registry's tables and the rows read from them (see ``registry`` for the why).

Version 3. ``SCHEMA`` is applied statement by statement inside the creating transaction;
``UPGRADES[n]`` takes a registry of version n to n + 1 (in the opening transaction).

    1 -> 2   group_keys: the domain's OSCORE group key (one row)
    2 -> 3   things_name: a thing's name is unique in the domain (duplicates an older
             registry holds fall back to their serials first)
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from testbed.node.enrollment_api import OscoreContextGrant
from testbed.node.trust_center import contexts

SCHEMA_VERSION = 3
STATES = ("imported", "enrolled", "refused", "revoked")
IMPORTED, ENROLLED, REFUSED, REVOKED = STATES
SUPERSEDED = "superseded"  # CRL reason of a certificate a newer enrollment replaced

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE things (
    serial TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    vendor TEXT NOT NULL,
    model TEXT NOT NULL,
    device_class TEXT,
    kid BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('imported', 'enrolled', 'refused', 'revoked')),
    address TEXT,
    port INTEGER,
    ldevid_serial INTEGER,
    oscore_index INTEGER UNIQUE,
    oscore_generation INTEGER NOT NULL DEFAULT 0,
    oscore_sender_id BLOB,
    oscore_recipient_id BLOB,
    oscore_id_context BLOB,
    oscore_master_secret BLOB,
    oscore_master_salt BLOB,
    enrollments INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX things_kid ON things (kid);
CREATE INDEX things_state ON things (state);
CREATE TABLE certificates (
    serial INTEGER PRIMARY KEY,
    thing TEXT NOT NULL REFERENCES things (serial),
    issued_at REAL NOT NULL,
    not_after REAL NOT NULL,
    revoked_at REAL,
    revocation_reason TEXT,
    der BLOB NOT NULL
);
CREATE INDEX certificates_thing ON certificates (thing);
CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE TABLE refusals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kid BLOB,
    serial TEXT,
    vendor TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE bootstraps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    thing TEXT,
    kid BLOB,
    resource TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration_s REAL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    datagrams_in INTEGER NOT NULL,
    datagrams_out INTEGER NOT NULL,
    retransmissions INTEGER NOT NULL,
    messages TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT
);
"""

# One row (id 1): the domain's group key, created the first time a thing asks for its contexts,
# replaced (generation + 1) when a member is revoked (Registry.revoke).
GROUP_KEYS_TABLE = """
CREATE TABLE group_keys (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    group_id BLOB NOT NULL,
    master_secret BLOB NOT NULL,
    master_salt BLOB NOT NULL,
    generation INTEGER NOT NULL,
    created_at REAL NOT NULL
)
"""
SCHEMA += GROUP_KEYS_TABLE + ";\n"
# A name is what backends and operators address a thing by: one thing per name (see naming).
UNIQUE_NAMES = "CREATE UNIQUE INDEX IF NOT EXISTS things_name ON things (name)"
SCHEMA += UNIQUE_NAMES + ";\n"
UPGRADES = {
    1: (GROUP_KEYS_TABLE,),
    2: (
        "UPDATE things SET name = serial WHERE name IN"
        " (SELECT name FROM things GROUP BY name HAVING count(*) > 1)",
        UNIQUE_NAMES,
    ),
}

THING_COLUMNS = (
    "serial, name, vendor, model, device_class, kid, state, address, port, ldevid_serial,"
    " oscore_index, oscore_generation, oscore_sender_id, oscore_recipient_id, oscore_id_context,"
    " oscore_master_secret, oscore_master_salt, enrollments"
)


@dataclass(frozen=True)
class Thing:
    serial: str
    name: str
    vendor: str
    model: str
    device_class: str | None
    kid: bytes
    state: str
    address: str | None
    port: int | None  # the CoAP port the thing reported; None: the default
    ldevid_serial: int | None
    oscore_index: int | None
    oscore_generation: int
    sender_id: bytes | None
    recipient_id: bytes | None
    id_context: bytes | None
    master_secret: bytes | None = field(repr=False)
    master_salt: bytes | None = field(repr=False)
    enrollments: int

    def grant(self) -> OscoreContextGrant | None:
        """The thing's view of its current backend context (None before its first one).

        Built from the stored parameters, not re-derived: a context handed out stays exactly
        what it was even if the allocation rules in ``contexts`` change.
        """
        if self.sender_id is None or self.recipient_id is None or self.master_secret is None:
            return None
        return OscoreContextGrant(
            purpose=contexts.PURPOSE_BACKEND,
            sender_id=self.sender_id,
            recipient_id=self.recipient_id,
            master_secret=self.master_secret,
            master_salt=self.master_salt or b"",
            id_context=self.id_context,
            generation=self.oscore_generation,
        )


@dataclass(frozen=True)
class GroupKey:
    """The domain's OSCORE group key material (every member derives its contexts from it)."""

    group_id: bytes  # the OSCORE ID Context of the group
    master_secret: bytes = field(repr=False)
    master_salt: bytes = field(repr=False)
    generation: int
    created_at: float


@dataclass(frozen=True)
class Refusal:
    ts: float
    kid: bytes | None
    serial: str | None
    vendor: str | None
    reason: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "kid": None if self.kid is None else self.kid.hex(),
            "serial": self.serial,
            "vendor": self.vendor,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Issued:
    thing: Thing  # after the enrollment
    certificate: x509.Certificate
    previous_state: str
    superseded: tuple[int, ...]  # certificate serials revoked as superseded


@dataclass(frozen=True)
class BootstrapRow:
    thing: str | None
    kid: bytes | None
    resource: str
    started_at: float
    duration_s: float | None
    bytes_in: int
    bytes_out: int
    datagrams_in: int
    datagrams_out: int
    retransmissions: int
    messages: list[dict[str, Any]]
    outcome: str
    reason: str | None


@dataclass(frozen=True)
class RevokedCertificate:
    serial: int
    revoked_at: float
    reason: str | None


def thing_from_row(row: sqlite3.Row | tuple[Any, ...]) -> Thing:
    return Thing(*row)
