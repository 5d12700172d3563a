"""Storage of the hub: :class:`HubStore` is what the HTTP layer needs; :class:`SqliteHubStore`
implements it on one SQLite file.

The SQLite store serves one process: writes are serialised by a lock and each runs in one
``BEGIN IMMEDIATE`` transaction; reads run on a connection per thread in a read transaction,
so they never wait for writes (WAL). A push stores and acknowledges its events and records
its idempotent answer together, durably, before the device hears "stored"; it does not
apply them. The applier (:mod:`sync.hub.applier`) applies them in the background, and every
read of circulation state (changes, snapshot, exceptions) first applies what is still
waiting, so a device that pushes and then pulls sees the effects of its own events.
A county that outgrows one process implements :class:`HubStore` on PostgreSQL instead;
docs/hub.md says which statements change.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sync import db as cache_db
from sync.db import Cache
from sync.hub import applier, changes, chunk, intake, schema, timefix
from sync.hub.apply import apply_event, load_event
from sync.hub.auth import Principal, new_token, token_hash
from sync.hub.config import HubConfig
from sync.hub.errors import IdempotencyMismatch, RangeExhausted
from sync.hub.snapshot import Snapshot

log = logging.getLogger("sync.hub")


class HubStore(Protocol):
    """What the HTTP layer needs. Every method is safe to call from several threads; errors
    are :mod:`sync.hub.errors` classes (shown to the client as they are) or
    :mod:`sync.errors` classes (busy, full, read-only: the client is told to retry)."""

    config: HubConfig

    def principal(self, token: str) -> Principal | None:
        """Who holds ``token``, or None for a token the hub does not know."""

    def push(self, device_id: str, batch: dict[str, Any], idempotency_key: str,
             request_hash: str) -> dict[str, Any]:
        """Store a checked ``EventBatch`` durably and answer a ``PushResult``. The events are
        applied later (see :meth:`apply_pending`)."""

    def apply_pending(self) -> int:
        """Apply every event stored before the call that can be applied; how many were."""

    def start_applier(self) -> None:
        """Start applying stored events in the background (idempotent)."""

    def stop_applier(self, timeout: float = 30.0) -> bool:
        """Stop the background applier after its current chunk (idempotent); True once
        stopped."""

    def changes(self, device_id: str, cursor: str | None, limit: int) -> dict[str, Any]:
        """A ``ChangePage`` after ``cursor``, with every event stored before it applied."""

    def snapshot(self, device_id: str) -> Snapshot:
        """An open snapshot (header fixed), with every event stored before it applied;
        iterating it yields the NDJSON body."""

    def lease_card_range(self, device_id: str, size: int) -> dict[str, Any]:
        """A new ``CardRange``, disjoint from every range leased before."""

    def heartbeat(self, device_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Record a checked ``Heartbeat`` (and its anchors)."""

    def put_stats(self, device_id: str, days: list[tuple[str, list[dict[str, Any]]]]
                  ) -> dict[str, Any]:
        """Replace the device's daily figures of each day given (checked ``DailyStats``)."""

    def fleet(self) -> list[dict[str, Any]]:
        """Every registered device with its last heartbeat (``received_at_ns``, ``body``;
        None when it never sent one), for the county page."""

    def branch_names(self) -> dict[str, str]:
        """ISIL -> name of every branch the hub knows."""

    def county_stats(self, first: str, last: str) -> list[dict[str, Any]]:
        """Daily figures of every device from ``first`` to ``last`` (inclusive)."""

    def exceptions(self, device_id: str | None, status: str) -> list[dict[str, Any]]:
        """``HubException`` rows, oldest first, with every event stored before the call
        applied; ``status`` is open, resolved or all."""

    def close(self) -> None:
        """Stop the applier and release every connection; idempotent."""


