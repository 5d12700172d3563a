"""The device side of sync: push the outbox, then pull the change feed (DESIGN.md section 6).

What a caller may rely on:

- **Nothing is lost or doubled.** An event leaves the outbox's unacknowledged set only in
  the transaction that records the hub's ``acked_through_seq``; a batch that may or may not
  have arrived is sent again, with the same ``Idempotency-Key`` and the same bytes, and the
  hub stores each ``(device_id, txn_id)`` once. Events are never deleted here.
- **The cursor is never ahead of the data.** Each page of changes is applied together with
  its cursor in one transaction; after a power cut the device resumes at most one page back,
  and re-applying a page is harmless (upserts are version-guarded).
- **Local pending wins.** A hub row touched by one of our events the hub has not stored yet
  is held back (see :mod:`sync.feeds`) and applied once the hub has the event.
- **A new device** (no cursor) starts from the snapshot, streamed and applied in batches;
  so does a device whose cursor the hub no longer keeps (410), without touching the outbox.
- Failures of the link are retried with capped exponential backoff and full jitter, at
  least as long as the hub's ``Retry-After``; :meth:`Syncer.run_once` returns a
  :class:`SyncReport` whose ``error`` says what stopped it, and raises only for trouble
  with the cache itself (:mod:`sync.errors`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sync import cardnumbers, feeds, migrations, outbox, stats, stops
from sync.client import (
    ClockAnchor,
    CursorExpired,
    HubClient,
    HubError,
    HubUnreachable,
    encode_body,
    software_version,
)
from sync.clock import read
from sync.db import Cache

log = logging.getLogger(__name__)
T = TypeVar("T")

INFLIGHT_KEY = "sync.push.inflight"
LAST_SYNC_KEY = "sync.last"
LAST_OK_KEY = "sync.last_ok"  # when push and pull last both reached their end
STATS_SENT_KEY = "sync.stats.acked"  # {day: digest} of the daily figures the hub holds
STATS_DAYS_PER_PUT = 31
MAX_ANCHORS = 16


@dataclass(frozen=True)
class SyncOptions:
    """How the syncer paces itself; the kiosk fills this from the ``[hub]`` config."""

    batch_size: int = 500
    page_size: int = 1000
    retry_initial_s: float = 1.0
    retry_max_s: float = 300.0
    retry_after_max_s: float = 3600.0
    attempts: int = 6
    sync_interval_s: float = 60.0
    probe_interval_s: float = 15.0
    snapshot_batch_rows: int = 5000
    heartbeat: bool = True
    stats: bool = True
    # Card numbers to lease from the hub when this device's run low (0: it issues no cards).
    card_range_size: int = 0
    # The kiosk's days (of its daily figures); the county's zone unless the caller says.
    timezone: ZoneInfo = field(default_factory=lambda: stats.COUNTY_TZ)


@dataclass
class SyncReport:
    """What one :meth:`Syncer.run_once` did. ``ok`` is true when both push and pull reached
    their end; ``error`` is the failure that stopped it otherwise."""

    sent: int = 0
    acknowledged: int = 0
    duplicates: int = 0
    batches: int = 0
    pulled: int = 0
    pages: int = 0
    held_back: int = 0
    bootstrapped: bool = False
    snapshot_rows: int = 0
    flagged: list[dict[str, Any]] = field(default_factory=list)
    stats_days: int = 0
    heartbeats: int = 0
    queue_depth: int = 0
    retries: int = 0
    error: HubError | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "error"}
        out["ok"] = self.ok
        out["error"] = None if self.error is None else {
            "code": self.error.code, "retryable": self.error.retryable,
            "message_key": self.error.message_key, "detail": str(self.error)}
        return out


class Backoff:
    """Capped exponential backoff with full jitter: the n-th wait is uniform in
    ``[0, min(cap, initial * 2**n)]``, and never shorter than a ``Retry-After`` the hub
    sent (itself capped by ``retry_after_max``)."""

    def __init__(self, initial: float, cap: float, retry_after_max: float = 3600.0,
                 rng: random.Random | None = None) -> None:
        self.initial, self.cap, self.retry_after_max = initial, cap, retry_after_max
        self.rng = rng or random.Random()
        self.failures = 0

    def next(self, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.initial * 2 ** min(self.failures, 62))
        self.failures += 1
        delay = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_max))
        return delay

    def reset(self) -> None:
        self.failures = 0


class Stopped(Exception):
    """The stop event was set while the syncer waited."""


class Syncer:
    """Push then pull for one device on one cache, over one :class:`HubClient`.

    ``status`` (optional) returns extra heartbeat fields (``state``, ``devices``,
    ``printer``, ``alerts``...) from the daemon; it is called on the syncer's thread. The
    syncer owns no thread: call :meth:`run_once`, or :meth:`run_forever` from the daemon's
    sync worker thread. A heartbeat goes out after every sync (so every
    ``sync_interval_s``), and at once, alone, after :meth:`request_heartbeat`.
    """

    def __init__(self, cache: Cache, client: HubClient, *, options: SyncOptions | None = None,
                 rng: random.Random | None = None,
                 status: Callable[[], dict[str, Any]] | None = None) -> None:
        self.cache = cache
        self.client = client
        self.device_id = client.device_id
        self.options = options or SyncOptions()
        self.status = status
        self.rng = rng or random.Random()
        self._anchors: dict[str, ClockAnchor] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._sync_asked = False
        self._beat_asked = False
        self.online = False
        self.last_ok_at: str | None = None
        client.on_anchor = self._record_anchor

    def __repr__(self) -> str:
        return f"<Syncer {self.device_id} {self.cache.path} -> {self.client.url}>"

    # -- waiting and retrying ------------------------------------------------------------

    def request_sync(self) -> None:
        """Ask :meth:`run_forever` to sync now (new events, or the technician asked)."""
        self._sync_asked = True
        self._wake.set()

    def request_heartbeat(self) -> None:
        """Ask :meth:`run_forever` for a heartbeat now (the kiosk's state or an alert
        changed); safe from any thread. Between syncs only the heartbeat is sent."""
        self._beat_asked = True
        self._wake.set()

    def _idle(self, seconds: float) -> None:
        """Wait ``seconds`` between syncs: return early when a sync is asked; send a
        heartbeat alone (and wait on) when only a heartbeat is."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pause(left, wakeable=True)
            if self._sync_asked or not self._beat_asked:
                return
            self._beat_asked = False
            try:
                self.heartbeat()
            except HubError as exc:
                log.info("hub: heartbeat failed: %s", exc)

    def _pause(self, seconds: float, wakeable: bool = False) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.is_set():
                raise Stopped
            if wakeable and self._wake.wait(min(left, 0.25)):
                self._wake.clear()
                return
            if not wakeable:
                self._stop.wait(min(left, 0.25))
        if self._stop.is_set():
            raise Stopped

    def _retrying(self, call: Callable[[], T], report: SyncReport) -> T:
        backoff = Backoff(self.options.retry_initial_s, self.options.retry_max_s,
                          self.options.retry_after_max_s, self.rng)
        for attempt in range(1, self.options.attempts + 1):
            try:
                result = call()
                self.online = True
                return result
            except HubError as exc:
                self.online = not isinstance(exc, HubUnreachable)
                if not exc.retryable or attempt == self.options.attempts:
                    raise
                delay = backoff.next(exc.retry_after)
                report.retries += 1
                log.info("hub: %s; retry %d in %.2f s", exc, attempt, delay)
                self._pause(delay)
        raise AssertionError("unreachable")

    # -- clock anchors -------------------------------------------------------------------

    def _record_anchor(self, anchor: ClockAnchor) -> None:
        self._anchors[anchor.boot_id] = anchor

    def _flush_anchors(self, conn: Any) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for a in self._anchors.values():
            conn.execute(
                "INSERT INTO sync_anchors (boot_id, mono_ns, hub_time_ns, rtt_ns, recorded_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (boot_id) DO UPDATE SET"
                " mono_ns = excluded.mono_ns, hub_time_ns = excluded.hub_time_ns,"
                " rtt_ns = excluded.rtt_ns, recorded_at = excluded.recorded_at",
                (a.boot_id, a.mono_ns, a.hub_time_ns, a.rtt_ns, now))
        self._anchors.clear()

    def _anchors_for(self, conn: Any, boot_ids: set[str]) -> list[dict[str, Any]]:
        rows = {r[0]: {"boot_id": r[0], "mono_ns": r[1], "hub_time_ns": r[2], "rtt_ns": r[3]}
                for r in conn.execute("SELECT boot_id, mono_ns, hub_time_ns, rtt_ns"
                                      " FROM sync_anchors")}
        rows.update({a.boot_id: a.as_dict() for a in self._anchors.values()})
        wanted = boot_ids | {self.client.clock.boot_id()}
        return [rows[b] for b in sorted(wanted) if b in rows][:MAX_ANCHORS]

    # -- push ----------------------------------------------------------------------------

    def push(self, report: SyncReport) -> None:
        """Send unacknowledged events of this device in batches until none is left."""
        stalled = 0
        while True:
            with self.cache.snapshot() as conn:
                events = unacked_events(conn, self.device_id, self.options.batch_size)
                if not events:
                    return
                first, last = events[0].seq, events[-1].seq
                anchors = self._inflight_anchors(conn, first, last)
                fresh = anchors is None
                if fresh:
                    anchors = self._anchors_for(conn, {e.boot_id for e in events})
            if fresh:
                # Remembered before the first send, so a batch resent after a crash has the
                # same body as before and may reuse its Idempotency-Key.
                with self.cache.transaction() as conn:
                    self._flush_anchors(conn)
                    conn.execute(
                        "INSERT OR REPLACE INTO local_state (key, value) VALUES (?, ?)",
                        (INFLIGHT_KEY, json.dumps({"first": first, "last": last,
                                                   "anchors": anchors})))
            body = encode_body({"device_id": self.device_id, "anchors": anchors,
                                "events": [_wire_event(e) for e in events]})
            key = f"{self.device_id}:{first}-{last}"
            result = self._retrying(lambda b=body, k=key: self.client.push(b, k), report)
            report.batches += 1
            report.sent += len(events)
            report.duplicates += result.duplicates
            acked = result.acked_through_seq
            with self.cache.transaction() as conn:
                now = datetime.now(UTC).isoformat(timespec="seconds")
                if acked < first - 1:
                    # The hub says it lacks events we hold as acknowledged (its database was
                    # restored from a backup): send them again.
                    conn.execute("UPDATE outbox SET acked_at = NULL WHERE device_id = ?"
                                 " AND seq > ? AND acked_at IS NOT NULL",
                                 (self.device_id, acked))
                report.acknowledged += outbox.acknowledge(conn, self.device_id, acked, now)
                conn.execute("DELETE FROM local_state WHERE key = ?", (INFLIGHT_KEY,))
                self._flush_anchors(conn)
                report.held_back -= feeds.release_deferred(conn, self.device_id)
            stalled = stalled + 1 if acked < first else 0
            if stalled >= self.options.attempts:
                raise HubError(f"push: hub acknowledges nothing past seq {acked}",
                               code="no_progress", retryable=False)

    def _inflight_anchors(self, conn: Any, first: int, last: int) -> list[dict] | None:
        row = conn.execute("SELECT value FROM local_state WHERE key = ?",
                           (INFLIGHT_KEY,)).fetchone()
        if row is None:
            return None
        inflight = json.loads(row[0])
        if (inflight.get("first"), inflight.get("last")) != (first, last):
            return None
        return inflight["anchors"]

    # -- pull ----------------------------------------------------------------------------

    def pull(self, report: SyncReport) -> None:
        """Apply pages of the change feed until the hub has no more; bootstrap first when
        the device has no cursor or the hub no longer knows it."""
        while True:
            with self.cache.snapshot() as conn:
                cursor = feeds.cursor(conn)
            if cursor is None:
                self.bootstrap(report)
                continue
            try:
                page = self._retrying(
                    lambda c=cursor: self.client.changes(c, self.options.page_size), report)
            except CursorExpired:
                log.warning("hub: cursor expired; taking a new snapshot")
                with self.cache.transaction() as conn:
                    feeds.forget_cursor(conn)
                continue
            with self.cache.transaction() as conn:
                # Checked inside the write lock: another syncer on this file may have moved
                # the cursor meanwhile, and this page would then be stale.
                if feeds.cursor(conn) != cursor:
                    continue
                applied = feeds.apply_page(conn, self.device_id, page.changes)
                feeds.store_cursor(conn, page.cursor)
                self._flush_anchors(conn)
            report.pages += 1
            report.pulled += applied.applied
            report.held_back += applied.held_back
            report.flagged += applied.flagged
            if not page.has_more:
                return

    def bootstrap(self, report: SyncReport) -> None:
        """Stream the snapshot into the cache in batches; store its cursor only when the
        stream ended with its ``end`` line. A broken stream is retried from the start
        (rows already applied are re-applied harmlessly: upserts are version-guarded)."""
        backoff = Backoff(self.options.retry_initial_s, self.options.retry_max_s,
                          self.options.retry_after_max_s, self.rng)
        for attempt in range(1, self.options.attempts + 1):
            try:
                with self.client.snapshot() as lines:
                    loader = feeds.SnapshotLoader(self.cache, self.device_id,
                                                  self.options.snapshot_batch_rows)
                    rows = loader.load(lines, before_commit=self._flush_anchors)
                self.online = True
                report.bootstrapped = True
                report.snapshot_rows += rows
                return
            except HubError as exc:
                self.online = not isinstance(exc, HubUnreachable)
                if not exc.retryable or attempt == self.options.attempts:
                    raise
                report.retries += 1
                log.info("hub: snapshot broken (%s); retry %d", exc, attempt)
                self._pause(backoff.next(exc.retry_after))

    # -- heartbeat -----------------------------------------------------------------------

    def heartbeat(self, report: SyncReport | None = None) -> None:
        """Send the device's status (docs/hub-api.yaml ``Heartbeat``): queue depth, last
        successful sync, clock offset, versions, free disk, the van stop, and what
        :attr:`status` adds (the daemon's state, devices, printer paper and open alerts)."""
        clock = self.client.clock
        with self.cache.snapshot() as conn:
            depth = outbox.depth(conn)
            stop = stops.current(conn)
            schema = max(migrations.applied(conn), default=0)
            row = conn.execute("SELECT value FROM local_state WHERE key = ?",
                               (LAST_OK_KEY,)).fetchone()
        body: dict[str, Any] = {
            "device_id": self.device_id, "sent_at_ns": clock.wall_ns(),
            "queue_depth": depth, "clock_synced": clock.synchronised(),
            "version": software_version(),
            "versions": {"software": software_version(), "schema": schema},
            "last_sync_at": self.last_ok_at or (row[0] if row else None),
            "stop": stop,
        }
        with contextlib.suppress(OSError):
            body["disk_free_bytes"] = shutil.disk_usage(
                self.cache.path.resolve().parent).free
        anchor = self.client.last_anchor
        if anchor is not None:
            body["anchors"] = [anchor.as_dict()]
            body["clock_offset_ns"] = clock.wall_ns() - (
                anchor.hub_time_ns + clock.monotonic_ns() - anchor.mono_ns)
        if self.status is not None:
            try:
                body.update(self.status())
            except Exception:  # the daemon's part failing must not stop the sync worker
                log.exception("heartbeat: the daemon's status failed; sent without it")
        self.client.heartbeat(body)
        if report is not None:
            report.heartbeats += 1

    # -- daily figures ---------------------------------------------------------------------

    def push_stats(self, report: SyncReport) -> None:
        """Send the daily figures of every day changed since the hub last acknowledged it,
        as absolute values (the hub replaces the device's figures of each day sent), at most
        :data:`STATS_DAYS_PER_PUT` days a request. Sending a day again is harmless."""
        tz = self.options.timezone
        while True:
            with self.cache.snapshot() as conn:
                row = conn.execute("SELECT value FROM local_state WHERE key = ?",
                                   (STATS_SENT_KEY,)).fetchone()
                acked: dict[str, str] = json.loads(row[0]) if row else {}
                digests = stats.day_digests(conn)
                days = stats.changed_days(digests, acked)[:STATS_DAYS_PER_PUT]
                if not days:
                    return
                body = {"device_id": self.device_id,
                        "days": [{"day": d, "figures": stats.day_figures(conn, d, tz)}
                                 for d in days]}
            self._retrying(lambda b=body: self.client.put_stats(b), report)
            report.stats_days += len(days)
            with self.cache.transaction() as conn:
                row = conn.execute("SELECT value FROM local_state WHERE key = ?",
                                   (STATS_SENT_KEY,)).fetchone()
                acked = json.loads(row[0]) if row else {}
                # The digest read with the figures sent: a figure counted meanwhile makes
                # the day differ again, and it goes with the next sync.
                acked.update({d: digests[d] for d in days})
                conn.execute("INSERT OR REPLACE INTO local_state (key, value) VALUES (?, ?)",
                             (STATS_SENT_KEY, json.dumps(acked, sort_keys=True)))

    # -- card numbers ----------------------------------------------------------------------

    def lease_cards(self, report: SyncReport) -> bool:
        """Lease a new range of card numbers when this device's are running low (the
        registration desk warns at the same point), and pull it at once. Whether it
        leased."""
        today = read(self.client.clock).local_date(self.options.timezone)
        with self.cache.snapshot() as conn:
            left = cardnumbers.supply(conn, today)
        if left.state is cardnumbers.SupplyState.OK:
            return False
        self._retrying(lambda: self.client.lease_card_range(self.options.card_range_size),
                       report)
        self.pull(report)
        return True

    # -- the whole exchange ----------------------------------------------------------------

    def run_once(self) -> SyncReport:
        """Push, then pull, then send a heartbeat; never raises a :class:`HubError`."""
        report = SyncReport()
        started = time.monotonic()
        try:
            if self.client.clock.boot_id() not in self._known_boots():
                # One cheap exchange first, so the first batch carries this boot's anchor.
                self._retrying(self.client.health, report)
            self._sync_asked = self._beat_asked = False
            try:
                self.push(report)
                if self.options.stats:
                    self.push_stats(report)
            except HubError as exc:
                if exc.retryable or isinstance(exc, HubUnreachable):
                    raise
                report.error = exc  # e.g. a refused batch: the feed may still come down
            self.pull(report)
            if self.options.card_range_size and report.error is None:
                self.lease_cards(report)
            if report.error is None:
                self.last_ok_at = datetime.now(UTC).isoformat(timespec="seconds")
            if self.options.heartbeat:
                with contextlib.suppress(HubError):
                    self.heartbeat(report)
        except HubError as exc:
            report.error = report.error or exc
        except Stopped:
            report.error = HubError("stopped", code="stopped", retryable=True)
        with self.cache.transaction() as conn:
            self._flush_anchors(conn)
            report.queue_depth = outbox.depth(conn)
            report.seconds = time.monotonic() - started
            if report.ok and self.last_ok_at is not None:
                conn.execute("INSERT OR REPLACE INTO local_state (key, value) VALUES (?, ?)",
                             (LAST_OK_KEY, self.last_ok_at))
            conn.execute("INSERT OR REPLACE INTO local_state (key, value) VALUES (?, ?)",
                         (LAST_SYNC_KEY, json.dumps({
                             "at": datetime.now(UTC).isoformat(timespec="seconds"),
                             **{k: v for k, v in report.as_dict().items() if k != "flagged"}})))
        return report

    def _known_boots(self) -> set[str]:
        with self.cache.snapshot() as conn:
            known = {r[0] for r in conn.execute("SELECT boot_id FROM sync_anchors")}
        return known | set(self._anchors)

    def run_forever(self, stop: threading.Event,
                    on_report: Callable[[SyncReport], None] | None = None) -> None:
        """Sync every ``sync_interval_s`` (or at once after :meth:`request_sync`) until
        ``stop`` is set. While the hub is unreachable it probes ``/health`` every
        ``probe_interval_s`` and syncs as soon as the link is back; other failures wait a
        capped, jittered backoff. Never a busy loop."""
        self._stop = stop
        failures = Backoff(self.options.retry_initial_s, self.options.retry_max_s,
                           self.options.retry_after_max_s, self.rng)
        try:
            while not stop.is_set():
                report = self.run_once()
                if on_report is not None:
                    on_report(report)
                if report.ok:
                    failures.reset()
                    self._idle(self.options.sync_interval_s)
                elif isinstance(report.error, HubUnreachable):
                    self.online = False
                    self._wait_for_link()
                else:
                    self._pause(failures.next(report.error and report.error.retry_after),
                                wakeable=True)
        except Stopped:
            return

    def _wait_for_link(self) -> None:
        while True:
            self._pause(self.options.probe_interval_s, wakeable=True)
            try:
                self.client.health()
            except HubError:
                continue
            self.online = True
            return


