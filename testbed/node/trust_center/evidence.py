"""The trust center's evidence tables: refusal rows and bootstrap rows of the registry.

Evidence, but an attacker can cause these rows at will: each table keeps the newest
``MAX_LOG_ROWS`` (pruned in batches of ``_PRUNE_EVERY``, so the cost per insert stays constant).
The functions run inside the caller's transaction (``Registry`` and the refusal log's writer
thread hold their own connections).
"""

from __future__ import annotations

import json
import sqlite3

from testbed.node.trust_center.schema import BootstrapRow, Refusal

MAX_LOG_ROWS = 100_000
_PRUNE_EVERY = 1000


def insert_refusal(db: sqlite3.Connection, refusal: Refusal) -> None:
    cursor = db.execute(
        "INSERT INTO refusals (ts, kid, serial, vendor, reason, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (refusal.ts, refusal.kid, refusal.serial, refusal.vendor, refusal.reason, refusal.detail),
    )
    prune(db, "refusals", cursor.lastrowid)


def refusals(db: sqlite3.Connection) -> list[Refusal]:
    return [
        Refusal(*r)
        for r in db.execute(
            "SELECT ts, kid, serial, vendor, reason, detail FROM refusals ORDER BY id"
        )
    ]


def insert_bootstrap(db: sqlite3.Connection, row: BootstrapRow) -> None:
    cursor = db.execute(
        "INSERT INTO bootstraps (thing, kid, resource, started_at, duration_s, bytes_in,"
        " bytes_out, datagrams_in, datagrams_out, retransmissions, messages, outcome,"
        " reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row.thing,
            row.kid,
            row.resource,
            row.started_at,
            row.duration_s,
            row.bytes_in,
            row.bytes_out,
            row.datagrams_in,
            row.datagrams_out,
            row.retransmissions,
            json.dumps(row.messages, separators=(",", ":")),
            row.outcome,
            row.reason,
        ),
    )
    prune(db, "bootstraps", cursor.lastrowid)


def bootstraps(db: sqlite3.Connection) -> list[BootstrapRow]:
    rows = db.execute(
        "SELECT thing, kid, resource, started_at, duration_s, bytes_in, bytes_out,"
        " datagrams_in, datagrams_out, retransmissions, messages, outcome, reason"
        " FROM bootstraps ORDER BY id"
    ).fetchall()
    return [
        BootstrapRow(
            thing=r[0],
            kid=r[1],
            resource=r[2],
            started_at=r[3],
            duration_s=r[4],
            bytes_in=r[5],
            bytes_out=r[6],
            datagrams_in=r[7],
            datagrams_out=r[8],
            retransmissions=r[9],
            messages=json.loads(r[10]),
            outcome=r[11],
            reason=r[12],
        )
        for r in rows
    ]


def prune(db: sqlite3.Connection, table: str, last_id: int | None) -> None:
    if last_id is not None and last_id % _PRUNE_EVERY == 0 and last_id > MAX_LOG_ROWS:
        db.execute(f"DELETE FROM {table} WHERE id <= ?", (last_id - MAX_LOG_ROWS,))