class SqliteHubStore:
    """The hub on one SQLite file: the kiosk cache schema plus :mod:`sync.hub.schema`.

    ``open()`` creates the file when ``create`` is true and brings both schemas current;
    without ``create`` a missing file is :class:`sync.errors.DatabaseMissing`. The
    background applier runs only after :meth:`start_applier` (the server calls it); without
    it, events are applied when something reads, or by :meth:`apply_pending`.
    """

    def __init__(self, path: Path, config: HubConfig, clock: Callable[[], int]) -> None:
        self.path = path
        self.config = config
        self.clock = clock
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._caches: list[Cache] = []
        self._caches_lock = threading.Lock()
        self._closed = False
        # device id -> seq of its event that failed to apply: that device waits (and is not
        # tried again on every read) until its next push, or until the hub restarts.
        self._failed: dict[str, int] = {}
        self._traffic = applier.Traffic()
        self._applier = applier.Applier(self._apply_chunk, self._traffic, config)

    @classmethod
    def open(cls, path: str | Path, config: HubConfig | None = None, *, create: bool = True,
             clock: Callable[[], int] = time.time_ns) -> SqliteHubStore:
        path = Path(path)
        if create:
            with cache_db.create(path) as cache, cache_db.translated(path):
                schema.migrate(cache.conn, path)
        else:
            with Cache.open(path) as cache, cache_db.translated(path):
                schema.require_current(cache.conn, path)
        return cls(path, config or HubConfig(), clock)

    # -- connections ---------------------------------------------------------------------

    def _cache(self) -> Cache:
        cache = getattr(self._local, "cache", None)
        if cache is None:
            cache = Cache.open(self.path)
            self._local.cache = cache
            with self._caches_lock:
                self._caches.append(cache)
        return cache

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._write_lock, self._cache().transaction() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._cache().snapshot() as conn:
            yield conn

    def close(self) -> None:
        self._applier.stop()
        with self._caches_lock:
            caches, self._caches = self._caches, []
        for cache in caches:
            cache.close()
        self._closed = True

    def __repr__(self) -> str:
        return f"<SqliteHubStore {self.path}>"

    # -- credentials ---------------------------------------------------------------------

    def principal(self, token: str) -> Principal | None:
        digest = token_hash(token)
        with self._read() as conn:
            row = conn.execute("SELECT device_id FROM hub_devices WHERE token_hash = ?",
                               (digest,)).fetchone()
            if row:
                return Principal("device", row[0])
            row = conn.execute("SELECT name FROM hub_staff WHERE token_hash = ?",
                               (digest,)).fetchone()
            return Principal("staff", row[0]) if row else None

    def add_device(self, device_id: str, token: str | None = None) -> str:
        """Register ``device_id`` (or replace its token) and return its token. Only the hash
        is kept: the token cannot be shown again."""
        token = token or new_token()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO hub_devices (device_id, token_hash, created_at_ns) VALUES (?, ?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET token_hash = excluded.token_hash",
                (device_id, token_hash(token), self.clock()))
        return token

    def add_staff(self, name: str, token: str | None = None) -> str:
        """Create (or replace) the staff token ``name``; returned once, kept as a hash."""
        token = token or new_token()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO hub_staff (name, token_hash, created_at_ns) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash",
                (name, token_hash(token), self.clock()))
        return token

    # -- push ----------------------------------------------------------------------------

    def push(self, device_id: str, batch: dict[str, Any], idempotency_key: str,
             request_hash: str) -> dict[str, Any]:
        """Store the batch, acknowledge it and remember the answer, in one durable
        transaction; nothing is applied here. Each event is stored once per
        ``(device_id, txn_id)``; ``acked_through_seq`` is the gap-free prefix stored."""
        with self._traffic.push(), self._write() as conn:
            # Read under the lock: arrival times then follow commit order, which is the
            # order the applier applies different devices' events in.
            received = self.clock()
            row = conn.execute(
                "SELECT request_hash, response FROM hub_idempotency WHERE device_id = ?"
                " AND key = ?", (device_id, idempotency_key)).fetchone()
            if row is not None:
                if row[0] != request_hash:
                    raise IdempotencyMismatch(
                        "this Idempotency-Key was used for another request body")
                return json.loads(row[1])
            timefix.store_anchors(conn, device_id, batch.get("anchors") or [], received)
            stored, duplicates = intake.store_events(conn, self.config, device_id,
                                                     batch["events"], received)
            acked = intake.advance(conn, device_id)
            result = {"device_id": device_id, "stored": stored, "duplicates": duplicates,
                      "acked_through_seq": acked,
                      "missing_seqs": intake.missing(conn, device_id, acked),
                      "hub_time_ns": self.clock()}
            conn.execute("UPDATE hub_devices SET last_seen_ns = ? WHERE device_id = ?",
                         (received, device_id))
            conn.execute(
                "INSERT INTO hub_idempotency (device_id, key, request_hash, response,"
                " created_at_ns) VALUES (?, ?, ?, ?, ?)",
                (device_id, idempotency_key, request_hash, json.dumps(result), received))
            # As when pushes applied their own events: a new push of the device tries
            # its failed event again.
            self._failed.pop(device_id, None)
        self._applier.wake()
        return result

    # -- applying ------------------------------------------------------------------------

    def start_applier(self) -> None:
        """Apply stored events in a background thread from now on (one thread per store;
        a second call does nothing). Events left unapplied by an earlier run are applied
        at once."""
        self._applier.start()

    def stop_applier(self, timeout: float = 30.0) -> bool:
        """Stop the background applier once its chunk in progress has committed; events
        still waiting stay stored. True when it has stopped (or never ran)."""
        return self._applier.stop(timeout)

    def apply_pending(self) -> int:
        """Apply every event stored before this call that can be applied, and return how
        many were applied.

        Can be applied: no gap before it in its device's seqs, and its device not waiting
        behind an event that failed (until that device pushes again). Safe alongside the
        applier and other callers, in this process or another one: each chunk is one
        write transaction under the write lock, so no event is applied twice.
        """
        upto: dict[str, int] | None = None
        applied = 0
        while True:
            with self._write() as conn:
                if upto is None:  # what is stored now; later pushes are not waited for
                    upto = {d: through for d, (_, through) in applier.waiting(conn).items()}
                found = applier.due(conn, self.config.apply_chunk_events, self._failed, upto)
                if not found:
                    return applied
                applied += self._apply(conn, found)

    def _apply_chunk(self) -> int:
        """The applier's unit of work: one chunk of due events in one transaction; returns
        how many were due (0: nothing left to do)."""
        with self._write() as conn:
            found = applier.due(conn, self.config.apply_chunk_events, self._failed)
            if found:
                self._apply(conn, found)
            return len(found)

    def _catch_up(self) -> None:
        """Before reading circulation state: apply what is waiting, so that the reader sees
        the effects of every event stored before it asked. A read transaction first, so
        that a reader takes the write lock only when there is something to apply."""
        with self._read() as conn:
            waiting = applier.waiting(conn)
        if any(self._failed.get(d) != done + 1 for d, (done, _) in waiting.items()):
            self.apply_pending()

    def _apply(self, conn: Any, found: list[tuple]) -> int:
        """Apply ``found`` (rows from :func:`applier.due`, in order) and move each device's
        ``applied_through_seq`` in the same transaction; returns how many were applied."""
        applied = 0
        done: dict[str, int] = {}
        stuck: set[str] = set()
        with chunk.shared(conn):
            for row in found:
                ev = load_event(row)
                if ev.device_id in stuck:
                    continue  # an earlier event of the device failed: this one waits
                conn.execute("SAVEPOINT apply_event")
                try:
                    apply_event(conn, self.config, ev, self.clock())
                except Exception:
                    # The event stays stored (a fact) but unapplied, and so do the ones
                    # after it: order matters. The device's next push tries again.
                    conn.execute("ROLLBACK TO apply_event")
                    conn.execute("RELEASE apply_event")
                    log.exception("applying %s event seq %d of %s failed", ev.kind, ev.seq,
                                  ev.device_id)
                    self._failed[ev.device_id] = ev.seq
                    stuck.add(ev.device_id)
                    continue
                conn.execute("RELEASE apply_event")
                done[ev.device_id] = ev.seq
                applied += 1
                self._failed.pop(ev.device_id, None)
        conn.executemany("UPDATE hub_devices SET applied_through_seq = ? WHERE device_id = ?",
                         [(seq, device_id) for device_id, seq in done.items()])
        return applied

    # -- pull ----------------------------------------------------------------------------

    def changes(self, device_id: str, cursor: str | None, limit: int) -> dict[str, Any]:
        self._catch_up()
        with self._read() as conn:
            return changes.page(conn, device_id, cursor, limit).as_dict()

    def snapshot(self, device_id: str) -> Snapshot:
        self._catch_up()
        return Snapshot(Cache.open(self.path), device_id, self.clock(),
                        self.config.snapshot_batch_rows)

    # -- card ranges, heartbeats, exceptions ---------------------------------------------

    def lease_card_range(self, device_id: str, size: int) -> dict[str, Any]:
        cfg = self.config
        now = self.clock()
        with self._write() as conn:
            floor = conn.execute(
                "SELECT max(?, (SELECT value FROM hub_state WHERE key = 'card_next'),"
                " coalesce((SELECT max(last_number) + 1 FROM card_ranges WHERE prefix = ?), 0),"
                " coalesce((SELECT max(last_number) + 1 FROM hub_card_ranges"
                " WHERE prefix = ?), 0))",
                (cfg.card_first_number, cfg.card_prefix, cfg.card_prefix)).fetchone()[0]
            last = floor + size - 1
            if last > cfg.card_last_number:
                raise RangeExhausted(
                    f"no {size} card numbers left under prefix {cfg.card_prefix}",
                    details={"left": max(0, cfg.card_last_number - floor + 1)})
            today = datetime.fromtimestamp(now / 1e9, cfg.timezone).date()
            expires = (today + timedelta(days=cfg.card_range_days)).isoformat()
            range_id = conn.execute(
                "INSERT INTO hub_card_ranges (device_id, prefix, first_number, last_number,"
                " leased_at_ns, expires_on) VALUES (?, ?, ?, ?, ?, ?) RETURNING range_id",
                (device_id, cfg.card_prefix, floor, last, now, expires)).fetchone()[0]
            conn.execute("UPDATE hub_state SET value = ? WHERE key = 'card_next'", (last + 1,))
            changes.emit(conn, "card_range", range_id, now_ns=now, device_id=device_id)
        return {"range_id": range_id, "prefix": cfg.card_prefix, "first_number": floor,
                "last_number": last, "leased_at_ns": now, "expires_on": expires}

    def heartbeat(self, device_id: str, body: dict[str, Any]) -> dict[str, Any]:
        received = self.clock()
        with self._write() as conn:
            timefix.store_anchors(conn, device_id, body.get("anchors") or [], received)
            conn.execute(
                "INSERT INTO hub_heartbeats (device_id, received_at_ns, sent_at_ns, body)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
                " received_at_ns = excluded.received_at_ns, sent_at_ns = excluded.sent_at_ns,"
                " body = excluded.body",
                (device_id, received, body["sent_at_ns"], json.dumps(body, ensure_ascii=False)))
            conn.execute("UPDATE hub_devices SET last_seen_ns = ? WHERE device_id = ?",
                         (received, device_id))
        return {"hub_time_ns": self.clock()}

    def put_stats(self, device_id: str, days: list[tuple[str, list[dict[str, Any]]]]
                  ) -> dict[str, Any]:
        """Each day sent replaces what the device sent for it before (absolute values), so
        a day sent twice is stored once; other devices' figures are never touched."""
        received = self.clock()
        with self._write() as conn:
            for day, figures in days:
                conn.execute("DELETE FROM hub_daily_stats WHERE device_id = ? AND day = ?",
                             (device_id, day))
                conn.executemany(
                    "INSERT INTO hub_daily_stats (device_id, day, branch, stop, metric, value,"
                    " received_at_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(device_id, day, f["branch"], f["stop"], f["metric"], f["value"], received)
                     for f in figures])
            conn.execute("UPDATE hub_devices SET last_seen_ns = ? WHERE device_id = ?",
                         (received, device_id))
        return {"days": len(days), "hub_time_ns": self.clock()}

    def fleet(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT d.device_id, d.last_seen_ns, h.received_at_ns, h.body"
                " FROM hub_devices d LEFT JOIN hub_heartbeats h USING (device_id)"
                " ORDER BY d.device_id").fetchall()
        return [{"device_id": r[0], "last_seen_ns": r[1], "received_at_ns": r[2],
                 "body": json.loads(r[3]) if r[3] else None} for r in rows]

    def branch_names(self) -> dict[str, str]:
        with self._read() as conn:
            return dict(conn.execute("SELECT isil, name FROM branches"))

    def county_stats(self, first: str, last: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            names = dict(conn.execute("SELECT isil, name FROM branches"))
            rows = conn.execute(
                "SELECT day, device_id, branch, stop, metric, value FROM hub_daily_stats"
                " WHERE day BETWEEN ? AND ? ORDER BY day, device_id, branch, stop, metric",
                (first, last)).fetchall()
        return [{"day": r[0], "device_id": r[1], "branch": r[2],
                 "branch_name": names.get(r[2], ""), "stop": r[3], "metric": r[4],
                 "value": r[5]} for r in rows]

    def exceptions(self, device_id: str | None, status: str = "open") -> list[dict[str, Any]]:
        sql = ("SELECT id, device_id, txn_id, seq, kind, code, message, status, event_time_ns"
               " FROM hub_exceptions WHERE (? IS NULL OR device_id = ?)"
               " AND (? = 'all' OR status = ?) ORDER BY id")
        keys = ("id", "device_id", "txn_id", "seq", "kind", "code", "message", "status",
                "event_time_ns")
        self._catch_up()
        with self._read() as conn:
            return [dict(zip(keys, r, strict=True)) for r in
                    conn.execute(sql, (device_id, device_id, status, status))]

    def compact(self, keep_days: float) -> int:
        """Forget changes older than ``keep_days`` (and idempotency answers as old); devices
        whose cursor is older must take a new snapshot. Returns the changes removed.

        Events still waiting are applied first, so the log is compacted as of a state that
        includes every event stored before the call."""
        self._catch_up()
        before = self.clock() - int(keep_days * 86_400 * 1e9)
        with self._write() as conn:
            conn.execute("DELETE FROM hub_idempotency WHERE created_at_ns < ?", (before,))
            return changes.compact(conn, before)

    def load_sample(self, size: str) -> bool:
        """Fill an empty hub with the sample county; False (nothing done) if it holds data.

        The change log stays empty: the snapshot reads the tables themselves, and the log
        records only what changes afterwards.
        """
        from sync import sample

        with Cache.open(self.path) as cache:
            try:
                sample.load(cache, size)
            except sample.CacheNotEmpty:
                return False
        return True
