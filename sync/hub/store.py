"""Storage of the hub: :class:`HubStore` is what the HTTP layer needs; :class:`SqliteHubStore`
implements it on one SQLite file.

The SQLite store serves one process: writes are serialised by a lock and each runs in one
``BEGIN IMMEDIATE`` transaction (a push stores, acknowledges and applies its events and
records its idempotent answer together, durably, before the device hears "stored"); reads
run on a connection per thread in a read transaction, so they never wait for writes (WAL).
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
from sync.hub import changes, schema, timefix
from sync.hub.apply import EVENT_COLUMNS, apply_event, load_event
from sync.hub.auth import Principal, new_token, token_hash
from sync.hub.config import HubConfig
from sync.hub.errors import IdempotencyMismatch, RangeExhausted, ValidationFailed
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
        """Store a checked ``EventBatch`` and apply what became contiguous; a ``PushResult``."""

    def changes(self, device_id: str, cursor: str | None, limit: int) -> dict[str, Any]:
        """A ``ChangePage`` after ``cursor``."""

    def snapshot(self, device_id: str) -> Snapshot:
        """An open snapshot (header fixed); iterating it yields the NDJSON body."""

    def lease_card_range(self, device_id: str, size: int) -> dict[str, Any]:
        """A new ``CardRange``, disjoint from every range leased before."""

    def heartbeat(self, device_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Record a checked ``Heartbeat`` (and its anchors)."""

    def exceptions(self, device_id: str | None, status: str) -> list[dict[str, Any]]:
        """``HubException`` rows, oldest first; ``status`` is open, resolved or all."""

    def close(self) -> None:
        """Release every connection; idempotent."""


