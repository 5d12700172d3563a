"""The patron session state machine: events in, actions out, no I/O.

The daemon feeds it device events (:mod:`kiosk.daemon.state`) and the results of the steps
it asked for, and carries out the actions it returns (both in :mod:`kiosk.daemon.actions`)
in order, feeding each step's result back before the next action. So the rules live here
and are tested without hardware:

- A card tap starts a lending session (a new card ends the previous session first); books
  placed with no session start a return session. A session ends on "finish", after
  ``timeout_s`` without anything happening (a card lying on the reader is not something
  happening), or on a new card; a receipt is planned when anything was lent or returned.
- Lending a book is three steps: commit the loan (:class:`Lend`), set the tag's security
  flag and read it back (:class:`SetFlag`), and only then tell the patron it is lent. When
  the flag cannot be set the loan is undone (:class:`UndoLoan`: a return is committed) and
  the tag is set back to "on the shelf"; the patron is told to hand the book to staff.
- A return is committed first, then the flag is set back to "on the shelf"; if that write
  fails the return stands (a returned book with an on-loan flag is harmless) and the patron
  is asked to hand the book to staff.
- A book is handled once while it stays on the pad: lifting it and putting it back makes it
  new again. Books lying on the pad when the daemon starts are not handled at all.
- A patron with a card may collect a ready hold from its locker (:class:`Pickup`): only a
  hold of this patron's, read when the session started (:class:`HoldsFound`), is tried; the
  step (:class:`OpenLocker`) asks the rules, opens the slot and commits the pickup only
  once the slot's sensor saw the door open. A locker that did not open leaves the hold
  ready, and the patron may try again. Picked-up books are on the loan receipt.
- With ``ask_pin``, a card's session asks whether its holder must give a PIN
  (:class:`AskPin`) and lends nothing, picks up nothing, until :class:`PinChecked` says
  ok; books placed meanwhile wait on the pad and are lent once the PIN was right. Returns
  never need a PIN. Too many wrong PINs end the session (the step keeps the count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kiosk.daemon.actions import (
    Action,
    AskPin,
    EndSession,
    FlagFailed,
    FlagSet,
    HoldsFound,
    Lend,
    LoanCommitted,
    LoanRefused,
    LoanUndone,
    Notify,
    OpenLocker,
    PickedUp,
    PickupFailed,
    PinChecked,
    ReadyHold,
    ReceiptLine,
    ReceiptPlan,
    Return,
    ReturnCommitted,
    ReturnRefused,
    SetFlag,
    StartSession,
    StepFailed,
    UndoLoan,
    VerifyPin,
)
from kiosk.daemon.state import (
    CardRemoved,
    CardSeen,
    Finish,
    Mode,
    OverrideLend,
    PadBook,
    Pickup,
    PinEntered,
    SetMode,
    TagsChanged,
    Tick,
    TypedBook,
)

# -- the machine -----------------------------------------------------------------------------


@dataclass
class _Book:
    uid: str
    barcode: str
    kind: str  # lend or return
    state: str = "pending"  # committed, lent, returned, refused, failed, undone, unsecured
    title: str = ""
    due_date: str = ""
    txn_id: str | None = None
    message_key: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    typed: bool = False  # typed at the desk: no tag to write (uid "typed:BARCODE")


TYPED = "typed:"


@dataclass
class _Hold:
    hold: ReadyHold
    state: str = "ready"  # opening, picked_up, failed, unrecorded
    due_date: str = ""
    message_key: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Session:
    """One patron's (or one anonymous returner's) visit. ``card`` is None for returns."""

    id: int
    card: str | None
    mode: Mode
    started: float
    last_activity: float
    warned: bool = False
    books: dict[str, _Book] = field(default_factory=dict)
    holds: dict[int, _Hold] = field(default_factory=dict)
    pin: str = "ok"  # "checking" (asked whether one is needed), "needed", or "ok"

    def summary(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for book in self.books.values():
            states[book.state] = states.get(book.state, 0) + 1
        holds = [{**h.hold.as_dict(), "state": h.state} for h in self.holds.values()]
        return {"id": self.id, "mode": str(self.mode), "books": len(self.books),
                "states": states, "holds": holds}


class SessionMachine:
    """Feed events with :meth:`feed`; carry out the returned actions in order and feed each
    step's result back. ``timeout_s`` ends an idle session, ``warning_s`` warns before."""

    def __init__(self, timeout_s: float = 60.0, warning_s: float = 45.0, *,
                 ask_pin: bool = False) -> None:
        if not 0 < warning_s < timeout_s:
            raise ValueError("the warning must come before the timeout")
        self.ask_pin = ask_pin
        self.timeout_s = timeout_s
        self.warning_s = warning_s
        self.session: Session | None = None
        self.on_pad: dict[str, PadBook] = {}
        self.handled: set[str] = set()  # tags dealt with while they stay on the pad
        self.card_present: str | None = None
        self._next_id = 1

    def feed(self, event: object, now: float) -> list[Action]:
        """The actions that ``event`` calls for (possibly none)."""
        handler = _HANDLERS.get(type(event))
        if handler is None:
            raise TypeError(f"the session machine does not take {type(event).__name__}")
        return handler(self, event, now)

    def end(self, reason: str) -> list[Action]:
        """End the session now (the daemon stopping); nothing when there is none."""
        return self._end(reason)

    # -- device events -------------------------------------------------------------------

    def _card_seen(self, event: CardSeen, now: float) -> list[Action]:
        self.card_present = event.uid
        session = self.session
        if session is not None and session.card == event.card:
            session.last_activity, session.warned = now, False
            return []
        actions: list[Action] = []
        if session is not None:
            actions += self._end("new_card")
        actions += self._start(event.card, Mode.LEND, now)
        if self.ask_pin:
            assert self.session is not None
            self.session.pin = "checking"
            actions.append(AskPin(self.session.id, event.card))
        return actions + self._handle_new(now)

    def _card_removed(self, event: CardRemoved, now: float) -> list[Action]:
        if self.card_present == event.uid:
            self.card_present = None
        if self.session is not None:
            self.session.last_activity, self.session.warned = now, False
        return []

    def _tags_changed(self, event: TagsChanged, now: float) -> list[Action]:
        pad = {book.uid: book for book in event.books}
        removed = set(self.on_pad) - set(pad)
        self.handled -= removed
        self.on_pad = pad
        if event.initial:
            self.handled |= set(pad)
            return []
        session = self.session
        if session is not None and removed:
            session.last_activity, session.warned = now, False
        if not any(uid not in self.handled for uid in pad):
            return []
        actions: list[Action] = []
        if session is None:
            actions += self._start(None, Mode.RETURN, now)
        return actions + self._handle_new(now)

    def _tick(self, event: Tick, now: float) -> list[Action]:
        session = self.session
        if session is None:
            return []
        idle = now - session.last_activity
        if idle >= self.timeout_s:
            return self._end("timeout")
        if idle >= self.warning_s and not session.warned:
            session.warned = True
            left = max(1, round(self.timeout_s - idle))
            return [Notify(session.id, "warning", "daemon.session.warning", {"seconds": left})]
        return []

    def _finish(self, event: Finish, now: float) -> list[Action]:
        return self._end("finished") if self.session is not None else []

    def _set_mode(self, event: SetMode, now: float) -> list[Action]:
        if self.session is None:
            if event.mode is not Mode.RETURN:
                return []  # lending needs a card first
            return self._start(None, Mode.RETURN, now)
        self.session.mode = event.mode
        self.session.last_activity, self.session.warned = now, False
        return []

    def _pickup(self, event: Pickup, now: float) -> list[Action]:
        session = self.session
        if session is None:
            return []
        session.last_activity, session.warned = now, False
        hold_id = event.hold_id

        def refuse(key: str, **params: Any) -> list[Action]:
            return [Notify(session.id, "pickup_failed", key, {"hold_id": hold_id, **params},
                           hold_id=hold_id)]

        held = session.holds.get(hold_id) if session.card is not None else None
        if session.card is None:
            return refuse("daemon.pickup.no_card")
        if session.pin != "ok":
            return refuse("daemon.pin.needed")
        if held is None:  # another patron's hold, one not ready, or no such hold
            return refuse("daemon.pickup.unknown_hold")
        hold = held.hold
        if held.state == "opening":
            return []  # pressed twice: the locker is being opened
        if held.state in ("picked_up", "unrecorded"):
            return refuse("daemon.pickup.already_picked_up", title=hold.title)
        if hold.slot is None:
            return refuse("daemon.pickup.no_locker", title=hold.title)
        held.state = "opening"
        return [OpenLocker(session.id, session.card, hold_id, hold.slot)]

    def _override_lend(self, event: OverrideLend, now: float) -> list[Action]:
        """Try a refused loan again with staff's override (the desk checks that staff are
        signed in; the rules check what may be overridden)."""
        session = self.session
        if session is None or session.card is None:
            return []
        book = next((b for b in session.books.values() if b.barcode == event.barcode
                     and b.kind == "lend" and b.state == "refused"), None)
        if book is None or (not book.typed and book.uid not in self.on_pad):
            return []
        session.last_activity, session.warned = now, False
        book.state, book.message_key, book.params = "pending", "", {}
        return [Lend(session.id, session.card, book.uid, book.barcode, event.reason)]

    def _typed_book(self, event: TypedBook, now: float) -> list[Action]:
        """A barcode typed at the desk: lent to the card in session, or returned (a return
        session starts when there is none). Typed again while still being handled, or once
        done, it is not handled twice."""
        actions: list[Action] = []
        if self.session is None:
            actions += self._start(None, Mode.RETURN, now)
        session = self.session
        assert session is not None
        uid = TYPED + event.barcode
        old = session.books.get(uid)
        if old is not None and old.state not in ("refused", "failed", "returned", "undone"):
            return actions
        session.last_activity, session.warned = now, False
        lend = session.mode is Mode.LEND and session.card is not None
        if lend and session.pin != "ok":
            return actions  # no PIN at the desk, but never lend around one
        book = _Book(uid, event.barcode, "lend" if lend else "return", title=event.barcode,
                     typed=True)
        session.books[uid] = book
        if lend:
            assert session.card is not None
            return [*actions, Lend(session.id, session.card, uid, event.barcode)]
        return [*actions, Return(session.id, uid, event.barcode)]

    def _pin_entered(self, event: PinEntered, now: float) -> list[Action]:
        session = self.session
        if session is None or session.card is None or session.pin != "needed":
            return []
        session.last_activity, session.warned = now, False
        return [VerifyPin(session.id, session.card, event.pin)]

    # -- step results ------------------------------------------------------------------------

    def _pin_checked(self, result: PinChecked, now: float) -> list[Action]:
        session = self.session
        if session is None or session.id != result.session or session.pin == "ok":
            return []
        if result.ok:
            session.pin = "ok"
            told = [Notify(session.id, "pin_ok", "daemon.pin.ok")] if result.needed else []
            return told + self._handle_new(now)
        note = Notify(session.id, "pin_locked" if result.locked else "pin_needed",
                      result.message_key, dict(result.params))
        if result.locked:
            return [note, *self._end("pin_locked")]
        session.pin = "needed"
        return [note]

    def _holds_found(self, result: HoldsFound, now: float) -> list[Action]:
        session = self.session
        if session is not None and session.id == result.session:
            session.holds = {h.hold_id: _Hold(h) for h in result.holds}
        return []

    def _held(self, hold_id: int) -> tuple[Session, _Hold] | None:
        session = self.session
        if session is None or hold_id not in session.holds:
            return None
        return session, session.holds[hold_id]

    def _picked_up(self, result: PickedUp, now: float) -> list[Action]:
        found = self._held(result.hold_id)
        if found is None:
            return []
        session, held = found
        held.state, held.due_date = "picked_up", result.due_date
        params = {"title": result.title, "due_date": result.due_date, "locker": result.slot,
                  "slot": result.slot, "barcode": result.barcode, "hold_id": result.hold_id}
        return [Notify(session.id, "picked_up", "circ.pickup.ok", params,
                       barcode=result.barcode, txn_id=result.txn_id, hold_id=result.hold_id,
                       slot=result.slot)]

    def _pickup_failed(self, result: PickupFailed, now: float) -> list[Action]:
        found = self._held(result.hold_id)
        if found is None:
            return []
        session, held = found
        hold = held.hold
        params = {"title": hold.title, "slot": hold.slot or "", "hold_id": hold.hold_id,
                  **result.params}
        held.state = "unrecorded" if result.opened else "failed"
        held.message_key, held.params = result.message_key, params
        what = "hand_to_staff" if result.opened else "pickup_failed"
        return [Notify(session.id, what, result.message_key, dict(params),
                       barcode=hold.barcode, hold_id=hold.hold_id, slot=hold.slot)]

    def _book(self, uid: str) -> tuple[Session, _Book] | None:
        session = self.session
        if session is None or uid not in session.books:
            return None
        return session, session.books[uid]

    def _loan_committed(self, result: LoanCommitted, now: float) -> list[Action]:
        found = self._book(result.uid)
        if found is None:
            return []
        session, book = found
        book.state, book.txn_id = "committed", result.txn_id
        book.title, book.due_date = result.title, result.due_date
        if book.typed:  # no tag to secure: lent as it stands, and staff are told so
            book.state = "lent"
            params = {"title": book.title, "due_date": book.due_date, "barcode": book.barcode}
            return [Notify(session.id, "lent", "circ.checkout.ok", params, book.uid,
                           book.barcode, book.txn_id, ("daemon.book.typed_no_tag",))]
        return [SetFlag(session.id, book.uid, book.barcode, True, result.txn_id)]

    def _refused(self, result: LoanRefused | ReturnRefused, now: float) -> list[Action]:
        found = self._book(result.uid)
        if found is None:
            return []
        session, book = found
        book.state, book.title = "refused", result.title
        book.message_key, book.params = result.message_key, dict(result.params)
        what = "not_lent" if book.kind == "lend" else "not_returned"
        return [Notify(session.id, what, result.message_key, dict(result.params), book.uid,
                       book.barcode)]

    def _step_failed(self, result: StepFailed, now: float) -> list[Action]:
        found = self._book(result.uid)
        if found is None:
            return []
        session, book = found
        book.state, book.message_key = "failed", result.message_key
        book.params = {"title": book.title or book.barcode, **result.params}
        what = "not_lent" if book.kind == "lend" else "not_returned"
        return [Notify(session.id, what, result.message_key, dict(book.params), book.uid,
                       book.barcode)]

    def _flag_set(self, result: FlagSet, now: float) -> list[Action]:
        found = self._book(result.uid)
        if found is None:
            return []
        session, book = found
        if result.on_loan and book.state == "committed":
            book.state = "lent"
            params = {"title": book.title, "due_date": book.due_date, "barcode": book.barcode}
            return [Notify(session.id, "lent", "circ.checkout.ok", params, book.uid,
                           book.barcode, book.txn_id)]
        if not result.on_loan and book.state == "committed" and book.kind == "return":
            book.state = "returned"
            return [Notify(session.id, "returned", "circ.checkin.ok", dict(book.params),
                           book.uid, book.barcode, book.txn_id, book.notes)]
        return []  # the shelf flag restored after an undo: already told

    def _flag_failed(self, result: FlagFailed, now: float) -> list[Action]:
        found = self._book(result.uid)
        if found is None:
            return []
        session, book = found
        params = {"title": book.title or book.barcode, **result.params}
        if result.on_loan and book.state == "committed" and book.txn_id is not None:
            book.message_key, book.params = result.message_key, params
            return [UndoLoan(session.id, book.uid, book.barcode, book.txn_id)]
        if book.kind == "return" and book.state == "committed":
            book.state = "returned"
            return [Notify(session.id, "returned", "circ.checkin.ok", dict(book.params),
                           book.uid, book.barcode, book.txn_id, book.notes),
                    Notify(session.id, "hand_to_staff", "daemon.book.flag_not_reset", params,
                           book.uid, book.barcode)]
        # The shelf flag after an undo did not take either: the tag may say "on loan".
        return [Notify(session.id, "hand_to_staff", "daemon.book.flag_unknown", params,
                       book.uid, book.barcode)]

    def _loan_undone(self, result: LoanUndone, now: float) -> list[Action]:
        found = self._book(result.uid)
        if found is None:
            return []
        session, book = found
        params = {"title": book.title or book.barcode}
        if not result.ok:
            book.state = "unsecured"
            return [Notify(session.id, "hand_to_staff", "daemon.book.undo_failed", params,
                           book.uid, book.barcode, book.txn_id)]
        book.state, book.message_key, book.params = "undone", "daemon.book.not_secured", params
        return [Notify(session.id, "not_lent", "daemon.book.not_secured", params, book.uid,
                       book.barcode, book.txn_id),
                SetFlag(session.id, book.uid, book.barcode, False, book.txn_id)]

    def _return_committed(self, result: ReturnCommitted, now: float) -> list[Action]:
        found = self._book(result.uid)
        if found is None:
            return []
        session, book = found
        book.state, book.title, book.txn_id = "committed", result.title, result.txn_id
        book.params = {"title": result.title, "barcode": book.barcode, **result.params}
        book.notes = result.notes
        if book.typed:
            book.state = "returned"
            return [Notify(session.id, "returned", "circ.checkin.ok", dict(book.params),
                           book.uid, book.barcode, book.txn_id,
                           (*book.notes, "daemon.book.typed_no_tag"))]
        # No journal row to settle: a returned book with an on-loan flag is harmless.
        return [SetFlag(session.id, book.uid, book.barcode, False)]

    # -- internals ---------------------------------------------------------------------------

    def _start(self, card: str | None, mode: Mode, now: float) -> list[Action]:
        session = Session(self._next_id, card, mode, now, now)
        self._next_id += 1
        self.session = session
        return [StartSession(session.id, card, mode)]

    def _handle_new(self, now: float) -> list[Action]:
        """Lend or return every book on the pad not handled yet, in pad order."""
        session = self.session
        assert session is not None
        actions: list[Action] = []
        if session.mode is Mode.LEND and session.pin != "ok":
            return []  # the books wait on the pad for the PIN
        for uid, pad_book in self.on_pad.items():
            if uid in self.handled:
                continue
            self.handled.add(uid)
            session.last_activity, session.warned = now, False
            kind = "lend" if session.mode is Mode.LEND else "return"
            if pad_book.barcode is None:
                key = pad_book.error or "daemon.book.unreadable"
                session.books[uid] = _Book(uid, "", kind, "failed", message_key=key)
                actions.append(Notify(session.id, "unreadable", key, {}, uid))
                continue
            book = _Book(uid, pad_book.barcode, kind, title=pad_book.barcode)
            session.books[uid] = book
            if kind == "lend":
                assert session.card is not None
                actions.append(Lend(session.id, session.card, uid, pad_book.barcode))
            else:
                actions.append(Return(session.id, uid, pad_book.barcode))
        return actions

    def _end(self, reason: str) -> list[Action]:
        session = self.session
        if session is None:
            return []
        self.session = None
        return [EndSession(session.id, reason, _receipts(session))]


