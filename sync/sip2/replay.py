"""Replay the outbox to the library system over SIP2, each event once.

The kiosk decides from its cache, online or not, and writes every change as an event in
the outbox (:mod:`sync.outbox`). A :class:`Replayer` sends those events to the library
system when the SIP2 link is up, oldest first:

- ``checkout`` and ``pickup`` as checkout (11), ``renew`` as renew (29), ``checkin`` as
  checkin (09): always with ``no block = Y``, the event's own time as transaction date
  (and return date), and the due date the kiosk promised as ``nb due date`` (end of that
  day). The library system records what already happened instead of deciding again.
- ``patron_registered``: SIP2 2.00 cannot create a reader. The event waits (state
  ``waiting``) until the library system knows the card, which a patron status (23) lookup
  on every pass finds out once staff have entered the reader by hand; loans of that card
  wait with it (sent before, they would only be refused as an unknown patron).
- Every other kind (``staff_action``, ...) has no SIP2 equivalent: ``not_applicable``.

Exactly once. Each event's row in ``sip2_outcomes`` is written as ``sending`` and
committed *before* its request goes out; its answer (``ok`` or ``refused``) is written,
with the event's acknowledgement when SIP2 is the kiosk's only sync, in one transaction
after. So an answered event is never sent again, also after a crash or a reconnect. An
event still ``sending`` on the next pass lost its reply (the connection dropped or timed
out after the request left): the request may or may not have been processed. For a
checkout the replayer first asks item information (17): an item now charged means the
checkout went through, and it is recorded without a resend; likewise a checkin whose item
is no longer charged. Otherwise the request is sent again. That resend is safe for a
checkin (a second return changes nothing), and for a checkout on systems that answer a
repeated checkout by the same patron as a renewal (profiles with ``repeat_checkout =
"renewal"``; it may count one renewal). A renewal resent may count one renewal more.

Refusals. ``ok = 0`` from the library system makes the event ``refused``: an exception
for staff, listed by ``kiosk queue`` next to the hub's. Its code is ``refused`` on a system
that honours no-block (the refusal means something: an unknown card or item) and
``no_block_ignored`` on one that does not (it applied its normal rules to a loan that had
already happened); the message is the system's own screen message.

Which events. Unacknowledged events, and with a hub beside (``acknowledge=False``: the hub
acknowledges) also acknowledged ones written after SIP2 was first enabled: on its first
pass the replayer records, per device, the highest event the hub had already acknowledged
(``local_state`` key :data:`FROM_KEY`), and never replays those.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sync import outbox
from sync.db import Cache
from sync.sip2.client import Sip2Client
from sync.sip2.errors import Sip2Error
from sync.sip2.profiles import Profile
from sync.sip2.results import Loan, Return

log = logging.getLogger(__name__)

FROM_KEY = "sip2.replay_from"
CIRCULATION = ("checkout", "pickup", "checkin", "renew")
FINAL = ("ok", "refused", "not_applicable")
CHARGED = ("04", "05")  # SIP2 circulation status: charged (05: not to be recalled yet)


@dataclass
class ReplayReport:
    """One pass: how many events got each outcome, and why the pass stopped early."""

    ok: int = 0
    refused: int = 0
    waiting: int = 0
    not_applicable: int = 0
    confirmed: int = 0  # reply lost, the lookup showed it had been processed
    resent: int = 0  # reply lost, sent again
    pending: int = 0  # events still to replay when the pass ended
    error: str | None = None  # the link failed: the pass stopped here
    refusals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def online(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "online": self.online}


class Replayer:
    """Replays ``cache``'s outbox through ``client`` for a library system of ``profile``.
    ``timezone`` is the kiosk's (SIP2 dates are the library's local time).
    ``acknowledge``: mark each finished event acknowledged in the outbox (SIP2 is the only
    sync); false when the hub acknowledges."""

    def __init__(self, cache: Cache, client: Sip2Client, profile: Profile, *,
                 timezone: ZoneInfo, acknowledge: bool = True,
                 now: Callable[[], datetime] = datetime.now) -> None:
        self.cache, self.client, self.profile = cache, client, profile
        self.timezone, self.acknowledge, self._now = timezone, acknowledge, now
        # The replayer decides itself whether to resend after a lost reply (see above).
        client.retry_circulation = False

    # -- the pass ---------------------------------------------------------------------------

    def run_once(self) -> ReplayReport:
        """Replay what is pending; stops at the first link failure (``report.error``)."""
        report = ReplayReport()
        self._remember_start()
        events = self.pending()
        try:
            self.client.connect()
            waiting_cards: set[str] = set()
            for event, state in events:
                self._replay(event, state, waiting_cards, report)
        except Sip2Error as exc:
            report.error = f"{type(exc).__name__}: {exc}"
            log.warning("SIP2 replay stopped: %s", report.error)
        report.pending = len(self.pending())
        return report

    def _replay(self, event: outbox.Event, state: str | None, waiting_cards: set[str],
                report: ReplayReport) -> None:
        p = event.payload
        card = p.get("card")
        if event.kind == "patron_registered":
            if self.profile.registration:
                raise NotImplementedError("no SIP2 profile registers readers yet")
            if card and self.client.patron_status(card).valid:
                self._finish(event, "ok", "registered_by_hand", None)
                report.ok += 1
            else:
                waiting_cards.add(card or "")
                self._wait(event, "no_registration_path")
                report.waiting += 1
            return
        if event.kind not in CIRCULATION:
            self._finish(event, "not_applicable", None, None)
            report.not_applicable += 1
            return
        if event.kind != "checkin" and card in waiting_cards:
            self._wait(event, "card_not_registered")
            report.waiting += 1
            return
        if state == "sending":
            if self._went_through(event):
                self._finish(event, "ok", "confirmed", None)
                report.ok += 1
                report.confirmed += 1
                return
            report.resent += 1
        self._sending(event)
        result = self._send(event)
        if result.ok:
            renewal = event.kind != "renew" and isinstance(result, Loan) and result.renewal
            self._finish(event, "ok", "renewal" if renewal else None, None)
            report.ok += 1
            return
        code = "refused" if self.profile.honours_no_block else "no_block_ignored"
        message = result.screen_message or None
        self._finish(event, "refused", code, message)
        report.refused += 1
        report.refusals.append({"seq": event.seq, "kind": event.kind, "card": card,
                                "item": p.get("item"), "code": code, "message": message})

    def _went_through(self, event: outbox.Event) -> bool:
        """After a lost reply: does the library system show the event as done?"""
        item = event.payload.get("item")
        if event.kind == "renew" or not item:
            return False
        status = self.client.item_information(item).circulation_status
        return (status in CHARGED) == (event.kind != "checkin")

    def _send(self, event: outbox.Event) -> Loan | Return:
        p = event.payload
        when = self.local(event.wall_ns)
        if event.kind == "checkin":
            return self.client.checkin(p["item"], no_block=True, return_date=when,
                                       transaction_date=when)
        due = self.due(p.get("due_date"))
        if event.kind == "renew":
            return self.client.renew(p["card"], p["item"], no_block=True, nb_due_date=due,
                                     transaction_date=when)
        return self.client.checkout(p["card"], p["item"], no_block=True, nb_due_date=due,
                                    transaction_date=when)

    # -- dates ----------------------------------------------------------------------------

    def local(self, wall_ns: int) -> datetime:
        """The event's time as the library's local time (naive: SIP2's local form)."""
        return datetime.fromtimestamp(wall_ns / 1e9, self.timezone).replace(
            tzinfo=None, microsecond=0)

    @staticmethod
    def due(text: str | None) -> datetime | None:
        """The due date the kiosk promised, as the end of that day."""
        if not text:
            return None
        try:
            day = date.fromisoformat(text[:10])
        except ValueError:
            return None
        return datetime.combine(day, time(23, 59, 59))

    # -- the record ---------------------------------------------------------------------

    def _stamp(self) -> str:
        return self._now().isoformat(timespec="seconds")

    def _upsert(self, conn: sqlite3.Connection, event: outbox.Event, state: str,
                code: str | None, message: str | None, attempt: int) -> None:
        conn.execute(
            "INSERT INTO sip2_outcomes (txn_id, device_id, seq, kind, state, code, message,"
            " attempts, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (txn_id) DO UPDATE SET state = excluded.state,"
            " code = excluded.code, message = excluded.message,"
            " attempts = sip2_outcomes.attempts + excluded.attempts,"
            " updated_at = excluded.updated_at",
            (event.txn_id, event.device_id, event.seq, event.kind, state, code, message,
             attempt, self._stamp()))

    def _sending(self, event: outbox.Event) -> None:
        with self.cache.transaction() as conn:
            self._upsert(conn, event, "sending", None, None, 1)

    def _wait(self, event: outbox.Event, code: str) -> None:
        with self.cache.transaction() as conn:
            self._upsert(conn, event, "waiting", code, self.profile.system, 0)

    def _finish(self, event: outbox.Event, state: str, code: str | None,
                message: str | None) -> None:
        with self.cache.transaction() as conn:
            self._upsert(conn, event, state, code, message, 0)
            if self.acknowledge:
                conn.execute("UPDATE outbox SET acked_at = ? WHERE txn_id = ?"
                             " AND acked_at IS NULL", (self._stamp(), event.txn_id))

    def _remember_start(self) -> None:
        """On the first pass: per device, the last event already acknowledged (by a hub)."""
        with self.cache.transaction() as conn:
            if conn.execute("SELECT 1 FROM local_state WHERE key = ?",
                            (FROM_KEY,)).fetchone():
                return
            start = dict(conn.execute(
                "SELECT device_id, max(seq) FROM outbox WHERE acked_at IS NOT NULL"
                " GROUP BY device_id").fetchall())
            conn.execute("INSERT INTO local_state (key, value) VALUES (?, ?)",
                         (FROM_KEY, json.dumps(start)))

    def pending(self) -> list[tuple[outbox.Event, str | None]]:
        """The events to replay, oldest first, with their state so far (None: new)."""
        with self.cache.snapshot() as conn:
            return pending(conn)


def _start(conn: sqlite3.Connection) -> dict[str, int]:
    row = conn.execute("SELECT value FROM local_state WHERE key = ?", (FROM_KEY,)).fetchone()
    return json.loads(row[0]) if row else {}


def pending(conn: sqlite3.Connection) -> list[tuple[outbox.Event, str | None]]:
    """Events not yet finished over SIP2, oldest first, with their state (None: new)."""
    start = _start(conn)
    rows = conn.execute(
        f"SELECT {', '.join('o.' + c.strip() for c in outbox._COLUMNS.split(','))}, s.state"
        " FROM outbox o LEFT JOIN sip2_outcomes s ON s.txn_id = o.txn_id"
        " WHERE (s.state IS NULL OR s.state IN ('sending', 'waiting'))"
        " ORDER BY o.device_id, o.seq").fetchall()
    out = []
    for row in rows:
        event = outbox._event(row[:-1])
        if event.acked_at is not None and event.seq <= start.get(event.device_id, 0):
            continue
        out.append((event, row[-1]))
    return out


def refused(conn: sqlite3.Connection, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """(how many, the first ``limit``) events the library system refused, oldest first,
    shaped like :func:`kiosk.daemon.db.flagged` rows."""
    total = conn.execute("SELECT count(*) FROM sip2_outcomes WHERE state = 'refused'"
                         ).fetchone()[0]
    rows = conn.execute(
        "SELECT s.device_id, s.seq, s.txn_id, s.code, s.message, s.kind, o.wall_ns,"
        " o.payload FROM sip2_outcomes s LEFT JOIN outbox o ON o.txn_id = s.txn_id"
        " WHERE s.state = 'refused' ORDER BY s.device_id, s.seq LIMIT ?",
        (limit,)).fetchall()
    out = []
    for device, seq, txn, code, message, kind, wall_ns, payload in rows:
        p = json.loads(payload) if payload else {}
        out.append({"device_id": device, "seq": seq, "txn_id": txn, "outcome": "refused",
                    "code": code, "message": message, "corrected_time_ns": None,
                    "kind": kind, "wall_ns": wall_ns, "card": p.get("card"),
                    "item": p.get("item"), "source": "sip2"})
    return total, out


def waiting(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Events waiting for the library system (a reader it cannot register over SIP2, and
    that reader's loans), oldest first."""
    rows = conn.execute(
        "SELECT s.seq, s.kind, s.code, s.message, o.payload FROM sip2_outcomes s"
        " LEFT JOIN outbox o ON o.txn_id = s.txn_id WHERE s.state = 'waiting'"
        " ORDER BY s.device_id, s.seq").fetchall()
    out = []
    for seq, kind, code, system, payload in rows:
        p = json.loads(payload) if payload else {}
        out.append({"seq": seq, "kind": kind, "code": code, "system": system,
                    "card": p.get("card"), "item": p.get("item")})
    return out


def record_online(conn: sqlite3.Connection, txn_ids: list[str], *, state: str, code: str,
                  acknowledge: bool, stamp: str) -> None:
    """In the caller's transaction: the circulation events ``txn_ids`` were already put to
    the library system online, before they were committed. ``state`` ``ok``: it decided
    them; they are never replayed (and, with ``acknowledge``, acknowledged in the outbox).
    ``sending``: the request went out and its answer was lost (a timeout): the replayer
    treats them like any lost reply, asking item information (17) before it resends."""
    assert state in ("ok", "sending")
    for txn in txn_ids:
        conn.execute(
            "INSERT INTO sip2_outcomes (txn_id, device_id, seq, kind, state, code, message,"
            " attempts, updated_at) SELECT txn_id, device_id, seq, kind, ?, ?, NULL, 1, ?"
            " FROM outbox WHERE txn_id = ? AND kind IN"
            f" ({', '.join('?' * len(CIRCULATION))})",
            (state, code, stamp, txn, *CIRCULATION))
        if acknowledge and state == "ok":
            conn.execute("UPDATE outbox SET acked_at = ? WHERE txn_id = ?"
                         " AND acked_at IS NULL", (stamp, txn))


def lost_replies(conn: sqlite3.Connection) -> int:
    """Events sent whose answer has not been recorded yet."""
    return conn.execute("SELECT count(*) FROM sip2_outcomes WHERE state = 'sending'"
                        ).fetchone()[0]


__all__ = ["FROM_KEY", "ReplayReport", "Replayer", "lost_replies", "pending",
           "record_online", "refused", "waiting"]
