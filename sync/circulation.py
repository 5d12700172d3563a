"""Circulation on the offline cache: decide with :mod:`sync.rules`, then apply.

Each public method runs in ONE write transaction: it reads what the rules need, decides,
applies the change, appends the outbox event(s) and counts the statistics, then commits
(durably: WAL with synchronous=FULL) before it returns. When a method returns an allowed
:class:`Outcome`, the loan or return is on disk together with its event; when it raises,
nothing of it is. A refused attempt changes nothing but the statistics.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sync import audit, online, outbox, rules, staff, stats
from sync import cache_views as views
from sync.clock import Clock, Reading, read
from sync.db import Cache
from sync.online import IlsDecision, renew_decision
from sync.outbox import Event
from sync.policy import Policy, Station
from sync.rules import Action, Decision, Flag, Reason, RouteKind
from sync.sip2.replay import record_online


@dataclass(frozen=True)
class Identity:
    """Who and where this device is: recorded on every event."""

    device_id: str
    branch: str
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    station: Station = Station.KIOSK


@dataclass(frozen=True)
class Outcome:
    """A decision as the patron sees it, with the events committed for it."""

    decision: Decision
    events: tuple[Event, ...] = ()
    patron: dict[str, Any] | None = None
    item: dict[str, Any] | None = None
    route_branch_name: str | None = None

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    def params(self) -> dict[str, Any]:
        """Placeholders for the decision's message."""
        d = self.decision
        out: dict[str, Any] = dict(d.params)
        out["title"] = (self.item or {}).get("title") or (self.item or {}).get("barcode", "")
        out["barcode"] = (self.item or {}).get("barcode", "")
        out["due_date"] = d.due_date.isoformat() if d.due_date else ""
        out["branch"] = self.route_branch_name or out.get("branch", "")
        out["locker"] = d.locker_slot or ""
        return out

    def as_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "action": str(d.action),
            "allowed": d.allowed,
            "reason": str(d.reason),
            "message_key": d.message_key,
            "due_date": d.due_date.isoformat() if d.due_date else None,
            "flags": sorted(str(f) for f in d.flags),
            "route": None if d.route is None else {
                "kind": str(d.route.kind), "to_branch": d.route.to_branch,
                "to_branch_name": self.route_branch_name,
            },
            "offer": str(d.offer) if d.offer else None,
            "hold_id": d.hold_id,
            "locker_slot": d.locker_slot,
            "patron": self.patron,
            "item": self.item,
            "events": [{"seq": e.seq, "txn_id": e.txn_id, "kind": e.kind} for e in self.events],
        }


def _flags_text(flags: frozenset[Flag]) -> str:
    return ",".join(sorted(str(f) for f in flags))