class SqliteHubStore:
    """The hub on one SQLite file: the kiosk cache schema plus :mod:`sync.hub.schema`.

    ``open()`` creates the file when ``create`` is true and brings both schemas current;
    without ``create`` a missing file is :class:`sync.errors.DatabaseMissing`.
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
        received = self.clock()
        with self._write() as conn:
            row = conn.execute(
                "SELECT request_hash, response FROM hub_idempotency WHERE device_id = ?"
                " AND key = ?", (device_id, idempotency_key)).fetchone()
            if row is not None:
                if row[0] != request_hash:
                    raise IdempotencyMismatch(
                        "this Idempotency-Key was used for another request body")
                return json.loads(row[1])
            timefix.store_anchors(conn, device_id, batch.get("anchors") or [], received)
            stored, duplicates = self._store_events(conn, device_id, batch["events"], received)
            acked = self._advance(conn, device_id)
            self._apply_pending(conn, device_id)
            result = {"device_id": device_id, "stored": stored, "duplicates": duplicates,
                      "acked_through_seq": acked,
                      "missing_seqs": self._missing(conn, device_id, acked),
                      "hub_time_ns": self.clock()}
            conn.execute("UPDATE hub_devices SET last_seen_ns = ? WHERE device_id = ?",
                         (received, device_id))
            conn.execute(
                "INSERT INTO hub_idempotency (device_id, key, request_hash, response,"
                " created_at_ns) VALUES (?, ?, ?, ?, ?)",
                (device_id, idempotency_key, request_hash, json.dumps(result), received))
        return result

    def _store_events(self, conn: Any, device_id: str, events: list[dict[str, Any]],
                      received: int) -> tuple[int, int]:
        stored = duplicates = 0
        conflicts = []
        cfg = self.config
        for ev in sorted(events, key=lambda e: e["seq"]):
            same = conn.execute(
                "SELECT seq, txn_id FROM hub_events WHERE device_id = ? AND (txn_id = ?"
                " OR seq = ?)", (device_id, ev["txn_id"], ev["seq"])).fetchall()
            if (ev["seq"], ev["txn_id"]) in [tuple(r) for r in same]:
                duplicates += 1
                continue
            if same:
                # The same seq with another txn (or the reverse): the device's outbox was
                # restored or copied. Nothing is guessed; the device must be looked at.
                conflicts.append({"seq": ev["seq"], "txn_id": ev["txn_id"]})
                continue
            place = timefix.place(conn, device_id, ev, received, cfg.future_tolerance_ns,
                                  cfg.timezone)
            item = ev["payload"].get("item")
            conn.execute(
                "INSERT INTO hub_events (device_id, seq, txn_id, kind, boot_id, mono_ns,"
                " wall_ns, clock_synced, hlc, payload, item, received_at_ns,"
                " corrected_time_ns, event_time_ns, time_basis, time_flags)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (device_id, ev["seq"], ev["txn_id"], ev["kind"], ev["boot_id"], ev["mono_ns"],
                 ev["wall_ns"], int(ev["clock_synced"]), ev["hlc"],
                 json.dumps(ev["payload"], ensure_ascii=False, sort_keys=True),
                 item if isinstance(item, str) and item else None, received,
                 place.corrected_ns, place.time_ns // 1000 * 1000, place.basis,
                 ",".join(place.flags)))
            stored += 1
        if conflicts:
            raise ValidationFailed(
                "events reuse a seq or txn_id the hub already holds with another partner",
                details={"seq_conflicts": conflicts[:100]})
        return stored, duplicates

    def _advance(self, conn: Any, device_id: str) -> int:
        through = conn.execute("SELECT stored_through_seq FROM hub_devices WHERE device_id = ?",
                               (device_id,)).fetchone()[0]
        for (seq,) in conn.execute("SELECT seq FROM hub_events WHERE device_id = ? AND seq > ?"
                                   " ORDER BY seq", (device_id, through)):
            if seq != through + 1:
                break
            through = seq
        conn.execute("UPDATE hub_devices SET stored_through_seq = ? WHERE device_id = ?",
                     (through, device_id))
        return through

    def _missing(self, conn: Any, device_id: str, acked: int) -> list[int]:
        missing: list[int] = []
        expected = acked + 1
        for (seq,) in conn.execute("SELECT seq FROM hub_events WHERE device_id = ? AND seq > ?"
                                   " ORDER BY seq", (device_id, acked)):
            while expected < seq and len(missing) < 100:
                missing.append(expected)
                expected += 1
            if len(missing) >= 100:
                break
            expected = seq + 1
        return missing

    def _apply_pending(self, conn: Any, device_id: str) -> None:
        """Apply the device's stored events that have no gap before them, in seq order."""
        done, through = conn.execute(
            "SELECT applied_through_seq, stored_through_seq FROM hub_devices"
            " WHERE device_id = ?", (device_id,)).fetchone()
        pending = conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM hub_events WHERE device_id = ? AND seq > ?"
            " AND seq <= ? ORDER BY seq", (device_id, done, through)).fetchall()
        for row in pending:
            ev = load_event(row)
            conn.execute("SAVEPOINT apply_event")
            try:
                apply_event(conn, self.config, ev, self.clock())
            except Exception:
                # The event stays stored (a fact) but unapplied, and so do the ones after
                # it: order matters. The next push of this device tries again.
                conn.execute("ROLLBACK TO apply_event")
                conn.execute("RELEASE apply_event")
                log.exception("applying %s event seq %d of %s failed", ev.kind, ev.seq,
                              device_id)
                break
            conn.execute("RELEASE apply_event")
            done = ev.seq
        conn.execute("UPDATE hub_devices SET applied_through_seq = ? WHERE device_id = ?",
                     (done, device_id))

    # -- pull ----------------------------------------------------------------------------

    def changes(self, device_id: str, cursor: str | None, limit: int) -> dict[str, Any]:
        with self._read() as conn:
            return changes.page(conn, device_id, cursor, limit).as_dict()

    def snapshot(self, device_id: str) -> Snapshot:
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

    def exceptions(self, device_id: str | None, status: str = "open") -> list[dict[str, Any]]:
        sql = ("SELECT id, device_id, txn_id, seq, kind, code, message, status, event_time_ns"
               " FROM hub_exceptions WHERE (? IS NULL OR device_id = ?)"
               " AND (? = 'all' OR status = ?) ORDER BY id")
        keys = ("id", "device_id", "txn_id", "seq", "kind", "code", "message", "status",
                "event_time_ns")
        with self._read() as conn:
            return [dict(zip(keys, r, strict=True)) for r in
                    conn.execute(sql, (device_id, device_id, status, status))]

    def compact(self, keep_days: float) -> int:
        """Forget changes older than ``keep_days`` (and idempotency answers as old); devices
        whose cursor is older must take a new snapshot. Returns the changes removed."""
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
