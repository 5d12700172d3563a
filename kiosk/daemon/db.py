"""The daemon's one writer: every circulation call runs on one thread that owns the cache.

:class:`Writer` runs :class:`~sync.circulation.Circulation` and the few other reads and
writes the daemon needs on a single-thread executor; the event loop awaits them. Between
patron sessions it checkpoints the WAL (:meth:`Writer.checkpoint`), never inside a loan.

It also keeps the **flag journal** (table ``flag_pending``, migration 3): a loan made at the
pad gets a row in the same transaction as the loan itself, and the row goes once the tag's
security flag has read back "on loan". A loan undone because its flag could not be set keeps
its row (state ``undone``) until the tag reads "on the shelf" again. A row speaks for its
book only until the book circulates again: a later loan or return through the writer
replaces it in the same transaction (:meth:`Writer.forget_stale` drops rows overtaken
otherwise). So after a crash or a power cut the rows left name every book that may have
left the building without a secured tag, or may carry an on-loan flag for a loan that was
undone; ``kiosk status`` lists them.

The module's read functions (:func:`queue_report`, :func:`pending_flags`, :func:`last_sync`)
take a connection, so the ``kiosk`` command uses the same ones when no daemon runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sync import learned, migrations, outbox
from sync.circulation import Circulation, Identity, Outcome
from sync.clock import Clock
from sync.db import Cache
from sync.online import IlsDecision
from sync.policy import Policy, Station
from sync.rules import Reason
from sync.sip2 import replay as sip2_replay
from sync.staff import Override, StaffSession
from sync.syncer import LAST_SYNC_KEY

T = TypeVar("T")
# A transaction hook: (connection, last outbox seq of this device before the change).
Hook = Callable[[sqlite3.Connection, int], None]


def _last_seq(conn: sqlite3.Connection, device_id: str) -> int:
    row = conn.execute("SELECT last_seq FROM outbox_counters WHERE device_id = ?",
                       (device_id,)).fetchone()
    return row[0] if row else 0


class JournalCache(Cache):
    """A cache whose next write transactions run a hook just before they commit, so that a
    journal row commits with the change it belongs to (see :meth:`hooked`)."""

    device_id = ""
    _hook: Hook | None = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with super().transaction() as conn:
            hook = self._hook
            first = _last_seq(conn, self.device_id) if hook is not None else 0
            yield conn
            if hook is not None:
                hook(conn, first)

    @contextlib.contextmanager
    def hooked(self, hook: Hook) -> Iterator[None]:
        """Run ``hook`` inside every write transaction of the block, before its commit."""
        self._hook = hook
        try:
            yield
        finally:
            self._hook = None


def open_cache(path: Path, *, create: bool, device_id: str) -> JournalCache:
    """Open the cache (creating it only when ``create``) and bring its schema up to this
    release: the daemon owns the database, so it migrates it at start, each migration in
    its own transaction."""
    cache = JournalCache.open(path, create=create, check_schema=False)
    try:
        migrations.migrate(cache.conn, cache.path)
    except BaseException:
        cache.close()
        raise
    cache.device_id = device_id
    return cache


class Writer:
    """The cache and circulation, owned by one thread. Every method whose name does not
    start with ``a`` runs on that thread: call them through :meth:`run`."""

    def __init__(self, path: Path, identity: Identity, policy: Policy, clock: Clock, *,
                 create: bool = False, online: Callable[[], bool] = lambda: False) -> None:
        self.path = path
        self.identity = identity
        self.policy = policy
        self.clock = clock
        self.create = create
        self.online = online
        self.cache: JournalCache | None = None
        self.circulation: Circulation | None = None
        self.busy_since: float | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="db writer")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the writer's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._timed,
                                                                fn, args)

    def _timed(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        self.busy_since = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.busy_since = None

    def healthy(self, now: float, stall_after: float) -> bool:
        """No call has been running on the writer's thread for ``stall_after`` seconds."""
        busy = self.busy_since
        return busy is None or now - busy < stall_after

    def open(self) -> None:
        self.cache = open_cache(self.path, create=self.create, device_id=self.identity.device_id)
        self.circulation = Circulation(self.cache, self.identity, self.policy, self.clock)

    def close(self) -> None:
        """Checkpoint and close; the executor's thread ends. Idempotent."""
        if self.cache is not None:
            with contextlib.suppress(Exception):
                self.cache.checkpoint()
            self.cache.close()
            self.cache = None

    def shutdown(self) -> None:
        self._executor.submit(self.close).result()
        self._executor.shutdown(wait=True)

    def _circ(self) -> Circulation:
        assert self.circulation is not None, "the writer is not open"
        self.circulation.online = self.online()
        return self.circulation

    def _cache(self) -> JournalCache:
        assert self.cache is not None, "the writer is not open"
        return self.cache

    # -- lending at the pad, with the flag journal ---------------------------------------

    def lend(self, card: str, barcode: str, uid: str, *, by: StaffSession | None = None,
             override_reason: str | None = None, journal: bool = True,
             ils: IlsDecision | None = None, ils_unknown: bool = False) -> Outcome:
        """Lend ``barcode`` to ``card``; an allowed loan commits together with its journal
        row (state ``lent``) naming tag ``uid``. Older rows of the same book go in that
        transaction: the new loan's flag decides what its tag must say now.

        ``by``: lent at the staff desk by this staff member (audited); with
        ``override_reason`` too, the overridable refusals are let through (see
        :meth:`sync.circulation.Circulation.checkout`). ``journal`` False: a book typed at
        the desk, whose tag nobody will write, gets no journal row.

        ``ils``: the library system lent it online (SIP2); ``ils_unknown``: it was asked and
        the answer was lost, so the loan is decided here and its event is recorded as sent
        with a lost reply (the replayer checks before it sends again)."""
        now = _now()

        def hook(conn: sqlite3.Connection, first_seq: int) -> None:
            if ils_unknown:
                self._answer_lost(conn, first_seq, "checkout")
            if not journal or not self._appended(conn, first_seq, "checkout"):
                return
            conn.execute("DELETE FROM flag_pending WHERE barcode = ?", (barcode,))
            conn.execute(
                "INSERT INTO flag_pending (checkout_txn, barcode, tag_uid, card, state,"
                " created_at) SELECT txn_id, ?, ?, ?, 'lent', ? FROM outbox"
                " WHERE device_id = ? AND seq > ? AND kind = 'checkout'",
                (barcode, uid, card, now, self.identity.device_id, first_seq))

        with self._cache().hooked(hook):
            if by is None:
                return self._circ().checkout(card, barcode, decided_by_ils=ils)
            if override_reason is not None:
                return self._circ().checkout(card, barcode, Station.DESK,
                                             override=Override(by, override_reason))
            return self._circ().checkout(card, barcode, Station.DESK, by=by,
                                         decided_by_ils=ils)

    def flag_confirmed(self, txn_id: str) -> None:
        """The tag of loan ``txn_id`` read back "on loan": its journal row goes."""
        with self._cache().transaction() as conn:
            conn.execute("DELETE FROM flag_pending WHERE checkout_txn = ? AND state = 'lent'",
                         (txn_id,))

    def undo(self, barcode: str, txn_id: str) -> Outcome:
        """Take back the loan ``txn_id`` whose flag could not be set (a return, with its
        event); its journal row becomes ``undone`` in the same transaction."""

        def journal(conn: sqlite3.Connection, first_seq: int) -> None:
            if self._appended(conn, first_seq, "checkin"):
                conn.execute("UPDATE flag_pending SET state = 'undone' WHERE checkout_txn = ?",
                             (txn_id,))

        with self._cache().hooked(journal):
            return self._circ().checkin(barcode)

    def shelf_confirmed(self, txn_id: str) -> None:
        """The tag of the undone loan ``txn_id`` reads "on the shelf" again."""
        with self._cache().transaction() as conn:
            conn.execute("DELETE FROM flag_pending WHERE checkout_txn = ? AND state = 'undone'",
                         (txn_id,))

    def give_back(self, barcode: str, station: Station = Station.KIOSK, *,
                  by: StaffSession | None = None, ils: IlsDecision | None = None,
                  ils_unknown: bool = False) -> Outcome:
        """A return (the flag is set afterwards, at the pad). A committed return ends the
        book's journal rows: a returned book with an on-loan flag is harmless. ``by``:
        taken back at the staff desk by this staff member (audited). ``ils`` and
        ``ils_unknown``: as for :meth:`lend`."""
        if by is not None:
            station = Station.DESK
        return self._superseding(barcode, "checkin", lambda: self._circ().checkin(
            barcode, station, by=by, decided_by_ils=ils), lost_answer=ils_unknown)

    def forget_stale(self) -> int:
        """Delete journal rows that no longer say anything about a tag (their loan was
        returned since, or the book was lent again); how many."""
        with self._cache().transaction() as conn:
            return conn.execute(
                "DELETE FROM flag_pending WHERE checkout_txn IN (SELECT f.checkout_txn"
                " FROM flag_pending f JOIN loans l ON l.checkout_txn = f.checkout_txn"
                " WHERE (f.state = 'lent' AND l.returned_at IS NOT NULL)"
                " OR (f.state = 'undone' AND EXISTS (SELECT 1 FROM loans n"
                "     WHERE n.item_id = l.item_id AND n.returned_at IS NULL)))").rowcount

    # -- staff circulation through the control socket ------------------------------------

    def checkout(self, card: str, barcode: str, station: Station) -> Outcome:
        return self._superseding(barcode, "checkout",
                                 lambda: self._circ().checkout(card, barcode, station))

    def checkin(self, barcode: str, station: Station) -> Outcome:
        return self.give_back(barcode, station)

    def learn_patron(self, card: str, status: Any) -> list[str]:
        """Keep what the library system said of ``card`` (:mod:`sync.learned`)."""
        with self._cache().transaction() as conn:
            return learned.learn_patron(
                conn, card, known=status.valid is not False and bool(status.patron_id),
                name=status.name or "", may_borrow=status.may_borrow,
                message=status.screen_message, when=_now())

    def renew(self, card: str, barcode: str, station: Station, *,
              ils: IlsDecision | None = None) -> Outcome:
        return self._circ().renew(card, barcode, station, decided_by_ils=ils)

    def pickup(self, card: str, hold_id: int, station: Station, *,
               ils: IlsDecision | None = None, ils_unknown: bool = False) -> Outcome:
        """A hold collected from its locker; ``ils``/``ils_unknown`` as for :meth:`lend`."""

        def hook(conn: sqlite3.Connection, first_seq: int) -> None:
            if ils_unknown:
                self._answer_lost(conn, first_seq, "pickup")

        with self._cache().hooked(hook):
            return self._circ().pickup(card, hold_id, station, decided_by_ils=ils)

    def ready_holds(self, card: str) -> list[dict[str, Any]]:
        return self._circ().ready_holds(card)

    def check_pickup(self, card: str, hold_id: int, station: Station) -> Outcome:
        return self._circ().check_pickup(card, hold_id, station)

    # -- night entry ---------------------------------------------------------------------

    def entry_problem(self, card: str) -> Reason | None:
        return self._circ().entry_problem(card)

    def count_entry(self, problem: Reason | None) -> None:
        self._circ().count_entry(problem)

    def _superseding(self, barcode: str, kind: str, change: Callable[[], Outcome],
                     lost_answer: bool = False) -> Outcome:
        """Run ``change``; when it commits an event of ``kind``, the book's journal rows go
        in the same transaction (what its tag must say is decided anew). ``lost_answer``:
        see :meth:`_answer_lost`."""

        def journal(conn: sqlite3.Connection, first_seq: int) -> None:
            if lost_answer:
                self._answer_lost(conn, first_seq, kind)
            if self._appended(conn, first_seq, kind):
                conn.execute("DELETE FROM flag_pending WHERE barcode = ?", (barcode,))

        with self._cache().hooked(journal):
            return change()

    def _answer_lost(self, conn: sqlite3.Connection, first_seq: int, kind: str) -> None:
        """The events of ``kind`` this transaction appended were put to the library system
        online and the answer was lost: on record as sent (``sip2_outcomes`` state
        ``sending``), so the replayer asks item information before it sends them again."""
        txns = [r[0] for r in conn.execute(
            "SELECT txn_id FROM outbox WHERE device_id = ? AND seq > ? AND kind = ?",
            (self.identity.device_id, first_seq, kind))]
        sip2_replay.record_online(conn, txns, state="sending", code="online_unknown",
                                  acknowledge=False, stamp=_now())

    def _appended(self, conn: sqlite3.Connection, first_seq: int, kind: str) -> bool:
        """Whether this transaction appended an outbox event of ``kind``."""
        return conn.execute(
            "SELECT 1 FROM outbox WHERE device_id = ? AND seq > ? AND kind = ? LIMIT 1",
            (self.identity.device_id, first_seq, kind)).fetchone() is not None

    # -- reads -------------------------------------------------------------------------------

    def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in a read transaction."""
        with self._cache().snapshot() as conn:
            return fn(conn, *args)

    def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in a write transaction (for what is not circulation: the
        statistics of the screen, say)."""
        with self._cache().transaction() as conn:
            return fn(conn, *args)

    def today(self) -> str:
        """Today's date where the kiosk stands (the statistics' day)."""
        seconds = self.clock.wall_ns() / 1e9
        return datetime.fromtimestamp(seconds, self.identity.timezone).date().isoformat()

    def checkpoint(self) -> tuple[int, int]:
        return self._cache().checkpoint()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- reads shared with the kiosk command ----------------------------------------------------