class Circulation:
    """Loans, returns, renewals and hold pickups on one cache for one device.

    ``online`` tells the rules whether the hub is reachable now (offline limits apply
    otherwise); the kiosk daemon passes its sync worker's view, the command line passes
    ``False``.
    """

    def __init__(
        self,
        cache: Cache,
        identity: Identity,
        policy: Policy,
        clock: Clock,
        online: bool = False,
    ) -> None:
        self.cache = cache
        self.identity = identity
        self.policy = policy
        self.clock = clock
        self.online = online

    def __repr__(self) -> str:
        return f"<Circulation {self.identity.device_id}@{self.identity.branch} {self.cache.path}>"

    # -- helpers -------------------------------------------------------------------------

    def _context(self, reading: Reading, station: Station | None) -> rules.Context:
        return rules.Context(
            branch=self.identity.branch,
            today=reading.local_date(self.identity.timezone),
            station=station or self.identity.station,
            online=self.online,
            clock_trusted=reading.synchronised,
        )

    def _event(
        self, conn: sqlite3.Connection, kind: str, payload: dict[str, Any], reading: Reading,
        txn_id: str,
    ) -> Event:
        payload = {"branch": self.identity.branch, **payload}
        return outbox.append(
            conn, device_id=self.identity.device_id, kind=kind, payload=payload,
            reading=reading, txn_id=txn_id,
        )

    def _count(self, conn: sqlite3.Connection, ctx: rules.Context, decision: Decision) -> None:
        day = ctx.today.isoformat()
        if decision.allowed:
            metric = {
                Action.CHECKOUT: "loans", Action.CHECKIN: "returns",
                Action.RENEW: "renewals", Action.PICKUP: "pickups",
            }[decision.action]
            if decision.changes_state:
                stats.bump(conn, day, ctx.branch, metric)
                if decision.action is Action.PICKUP:
                    stats.bump(conn, day, ctx.branch, "loans")
        else:
            stats.bump(conn, day, ctx.branch, "refused")
            stats.bump(conn, day, ctx.branch, f"refused.{decision.action}.{decision.reason}")

    def _patron_dict(self, found: tuple[rules.PatronView, str] | None) -> dict[str, Any] | None:
        if found is None:
            return None
        view, name = found
        return {"card_number": view.card_number, "name": name, "loan_count": view.loan_count}

    def _close_loan(
        self, conn: sqlite3.Connection, loan: rules.LoanView, when: str, txn_id: str,
        flags: str = "",
    ) -> None:
        conn.execute(
            "UPDATE loans SET returned_at = ?, return_branch = ?, checkin_txn = ?,"
            " flags = CASE WHEN ? = '' THEN flags WHEN flags = '' THEN ?"
            " ELSE flags || ',' || ? END WHERE id = ?",
            (when, self.identity.branch, txn_id, flags, flags, flags, loan.id),
        )
        conn.execute(
            "UPDATE patrons SET loan_count = loan_count - 1 WHERE id = ?", (loan.patron_id,)
        )

    def _card_of(self, conn: sqlite3.Connection, patron_id: int) -> str | None:
        row = conn.execute(
            "SELECT card_number FROM patrons WHERE id = ?", (patron_id,)
        ).fetchone()
        return row[0] if row else None

    # -- checkout ------------------------------------------------------------------------

    def checkout(self, card: str, barcode: str, station: Station | None = None,
                 override: staff.Override | None = None,
                 by: staff.StaffSession | None = None,
                 decided_by_ils: IlsDecision | None = None) -> Outcome:
        """Lend the item with ``barcode`` to the holder of ``card``.

        With ``override`` (at :attr:`Station.DESK` only, by a signed-in staff member, with
        a reason) the refusals it names among :data:`sync.staff.OVERRIDABLE` are let
        through; a loan that needed it carries ``override``, ``override_reason``,
        ``override_staff`` (staff card) and ``override_waived`` in its event, the loan row
        the flag ``override``, and a ``checkout_override`` audit row commits with it (an
        override that could not help, ``checkout_override_refused``). Raises
        :class:`sync.staff.OverrideNotAllowed` before anything is done when the override
        may not be used here.

        ``decided_by_ils``: the library system already lent the book online (SIP2): the
        loan is recorded whatever the cache's rules say (see :mod:`sync.online`), a card
        the cache does not know is recorded as a reader learned from the library system,
        and the event is marked answered for the SIP2 replay in the same transaction.
        """
        if decided_by_ils is not None and override is not None:
            raise ValueError("a loan the library system decided takes no staff override")
        reading = read(self.clock)
        with self.cache.transaction() as conn:
            ctx = self._context(reading, station)
            session = None
            if override is not None:
                session = staff.check_override(conn, override, ctx.station,
                                               reading.monotonic_ns)
            found = views.patron_by_card(conn, card)
            patron = found[0] if found else None
            item = views.item_by_barcode(conn, barcode)
            loan = views.open_loan(conn, item.id) if item else None
            holds = views.active_holds(conn, item.id) if item else ()
            rule = None
            if patron is not None:
                loan_type = item.loan_type if item else "normal"
                rule = views.loan_rule(conn, patron.patron_type, loan_type)
            decision = rules.checkout(
                patron, item, loan, holds, rule,
                views.calendar(conn, ctx.branch, ctx.today), self.policy, ctx,
                waive=override.waive if override is not None else frozenset(),
            )
            extra: dict[str, Any] = {}
            if decided_by_ils is not None:
                if not decision.allowed:
                    extra["local_reason"] = str(decision.reason)
                if patron is None:
                    found = self._learn_patron(conn, card, reading)
                    patron = found[0]
                decision = online.checkout_decision(
                    patron, item, loan, holds, decision, decided_by_ils,
                    views.calendar(conn, ctx.branch, ctx.today), self.policy, ctx)
            self._count(conn, ctx, decision)
            events: list[Event] = []
            if decision.allowed:
                assert patron is not None
                events = self._apply_checkout(conn, ctx, reading, patron, item, barcode, loan,
                                              decision, override, extra)
                found = views.patron_by_card(conn, card)
                if decided_by_ils is not None:
                    self._settled_online(conn, events, decided_by_ils, reading)
            if session is not None and override is not None:
                self._audit_override(conn, reading, session, override, card, barcode,
                                     decision, events)
            elif by is not None and events:
                self._audit_desk(conn, reading, by, "desk_checkout", events,
                                 {"card": card, "item": barcode})
            item_id = item.id if item else self._item_id(conn, barcode)
            item_info = views.item_details(conn, item_id) if item_id else {"barcode": barcode}
        return Outcome(decision, tuple(events), self._patron_dict(found), item_info)

    def _item_id(self, conn: sqlite3.Connection, barcode: str) -> int | None:
        row = conn.execute("SELECT id FROM items WHERE barcode = ?", (barcode,)).fetchone()
        return row[0] if row else None

    def _apply_checkout(
        self, conn: sqlite3.Connection, ctx: rules.Context, reading: Reading,
        patron: rules.PatronView, item: rules.ItemView | None, barcode: str,
        previous: rules.LoanView | None, decision: Decision,
        override: staff.Override | None = None, extra: dict[str, Any] | None = None,
    ) -> list[Event]:
        when = reading.wall_iso(self.identity.timezone)
        overridden = override is not None and bool(decision.waived)
        events = []
        if Flag.RETURN_THEN_LEND in decision.flags and previous is not None:
            txn = outbox.new_txn_id()
            self._close_loan(conn, previous, when, txn, flags="return_then_lend")
            events.append(self._event(conn, "checkin", {
                "item": barcode, "card": self._card_of(conn, previous.patron_id),
                "route": "shelf", "flags": ["return_then_lend"],
                "station": str(ctx.station),
            }, reading, txn))
        if item is None:
            item_id = conn.execute(
                "INSERT INTO items (barcode, status, current_branch, flags, updated_at)"
                " VALUES (?, 'on_loan', ?, 'unknown', ?) RETURNING id",
                (barcode, None, when),
            ).fetchone()[0]
        else:
            item_id = item.id
            conn.execute(
                "UPDATE items SET status = 'on_loan', transit_to = NULL, updated_at = ?"
                " WHERE id = ?",
                (when, item_id),
            )
        txn = outbox.new_txn_id()
        assert decision.due_date is not None
        conn.execute(
            "INSERT INTO loans (item_id, patron_id, branch, loaned_at, due_date, checkout_txn,"
            " flags) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item_id, patron.id, ctx.branch, when, decision.due_date.isoformat(), txn,
             ",".join(filter(None, (_flags_text(decision.flags),
                                    "override" if overridden else "")))),
        )
        conn.execute("UPDATE patrons SET loan_count = loan_count + 1 WHERE id = ?", (patron.id,))
        if decision.hold_id is not None:
            conn.execute(
                "UPDATE holds SET status = 'fulfilled', fulfilled_txn = ? WHERE id = ?",
                (txn, decision.hold_id),
            )
        payload: dict[str, Any] = {
            "card": patron.card_number, "item": barcode,
            "due_date": decision.due_date.isoformat(),
            "flags": sorted(str(f) for f in decision.flags),
            "hold_id": decision.hold_id, "station": str(ctx.station), **(extra or {}),
        }
        if overridden:
            assert override is not None and override.session is not None
            payload.update({
                "override": True, "override_reason": override.reason.strip(),
                "override_staff": override.session.card_number,
                "override_waived": sorted(str(r) for r in decision.waived),
            })
        events.append(self._event(conn, "checkout", payload, reading, txn))
        return events

    def _learn_patron(self, conn: sqlite3.Connection, card: str,
                      reading: Reading) -> tuple[rules.PatronView, str]:
        """A card the cache does not know, but the library system lent to: recorded with
        no name and type :data:`sync.online.LEARNED_PATRON_TYPE` (a hub or a rebuild
        fills it in later; the hub's feed updates the row by its card number)."""
        conn.execute(
            "INSERT INTO patrons (card_number, name, patron_type, updated_at)"
            " VALUES (?, '', ?, ?)",
            (card, online.LEARNED_PATRON_TYPE, reading.wall_iso(self.identity.timezone)))
        found = views.patron_by_card(conn, card)
        assert found is not None
        return found

    def _settled_online(self, conn: sqlite3.Connection, events: list[Event],
                        ils: IlsDecision, reading: Reading) -> None:
        """The library system decided ``events`` online: keep its title when the cache
        has none, and mark them answered for the SIP2 replay, in this transaction."""
        if ils.title:
            for event in events:
                conn.execute("UPDATE items SET title = ? WHERE barcode = ?"
                             " AND coalesce(title, '') = ''", (ils.title, event.payload["item"]))
        record_online(conn, [e.txn_id for e in events], state="ok", code="online",
                      acknowledge=ils.acknowledge,
                      stamp=datetime.fromtimestamp(reading.wall_ns / 1e9, UTC).isoformat(
                          timespec="seconds"))

    def _audit_override(
        self, conn: sqlite3.Connection, reading: Reading, session: staff.StaffSession,
        override: staff.Override, card: str, barcode: str, decision: Decision,
        events: list[Event],
    ) -> None:
        """The audit row of a checkout asked for with an override, in its transaction."""
        if decision.allowed and not decision.waived:
            return  # the loan did not need the override: an ordinary loan
        loan = next((e for e in events if e.kind == "checkout"), None)
        details: dict[str, Any] = {
            "card": card, "item": barcode, "reason": override.reason.strip(),
            "waived": sorted(str(r) for r in decision.waived),
        }
        if not decision.allowed:
            details["refused"] = str(decision.reason)
        audit.record(
            conn, action="checkout_override" if decision.allowed
            else "checkout_override_refused",
            at=datetime.fromtimestamp(reading.wall_ns / 1e9, UTC),
            staff_id=session.staff_id, staff_card=session.card_number, details=details,
            txn_id=loan.txn_id if loan else None,
            forward=audit.Forward(self.identity.device_id, self.identity.branch, self.clock),
            reading=reading,
        )

    def _audit_desk(self, conn: sqlite3.Connection, reading: Reading, by: staff.StaffSession,
                    action: str, events: list[Event], details: dict[str, Any]) -> None:
        """The audit row of ordinary desk work (who lent or took back what), in its
        transaction, naming the event it concerns."""
        audit.record(
            conn, action=action, at=datetime.fromtimestamp(reading.wall_ns / 1e9, UTC),
            staff_id=by.staff_id, staff_card=by.card_number, details=details,
            txn_id=events[-1].txn_id,
            forward=audit.Forward(self.identity.device_id, self.identity.branch, self.clock),
            reading=reading,
        )

    # -- checkin -------------------------------------------------------------------------

    def checkin(self, barcode: str, station: Station | None = None,
                by: staff.StaffSession | None = None,
                decided_by_ils: IlsDecision | None = None) -> Outcome:
        """Take back the item with ``barcode``, wherever it was lent. ``by``: the staff
        member taking it back at the desk (a ``desk_checkin`` audit row commits with it).
        ``decided_by_ils``: the library system already took it back online (SIP2): the
        event is flagged ``ils_decided`` and marked answered for the replay."""
        reading = read(self.clock)
        with self.cache.transaction() as conn:
            ctx = self._context(reading, station)
            item = views.item_by_barcode(conn, barcode)
            loan = views.open_loan(conn, item.id) if item else None
            holds = views.active_holds(conn, item.id) if item else ()
            decision = rules.checkin(item, loan, holds, ctx)
            if decided_by_ils is not None:
                decision = online.checkin_decision(decision)
            self._count(conn, ctx, decision)
            events: list[Event] = []
            borrower = None
            if loan is not None:
                borrower = self._patron_dict(views.patron_by_id(conn, loan.patron_id))
            if decision.changes_state:
                events = [self._apply_checkin(conn, ctx, reading, item, barcode, loan, decision)]
                if by is not None:
                    self._audit_desk(conn, reading, by, "desk_checkin", events,
                                     {"item": barcode})
                if decided_by_ils is not None:
                    self._settled_online(conn, events, decided_by_ils, reading)
            item_id = item.id if item else self._item_id(conn, barcode)
            info = views.item_details(conn, item_id) if item_id else {"barcode": barcode}
            to = decision.route.to_branch if decision.route else None
            to_name = views.branch_name(conn, to)
        return Outcome(decision, tuple(events), borrower, info, to_name)

    def _apply_checkin(
        self, conn: sqlite3.Connection, ctx: rules.Context, reading: Reading,
        item: rules.ItemView | None, barcode: str, loan: rules.LoanView | None,
        decision: Decision,
    ) -> Event:
        when = reading.wall_iso(self.identity.timezone)
        route = decision.route
        assert route is not None
        txn = outbox.new_txn_id()
        card = None
        if item is None:
            conn.execute(
                "INSERT INTO items (barcode, status, current_branch, flags, updated_at)"
                " VALUES (?, 'available', ?, 'unknown', ?)",
                (barcode, None, when),
            )
        else:
            if loan is not None:
                card = self._card_of(conn, loan.patron_id)
                self._close_loan(conn, loan, when, txn)
            conn.execute(
                "UPDATE items SET status = ?, current_branch = ?, transit_to = ?, updated_at = ?"
                " WHERE id = ?",
                (rules.item_status_after(route), self._known_branch(conn, ctx.branch),
                 route.to_branch, when, item.id),
            )
            if decision.hold_id is not None:
                if route.kind is RouteKind.HOLD_HERE:
                    expires = date.fromordinal(ctx.today.toordinal() + self.policy.hold_pickup_days)
                    conn.execute(
                        "UPDATE holds SET status = 'ready', ready_at = ?, pickup_expires_on = ?"
                        " WHERE id = ?",
                        (when, expires.isoformat(), decision.hold_id),
                    )
                else:
                    conn.execute(
                        "UPDATE holds SET status = 'in_transit' WHERE id = ?", (decision.hold_id,)
                    )
        return self._event(conn, "checkin", {
            "item": barcode, "card": card, "route": str(route.kind),
            "to_branch": route.to_branch, "hold_id": decision.hold_id,
            "flags": sorted(str(f) for f in decision.flags), "station": str(ctx.station),
        }, reading, txn)

    def _known_branch(self, conn: sqlite3.Connection, isil: str) -> str | None:
        # A van configured with a branch the hub has not sent yet must still take returns.
        row = conn.execute("SELECT 1 FROM branches WHERE isil = ?", (isil,)).fetchone()
        return isil if row else None

    # -- renew ---------------------------------------------------------------------------

    def renew(self, card: str, barcode: str, station: Station | None = None, *,
              decided_by_ils: IlsDecision | None = None) -> Outcome:
        """Renew the loan of ``barcode`` held by ``card``. ``decided_by_ils``: the library
        system already renewed it online (SIP2): its due date is recorded whatever the
        cache's rules say, the event marked answered for the replay. A loan the cache does
        not hold for this card is not invented: the cache's own answer stands."""
        reading = read(self.clock)
        with self.cache.transaction() as conn:
            ctx = self._context(reading, station)
            found = views.patron_by_card(conn, card)
            patron = found[0] if found else None
            item = views.item_by_barcode(conn, barcode)
            loan = views.open_loan(conn, item.id) if item else None
            holds = views.active_holds(conn, item.id) if item else ()
            rule = None
            if patron is not None and item is not None:
                rule = views.loan_rule(conn, patron.patron_type, item.loan_type)
            decision = rules.renew(
                patron, item, loan, holds, rule,
                views.calendar(conn, ctx.branch, ctx.today), self.policy, ctx,
            )
            if decided_by_ils is not None and patron is not None and loan is not None \
                    and loan.patron_id == patron.id:
                decision = renew_decision(decision, decided_by_ils)
            self._count(conn, ctx, decision)
            events: list[Event] = []
            if decision.allowed:
                assert loan is not None and decision.due_date is not None and patron is not None
                txn = outbox.new_txn_id()
                conn.execute(
                    "UPDATE loans SET due_date = ?, renewals = renewals + 1 WHERE id = ?",
                    (decision.due_date.isoformat(), loan.id),
                )
                events.append(self._event(conn, "renew", {
                    "card": patron.card_number, "item": barcode,
                    "due_date": decision.due_date.isoformat(),
                    "flags": sorted(str(f) for f in decision.flags),
                    "station": str(ctx.station),
                }, reading, txn))
                if decided_by_ils is not None:
                    self._settled_online(conn, events, decided_by_ils, reading)
            info = views.item_details(conn, item.id) if item else {"barcode": barcode}
        return Outcome(decision, tuple(events), self._patron_dict(found), info)

    # -- hold pickup ---------------------------------------------------------------------

    def ready_holds(self, card: str) -> list[dict[str, Any]]:
        """The patron's holds ready for pickup, with their lockers (reads only)."""
        with self.cache.snapshot() as conn:
            found = views.patron_by_card(conn, card)
            if found is None:
                return []
            out = []
            for hold in views.ready_holds_of(conn, found[0].id):
                info = views.item_details(conn, hold.item_id)
                out.append({
                    "hold_id": hold.id, "locker_slot": hold.locker_slot,
                    "pickup_branch": hold.pickup_branch,
                    "pickup_expires_on": hold.pickup_expires_on.isoformat()
                    if hold.pickup_expires_on else None, **info,
                })
            return out

    def check_pickup(self, card: str, hold_id: int, station: Station | None = None) -> Outcome:
        """What :meth:`pickup` would decide now, without changing or counting anything (a
        read). The daemon asks this before it opens a locker: a locker is never opened for a
        pickup the rules refuse."""
        reading = read(self.clock)
        with self.cache.snapshot() as conn:
            ctx = self._context(reading, station)
            found, _, hold, _, decision = self._pickup_decision(conn, ctx, card, hold_id)
            info = views.item_details(conn, hold.item_id) if hold else None
        return Outcome(decision, (), self._patron_dict(found), info)

    def _pickup_decision(
        self, conn: sqlite3.Connection, ctx: rules.Context, card: str, hold_id: int,
    ) -> tuple[Any, rules.PatronView | None, rules.HoldView | None, Any, Decision]:
        found = views.patron_by_card(conn, card)
        patron = found[0] if found else None
        hold = views.hold_by_id(conn, hold_id)
        item = None
        rule = None
        if hold is not None:
            item = conn.execute(
                "SELECT barcode, loan_type FROM items WHERE id = ?", (hold.item_id,)
            ).fetchone()
            if patron is not None:
                rule = views.loan_rule(conn, patron.patron_type, item[1])
        decision = rules.pickup(
            patron, hold, rule, views.calendar(conn, ctx.branch, ctx.today), self.policy, ctx,
        )
        return found, patron, hold, item, decision

    def pickup(self, card: str, hold_id: int, station: Station | None = None, *,
               decided_by_ils: IlsDecision | None = None) -> Outcome:
        """Fulfil hold ``hold_id`` for the holder of ``card``: the hold is fulfilled and the
        item lent in one transaction. The daemon calls this only after the locker's door
        sensor saw the door open. ``decided_by_ils``: the library system lent it online
        (SIP2): its due date is kept and the event marked answered for the replay."""
        reading = read(self.clock)
        with self.cache.transaction() as conn:
            ctx = self._context(reading, station)
            found, patron, hold, item, decision = self._pickup_decision(conn, ctx, card, hold_id)
            if decided_by_ils is not None and decision.allowed:
                decision = dataclasses.replace(
                    decision, due_date=decided_by_ils.due_date or decision.due_date,
                    flags=(decision.flags - {Flag.OFFLINE}) | {Flag.ILS_DECIDED})
            self._count(conn, ctx, decision)
            events: list[Event] = []
            if decision.allowed:
                assert hold is not None and patron is not None and item is not None
                events.append(self._apply_pickup(conn, ctx, reading, patron, hold, item[0],
                                                 decision))
                if decided_by_ils is not None:
                    self._settled_online(conn, events, decided_by_ils, reading)
                found = views.patron_by_card(conn, card)
            info = views.item_details(conn, hold.item_id) if hold else None
        return Outcome(decision, tuple(events), self._patron_dict(found), info)

    def _apply_pickup(
        self, conn: sqlite3.Connection, ctx: rules.Context, reading: Reading,
        patron: rules.PatronView, hold: rules.HoldView, barcode: str, decision: Decision,
    ) -> Event:
        when = reading.wall_iso(self.identity.timezone)
        txn = outbox.new_txn_id()
        assert decision.due_date is not None
        previous = views.open_loan(conn, hold.item_id)
        if previous is not None:
            # The cache thinks the book is still out, yet it sits in our locker: the
            # physical fact wins, the old loan ends here and the event says so.
            self._close_loan(conn, previous, when, txn, flags="found_in_locker")
        conn.execute(
            "INSERT INTO loans (item_id, patron_id, branch, loaned_at, due_date, checkout_txn,"
            " flags) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (hold.item_id, patron.id, ctx.branch, when, decision.due_date.isoformat(), txn,
             _flags_text(decision.flags)),
        )
        conn.execute("UPDATE patrons SET loan_count = loan_count + 1 WHERE id = ?", (patron.id,))
        conn.execute(
            "UPDATE items SET status = 'on_loan', transit_to = NULL, updated_at = ? WHERE id = ?",
            (when, hold.item_id),
        )
        conn.execute(
            "UPDATE holds SET status = 'fulfilled', fulfilled_txn = ?, locker_slot = NULL"
            " WHERE id = ?",
            (txn, hold.id),
        )
        return self._event(conn, "pickup", {
            "card": patron.card_number, "item": barcode, "hold_id": hold.id,
            "locker_slot": hold.locker_slot, "due_date": decision.due_date.isoformat(),
            "flags": sorted(str(f) for f in decision.flags),
            "closed_previous_loan": previous is not None, "station": str(ctx.station),
        }, reading, txn)

    # -- night entry ---------------------------------------------------------------------

    def entry_problem(self, card: str) -> Reason | None:
        """Why the holder of ``card`` may not enter the space now, or None: the same test as
        for borrowing (:func:`sync.rules.patron_problem`: unknown, lost, expired, blocked,
        fines over the limit). Reads only."""
        reading = read(self.clock)
        with self.cache.snapshot() as conn:
            ctx = self._context(reading, None)
            found = views.patron_by_card(conn, card)
            return rules.patron_problem(found[0] if found else None, self.policy, ctx)

    def count_entry(self, problem: Reason | None) -> None:
        """Count in today's statistics a visit (``problem`` None: the door opened for the
        patron) or a refused entry and its reason. No outbox event: an entry is no
        circulation."""
        reading = read(self.clock)
        with self.cache.transaction() as conn:
            ctx = self._context(reading, None)
            day = ctx.today.isoformat()
            if problem is None:
                stats.bump(conn, day, ctx.branch, "visits")
            else:
                stats.bump(conn, day, ctx.branch, "refused")
                stats.bump(conn, day, ctx.branch, f"refused.entry.{problem}")