def _receipts(session: Session) -> tuple[ReceiptPlan, ...]:
    """A loan receipt when anything was lent or picked up, a return receipt when anything was
    returned; each lists the books of its kind that were not done, and why."""
    plans = []
    for kind, done_state, receipt in (("lend", "lent", "loan"), ("return", "returned", "return")):
        books = [b for b in session.books.values() if b.kind == kind]
        done = [ReceiptLine(b.title, b.barcode, b.due_date)
                for b in books if b.state == done_state]
        not_done = [
            ReceiptLine(b.title or b.barcode or b.uid, b.barcode, message_key=b.message_key,
                        params=dict(b.params))
            for b in books if b.state in ("refused", "failed", "undone", "unsecured")]
        if kind == "lend":
            holds = session.holds.values()
            done += [ReceiptLine(h.hold.title, h.hold.barcode, h.due_date)
                     for h in holds if h.state == "picked_up"]
            not_done += [ReceiptLine(h.hold.title, h.hold.barcode, message_key=h.message_key,
                                     params=dict(h.params))
                         for h in holds if h.state in ("failed", "unrecorded")]
        if done:
            plans.append(ReceiptPlan(receipt, session.card, tuple(done), tuple(not_done)))
    return tuple(plans)


_HANDLERS: dict[type, Any] = {
    CardSeen: SessionMachine._card_seen,
    CardRemoved: SessionMachine._card_removed,
    TagsChanged: SessionMachine._tags_changed,
    Tick: SessionMachine._tick,
    Finish: SessionMachine._finish,
    SetMode: SessionMachine._set_mode,
    Pickup: SessionMachine._pickup,
    PinEntered: SessionMachine._pin_entered,
    OverrideLend: SessionMachine._override_lend,
    TypedBook: SessionMachine._typed_book,
    PinChecked: SessionMachine._pin_checked,
    HoldsFound: SessionMachine._holds_found,
    PickedUp: SessionMachine._picked_up,
    PickupFailed: SessionMachine._pickup_failed,
    LoanCommitted: SessionMachine._loan_committed,
    LoanRefused: SessionMachine._refused,
    ReturnRefused: SessionMachine._refused,
    StepFailed: SessionMachine._step_failed,
    FlagSet: SessionMachine._flag_set,
    FlagFailed: SessionMachine._flag_failed,
    LoanUndone: SessionMachine._loan_undone,
    ReturnCommitted: SessionMachine._return_committed,
}