def pending_flags(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The flag journal, oldest first: ``state`` ``lent`` (the loan stands, its tag may not
    say so) or ``undone`` (the loan was taken back, its tag may still say "on loan")."""
    rows = conn.execute(
        "SELECT f.checkout_txn, f.barcode, f.tag_uid, f.card, f.state, f.created_at, i.title"
        " FROM flag_pending f LEFT JOIN items i ON i.barcode = f.barcode"
        " ORDER BY f.created_at, f.checkout_txn").fetchall()
    return [{"checkout_txn": r[0], "barcode": r[1], "tag_uid": r[2], "card": r[3],
             "state": r[4], "created_at": r[5], "title": r[6]} for r in rows]


def last_sync(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """What the last sync with the hub did (None: never synced)."""
    row = conn.execute("SELECT value FROM local_state WHERE key = ?",
                       (LAST_SYNC_KEY,)).fetchone()
    if row is None:
        return None
    try:
        return json.loads(row[0])
    except (TypeError, ValueError):
        return None


def flagged(conn: sqlite3.Connection, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """(how many, the first ``limit``) events the hub flagged, oldest first, with what the
    outbox still knows of them; then those the library system refused over SIP2
    (:func:`sync.sip2.replay.refused`, ``source`` ``sip2``)."""
    hub_total, hub_rows = _hub_flagged(conn, limit)
    sip2_total, sip2_rows = sip2_replay.refused(conn, max(0, limit - len(hub_rows)))
    return hub_total + sip2_total, hub_rows + sip2_rows


def _hub_flagged(conn: sqlite3.Connection, limit: int) -> tuple[int, list[dict[str, Any]]]:
    total = conn.execute("SELECT count(*) FROM sync_verdicts WHERE outcome != 'ok'").fetchone()[0]
    rows = conn.execute(
        "SELECT v.device_id, v.seq, v.txn_id, v.outcome, v.code, v.message,"
        " v.corrected_time_ns, o.kind, o.wall_ns, o.payload FROM sync_verdicts v"
        " LEFT JOIN outbox o ON o.txn_id = v.txn_id WHERE v.outcome != 'ok'"
        " ORDER BY v.device_id, v.seq LIMIT ?", (limit,)).fetchall()
    out = []
    for device, seq, txn, outcome, code, message, corrected, kind, wall_ns, payload in rows:
        p = json.loads(payload) if payload else {}
        out.append({"device_id": device, "seq": seq, "txn_id": txn, "outcome": outcome,
                    "code": code, "message": message, "corrected_time_ns": corrected,
                    "kind": kind, "wall_ns": wall_ns, "card": p.get("card"),
                    "item": p.get("item"), "source": "hub"})
    return total, out


def queue_report(conn: sqlite3.Connection, limit: int) -> dict[str, Any]:
    """What ``kiosk queue --json`` prints: the depth, the oldest ``limit`` unacknowledged
    events, the events the hub or the library system flagged, and the events waiting for
    the library system (SIP2)."""
    flagged_total, flags = flagged(conn, limit)
    return {"depth": outbox.depth(conn),
            "events": [e.as_dict() for e in outbox.unacknowledged(conn, limit=limit)],
            "flagged_total": flagged_total, "flagged": flags,
            "sip2_waiting": sip2_replay.waiting(conn)[:limit]}


def store_report(conn: sqlite3.Connection) -> dict[str, Any]:
    """The database's part of ``kiosk status``: queue depth, last sync, flag journal."""
    return {"queue_depth": outbox.depth(conn), "last_sync": last_sync(conn),
            "flag_pending": pending_flags(conn)}


def item_on_loan(conn: sqlite3.Connection, barcode: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM loans l JOIN items i ON i.id = l.item_id"
        " WHERE i.barcode = ? AND l.returned_at IS NULL", (barcode,)).fetchone()
    return row is not None


def receipt_names(conn: sqlite3.Connection, branch: str) -> tuple[str, str]:
    """(the county library's name, this branch's name) for the top of a receipt."""
    central = conn.execute("SELECT name FROM branches WHERE kind = 'central'"
                           " ORDER BY isil LIMIT 1").fetchone()
    here = conn.execute("SELECT name FROM branches WHERE isil = ?", (branch,)).fetchone()
    return (central[0] if central else ""), (here[0] if here else branch)


def pin_hash(conn: sqlite3.Connection, card: str) -> str | None:
    """The stored PIN hash of ``card``'s holder (None: no PIN, or no such card)."""
    row = conn.execute("SELECT pin_hash FROM patrons WHERE card_number = ?", (card,)).fetchone()
    return row[0] if row and row[0] else None


def patron_name(conn: sqlite3.Connection, card: str) -> str | None:
    row = conn.execute("SELECT name FROM patrons WHERE card_number = ?", (card,)).fetchone()
    return row[0] if row else None


def outcome_dict(outcome: Outcome) -> dict[str, Any]:
    """An outcome as JSON: :meth:`~sync.circulation.Outcome.as_dict` plus what a client
    needs to tell a person about it in their own language (``params`` of its message, and
    whether it changed anything)."""
    return {**outcome.as_dict(), "params": outcome.params(),
            "changes_state": outcome.decision.changes_state}
