"""The trust center's durable registry: SQLite in WAL mode with synchronous=FULL.

Schema (version 2):

    things        serial PK, name, vendor, model, device_class, kid, state, address, port,
                  ldevid_serial, oscore_index (unique, never reused), oscore_generation,
                  oscore_sender_id / recipient_id / id_context / master_secret / master_salt
                  (the thing's view), enrollments, created_at, updated_at
    certificates  serial PK (from the counter below), thing, issued_at, not_after, revoked_at,
                  revocation_reason (CRL reason; "superseded" when a newer LDevID replaced it),
                  der
    refusals      id, ts, kid, serial, vendor, reason (RefusalReason value), detail
    bootstraps    id, thing, kid, resource, started_at, duration_s, bytes/datagrams in/out,
                  retransmissions, messages (JSON: per protocol message and direction), outcome,
                  reason
    counters      certificate_serial, crl_number, oscore_index
    group_keys    the domain's OSCORE group key: group id, master secret and salt, generation
                  (replaced by a fresh one, generation + 1, when a member is revoked)
    meta          schema_version

Why it is shaped this way:

- An LDevID is allocated, signed and recorded in ONE transaction, committed (fsync'd, FULL)
  before the answer leaves: a SIGKILL at any point either loses the whole issuance (the thing
  never saw it and asks again) or keeps it, and a serial is never handed out twice.
- The certificate serial counter starts at creation time * 2**20: a registry re-created on a
  wiped volume continues above every serial an earlier registry of the same domain CA can have
  issued (unless it issued more than a million per second of its life).
- One things row per serial (upsert): a thing that enrolls again gets a new certificate and a
  new OSCORE generation, and its older certificates are revoked as superseded.
- Timestamps are Unix seconds (REAL). All access comes from the event loop thread, except
  refusal rows in a running trust center (refusal_log: own connection, a worker thread).
"""

from __future__ import annotations

import collections
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from testbed.node.trust_center import contexts, evidence
from testbed.node.trust_center.schema import (
    ENROLLED,
    IMPORTED,
    REFUSED,
    REVOKED,
    SCHEMA,
    SCHEMA_VERSION,
    STATES,
    SUPERSEDED,
    THING_COLUMNS,
    UPGRADES,
    BootstrapRow,
    GroupKey,
    Issued,
    Refusal,
    RevokedCertificate,
    Thing,
    thing_from_row,
)

__all__ = [
    "ENROLLED",
    "IMPORTED",
    "REFUSED",
    "REVOKED",
    "STATES",
    "SUPERSEDED",
    "BootstrapRow",
    "GroupKey",
    "Issued",
    "Refusal",
    "Registry",
    "RevokedCertificate",
    "Thing",
]

FILE_NAME = "registry.sqlite"
RECENT_REFUSALS = 20


