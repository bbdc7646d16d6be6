"""Refusal rows written off the event loop, in batches, with a bounded queue.

Every refusal is evidence, but an attacker can cause refusals at the rate it can send
(message_1 floods with unknown kids, revoked things retrying). A synchronous, fsync'd SQLite
write per refusal on the event loop let such a flood stall the whole trust center. So:

- the refusal is counted (metrics) and kept in memory (``recent_refusals``, for ``status``) at
  once, on the loop;
- its row goes into a queue of at most ``capacity`` entries, and one writer task moves queued
  rows into the registry in batches (one transaction, one fsync per batch) in a worker thread,
  with its own SQLite connection (WAL mode lets the loop's connection read meanwhile);
- when the queue is full, a refusal becomes a count per reason instead of a row, and the next
  batch writes one summary row per reason ("N more ... not recorded one by one"), so the table
  says that a flood happened and how big it was, in constant space;
- the table is pruned like the registry's own writes (``evidence.MAX_LOG_ROWS``).

``close`` writes what is queued before the registry closes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from testbed.node.trust_center.evidence import MAX_LOG_ROWS
from testbed.node.trust_center.registry import Refusal

CAPACITY = 1024
BATCH = 256
_PRUNE_EVERY = 1000


class RefusalLog:
    def __init__(
        self,
        path: Path,
        *,
        capacity: int = CAPACITY,
        batch: int = BATCH,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.path = path
        self.capacity = capacity
        self.batch = batch
        self._clock = clock
        self._on_error = on_error
        self._queue: deque[Refusal] = deque()
        self.unrecorded: dict[str, int] = {}  # reason -> refusals not queued (queue full)
        self.rows_written = 0
        self.summarised = 0  # refusals that became part of a summary row
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._db: sqlite3.Connection | None = None
        self._last_id = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="refusal-log")

    def submit(self, refusal: Refusal) -> bool:
        """Queue a row; False when the queue is full and the refusal was only counted."""
        if len(self._queue) >= self.capacity:
            self.unrecorded[refusal.reason] = self.unrecorded.get(refusal.reason, 0) + 1
            queued = False
        else:
            self._queue.append(refusal)
            queued = True
        self._wake.set()
        return queued

    async def _flush(self) -> None:
        # Only ever one at a time (the writer task, or close after it): one connection.
        while self._queue or self.unrecorded:
            rows = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
            counts, self.unrecorded = self.unrecorded, {}
            await asyncio.to_thread(self._write, rows, counts)

    async def close(self) -> None:
        """Write what is queued and stop. Not by cancelling the writer: a write in the worker
        thread would go on, and a second one or the connection's close would race it."""
        self._closing = True
        self._wake.set()
        try:
            if self._task is not None:
                await asyncio.shield(self._task)
                self._task = None
            await self._flush()  # the writer is done (or was never started)
        finally:
            if self._db is not None:
                self._db.close()
                self._db = None

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
            except sqlite3.Error as exc:
                if self._on_error is not None:
                    self._on_error(exc)
                return

    # -- in the worker thread --------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            self._db = db
        return self._db

    def _write(self, rows: list[Refusal], counts: dict[str, int]) -> None:
        db = self._connect()
        now = self._clock()
        summaries = [
            Refusal(
                now,
                None,
                None,
                None,
                reason,
                f"{n} more refusals ({reason}) not recorded one by one: the refusal queue was"
                f" full ({self.capacity} rows waiting)",
            )
            for reason, n in sorted(counts.items())
        ]
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.executemany(
                "INSERT INTO refusals (ts, kid, serial, vendor, reason, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(r.ts, r.kid, r.serial, r.vendor, r.reason, r.detail) for r in rows + summaries],
            )
            del cursor
            (last,) = db.execute("SELECT max(id) FROM refusals").fetchone()
            last = int(last or 0)
            if last > MAX_LOG_ROWS and last // _PRUNE_EVERY != self._last_id // _PRUNE_EVERY:
                db.execute("DELETE FROM refusals WHERE id <= ?", (last - MAX_LOG_ROWS,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._last_id = last
        self.rows_written += len(rows) + len(summaries)
        self.summarised += sum(counts.values())