def unacked_events(conn: Any, device_id: str, limit: int) -> list[outbox.Event]:
    """The oldest ``limit`` unacknowledged events of ``device_id``. Events recorded under
    another device id (a renamed device) cannot be sent with this device's token."""
    rows = conn.execute(
        "SELECT device_id, seq, txn_id, kind, boot_id, mono_ns, wall_ns, clock_synced, hlc,"
        " payload, acked_at, stop FROM outbox WHERE device_id = ? AND acked_at IS NULL"
        " ORDER BY seq LIMIT ?", (device_id, int(limit))).fetchall()
    return [outbox.Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), r[8],
                         json.loads(r[9]), r[10], r[11]) for r in rows]


def _wire_event(e: outbox.Event) -> dict[str, Any]:
    wire = {"txn_id": e.txn_id, "seq": e.seq, "kind": e.kind, "boot_id": e.boot_id,
            "mono_ns": e.mono_ns, "wall_ns": e.wall_ns, "clock_synced": e.clock_synced,
            "hlc": e.hlc, "payload": e.payload}
    # Only when there is one: an event of a fixed branch keeps the bytes it had before
    # stops existed, so a batch sent by an older release and resent by this one still
    # matches its Idempotency-Key.
    if e.stop is not None:
        wire["stop"] = e.stop
    return wire