class Registry:
    def __init__(self, db: sqlite3.Connection, path: Path, clock: Callable[[], float]) -> None:
        self._db = db
        self.path = path
        self._clock = clock
        # Kept in memory (loaded once, updated after each commit) so that metrics and /state
        # never scan the tables.
        self.state_counts: dict[str, int] = dict.fromkeys(STATES, 0)
        self.revoked_count = 0
        self.certificates_count = 0
        self.recent_refusals: collections.deque[Refusal] = collections.deque(maxlen=RECENT_REFUSALS)
        # Bumped on every change of the things table: a cache key for /things.
        self.version = 0
        self._load_summary()

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, state_dir: Path, *, clock: Callable[[], float] = time.time) -> Registry:
        path = Path(state_dir) / FILE_NAME
        if not path.exists():
            # Created 0600 before SQLite touches it: SQLite gives -wal and -shm the same mode.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(path, isolation_level=None)  # transactions are explicit below
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=5000")
        cls._migrate(db, clock)
        return cls(db, path, clock)

    @staticmethod
    def _migrate(db: sqlite3.Connection, clock: Callable[[], float]) -> None:
        with _transaction(db):
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" not in tables:
                # Statement by statement: executescript() would commit the open transaction.
                for statement in filter(str.strip, SCHEMA.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                db.executemany(
                    "INSERT INTO counters VALUES (?, ?)",
                    [
                        ("certificate_serial", int(clock()) << 20),
                        ("crl_number", 0),
                        ("oscore_index", 0),
                    ],
                )
                return
            (version,) = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(version)
            # Older registries are upgraded in place, in this same transaction: all or nothing.
            while version in UPGRADES and version < SCHEMA_VERSION:
                for statement in UPGRADES[version]:
                    db.execute(statement)
                version += 1
                db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),)
                )
            if version != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"registry schema version {version}, this code knows {SCHEMA_VERSION}"
                )

    def _load_summary(self) -> None:
        for state, count in self._db.execute("SELECT state, count(*) FROM things GROUP BY state"):
            self.state_counts[state] = count
        (self.certificates_count,) = self._db.execute(
            "SELECT count(*) FROM certificates"
        ).fetchone()
        (self.revoked_count,) = self._db.execute(
            "SELECT count(*) FROM certificates WHERE revoked_at IS NOT NULL"
        ).fetchone()
        rows = self._db.execute(
            "SELECT ts, kid, serial, vendor, reason, detail FROM refusals ORDER BY id DESC LIMIT ?",
            (RECENT_REFUSALS,),
        ).fetchall()
        self.recent_refusals.extend(Refusal(*row) for row in reversed(rows))

    def close(self) -> None:
        self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """For the registry's helper modules (naming); same thread, explicit transactions."""
        return self._db

    # -- things --------------------------------------------------------------------------

    def thing(self, serial: str) -> Thing | None:
        row = self._db.execute(
            f"SELECT {THING_COLUMNS} FROM things WHERE serial = ?", (serial,)
        ).fetchone()
        return None if row is None else thing_from_row(row)

    def things(self, state: str | None = None) -> list[Thing]:
        query = f"SELECT {THING_COLUMNS} FROM things"
        args: tuple[Any, ...] = ()
        if state is not None:
            query, args = query + " WHERE state = ?", (state,)
        return [thing_from_row(r) for r in self._db.execute(query + " ORDER BY serial", args)]

    def ensure_imported(self, records: Iterable[tuple[str, str, str, bytes]]) -> int:
        """Upsert (serial, vendor, model, kid) of device records in one transaction.

        New serials start as ``imported``; known ones keep their state and get the record's
        current vendor, model and kid. Returns how many rows were new.
        """
        now = self._clock()
        added = 0
        with _transaction(self._db):
            for serial, vendor, model, kid in records:
                cursor = self._db.execute(
                    "INSERT INTO things (serial, name, vendor, model, kid, state, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, 'imported', ?, ?)"
                    " ON CONFLICT (serial) DO NOTHING",
                    (serial, serial, vendor, model, kid, now, now),
                )
                if cursor.rowcount:
                    added += 1
                else:
                    self._db.execute(
                        "UPDATE things SET vendor = ?, model = ?, kid = ?, updated_at = ?"
                        " WHERE serial = ? AND (vendor, model, kid) IS NOT (?, ?, ?)",
                        (vendor, model, kid, now, serial, vendor, model, kid),
                    )
        self.state_counts[IMPORTED] += added
        if added:
            self.version += 1
        return added

    def set_state(self, serial: str, state: str, *, only_from: tuple[str, ...]) -> str | None:
        """Move a thing to ``state`` if it is in one of ``only_from``; the old state or None."""
        with _transaction(self._db):
            row = self._db.execute(
                "SELECT state FROM things WHERE serial = ?", (serial,)
            ).fetchone()
            if row is None or row[0] not in only_from or row[0] == state:
                return None
            self._db.execute(
                "UPDATE things SET state = ?, updated_at = ? WHERE serial = ?",
                (state, self._clock(), serial),
            )
        self._moved(row[0], state)
        return str(row[0])

    def _moved(self, old: str | None, new: str) -> None:
        if old is not None:
            self.state_counts[old] -= 1
        self.state_counts[new] += 1
        self.version += 1

    # -- enrollment ----------------------------------------------------------------------

    def enroll(
        self,
        serial: str,
        issue: Callable[[int], x509.Certificate],
        *,
        address: str | None,
        name: str | None = None,
        device_class: str | None = None,
        port: int | None = None,
    ) -> Issued:
        """Allocate a certificate serial, sign (``issue``), record, re-key: one transaction.

        ``issue`` runs inside the transaction with the allocated serial; if it raises, nothing
        is recorded and the serial is not consumed. The thing must have a row.
        """
        now = self._clock()
        with _transaction(self._db):
            before = self.thing(serial)
            if before is None:
                raise KeyError(serial)
            cert_serial = _increment(self._db, "certificate_serial")
            certificate = issue(cert_serial)
            superseded = tuple(
                r[0]
                for r in self._db.execute(
                    "UPDATE certificates SET revoked_at = ?, revocation_reason = ?"
                    " WHERE thing = ? AND revoked_at IS NULL RETURNING serial",
                    (now, SUPERSEDED, serial),
                )
            )
            self._db.execute(
                "INSERT INTO certificates (serial, thing, issued_at, not_after, der)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    cert_serial,
                    serial,
                    now,
                    certificate.not_valid_after_utc.timestamp(),
                    certificate.public_bytes(Encoding.DER),
                ),
            )
            index = before.oscore_index
            if index is None:
                index = _increment(self._db, "oscore_index")
            generation = before.oscore_generation + 1
            secret, salt = contexts.fresh_keys()
            view = contexts.thing_view(index, generation, secret, salt)
            # Name and class are identity: kept when a later enrollment does not report them.
            # Address and port are where the thing is now: taken from this enrollment.
            self._db.execute(
                "UPDATE things SET state = 'enrolled', address = ?, ldevid_serial = ?,"
                " oscore_index = ?, oscore_generation = ?, oscore_sender_id = ?,"
                " oscore_recipient_id = ?, oscore_id_context = ?, oscore_master_secret = ?,"
                " oscore_master_salt = ?, enrollments = enrollments + 1, updated_at = ?,"
                " name = coalesce(?, name), device_class = coalesce(?, device_class),"
                " port = ? WHERE serial = ?",
                (
                    address,
                    cert_serial,
                    index,
                    generation,
                    view.sender_id,
                    view.recipient_id,
                    view.id_context,
                    secret,
                    salt,
                    now,
                    name,
                    device_class,
                    port,
                    serial,
                ),
            )
            after = self.thing(serial)
            assert after is not None
        if before.state != ENROLLED:
            self._moved(before.state, ENROLLED)
        else:
            self.version += 1
        self.certificates_count += 1
        self.revoked_count += len(superseded)
        return Issued(after, certificate, before.state, superseded)

    # -- the group key -------------------------------------------------------------------

    def group_key(self) -> GroupKey:
        """The domain's group key, created (random) and committed on first use."""
        with _transaction(self._db):
            row = self._db.execute(
                "SELECT group_id, master_secret, master_salt, generation, created_at"
                " FROM group_keys WHERE id = 1"
            ).fetchone()
            if row is None:
                group_id, secret, salt = contexts.fresh_group()
                row = (group_id, secret, salt, 1, self._clock())
                self._db.execute("INSERT INTO group_keys VALUES (1, ?, ?, ?, ?, ?)", row)
        return GroupKey(*row)

    @property
    def group_generation(self) -> int:
        """The group key's generation; 0 while no member has asked for one."""
        row = self._db.execute("SELECT generation FROM group_keys WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def _rotate_group_key(self, now: float) -> None:
        """A fresh group key (new group id, secret and salt), generation + 1, in the caller's
        transaction. Nothing to do while no key exists. Members get it with their next
        contexts (key renewal in `maintain`, or a bootstrap): the key is not pushed."""
        group_id, secret, salt = contexts.fresh_group()
        self._db.execute(
            "UPDATE group_keys SET group_id = ?, master_secret = ?, master_salt = ?,"
            " generation = generation + 1, created_at = ? WHERE id = 1",
            (group_id, secret, salt, now),
        )

    # -- revocation ----------------------------------------------------------------------

    def revoke(self, serial: str, reason: str) -> tuple[str, tuple[int, ...]] | None:
        """Mark the thing revoked and revoke its live certificates; None for unknown serials.

        A thing that ever enrolled had the group key, and keeps it when it leaves (a
        decommissioned or sold device is out of the domain's hands): the group key is replaced
        in the same transaction (RFC 8576 Section 5, group membership: rekey when one leaves).

        Returns (previous state, newly revoked certificate serials).
        """
        now = self._clock()
        with _transaction(self._db):
            row = self._db.execute(
                "SELECT state, enrollments FROM things WHERE serial = ?", (serial,)
            ).fetchone()
            if row is None:
                return None
            revoked = tuple(
                r[0]
                for r in self._db.execute(
                    "UPDATE certificates SET revoked_at = ?, revocation_reason = ?"
                    " WHERE thing = ? AND revoked_at IS NULL RETURNING serial",
                    (now, reason, serial),
                )
            )
            self._db.execute(
                "UPDATE things SET state = 'revoked', updated_at = ? WHERE serial = ?",
                (now, serial),
            )
            if row[0] != REVOKED and row[1] > 0:
                self._rotate_group_key(now)
        if row[0] != REVOKED:
            self._moved(row[0], REVOKED)
        self.revoked_count += len(revoked)
        return str(row[0]), revoked

    def revoked_certificates(self) -> list[RevokedCertificate]:
        return [
            RevokedCertificate(*r)
            for r in self._db.execute(
                "SELECT serial, revoked_at, revocation_reason FROM certificates"
                " WHERE revoked_at IS NOT NULL ORDER BY serial"
            )
        ]

    def next_crl_number(self) -> int:
        with _transaction(self._db):
            return _increment(self._db, "crl_number")

    def certificate_serials(self) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT serial FROM certificates ORDER BY serial")]

    # -- evidence (testbed.node.trust_center.evidence) ---------------------------------------

    def record_refusal(
        self, *, kid: bytes | None, serial: str | None, vendor: str | None, reason: str, detail: str
    ) -> Refusal:
        refusal = Refusal(self._clock(), kid, serial, vendor, reason, detail)
        with _transaction(self._db):
            evidence.insert_refusal(self._db, refusal)
        self.recent_refusals.append(refusal)
        return refusal

    def refusals(self) -> list[Refusal]:
        return evidence.refusals(self._db)

    def record_bootstrap(self, row: BootstrapRow) -> None:
        with _transaction(self._db):
            evidence.insert_bootstrap(self._db, row)

    def bootstraps(self) -> list[BootstrapRow]:
        return evidence.bootstraps(self._db)


def _increment(db: sqlite3.Connection, counter: str) -> int:
    # fetchall(): the statement must run to its end before the transaction can commit.
    ((value,),) = db.execute(
        "UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value", (counter,)
    ).fetchall()
    return int(value)


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front: a concurrent reader (a test, sqlite3 on the
    # volume) never turns a half-done issuance into a "database is locked" failure mid-way.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
