"""The patron session state machine, on its own: events in, actions out, no hardware.

Each case is a script of (time, input) and the kinds of actions expected after each step;
a step's result (a loan committed, a flag set...) is fed back the way the daemon does.
"""

from __future__ import annotations

import pytest

from kiosk.daemon.actions import (
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
    ReadyHold,
    Return,
    ReturnCommitted,
    SetFlag,
    StartSession,
    StepFailed,
    UndoLoan,
)
from kiosk.daemon.session import SessionMachine
from kiosk.daemon.state import (
    CardRemoved,
    CardSeen,
    Finish,
    Mode,
    OverrideLend,
    PadBook,
    Pickup,
    SetMode,
    TagsChanged,
    Tick,
    TypedBook,
)

A, B = "431100000017", "431100000025"


def pad(*barcodes: str, initial: bool = False) -> TagsChanged:
    return TagsChanged(tuple(PadBook(f"E0{b}", b) for b in barcodes), initial)


def committed(barcode: str) -> LoanCommitted:
    return LoanCommitted(f"E0{barcode}", barcode, f"txn-{barcode}", f"书{barcode}", "2026-12-25")


def holds(session: int = 1, *slots: str | None) -> HoldsFound:
    """The ready holds 7, 8, ... of the session's patron, in lockers ``slots``."""
    return HoldsFound(session, tuple(ReadyHold(7 + n, f"预约书{7 + n}", f"9{7 + n}", slot)
                                     for n, slot in enumerate(slots)))


def picked(hold_id: int, slot: str = "A01") -> PickedUp:
    return PickedUp(hold_id, slot, f"9{hold_id}", f"预约书{hold_id}", "2026-12-25",
                    f"txn-h{hold_id}")


def names(actions: list) -> list[str]:
    out = []
    for a in actions:
        name = type(a).__name__
        if isinstance(a, Notify):
            name += f":{a.what}"
        if isinstance(a, SetFlag):
            name += ":on_loan" if a.on_loan else ":shelf"
        if isinstance(a, EndSession):
            name += f":{a.reason}"
        out.append(name)
    return out


# Each script: steps of (seconds, input, expected action names).
SCRIPTS = {
    "card then books: lend, flag, then tell": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (1, pad("1", "2"), ["Lend", "Lend"]),
        (1, committed("1"), ["SetFlag:on_loan"]),
        (1, FlagSet("E01", True), ["Notify:lent"]),
        (1, committed("2"), ["SetFlag:on_loan"]),
        (1, FlagSet("E02", True), ["Notify:lent"]),
        (2, Finish(), ["EndSession:finished"]),
    ],
    "flag fails: the loan is undone, the shelf flag restored, staff asked": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (1, pad("1"), ["Lend"]),
        (1, committed("1"), ["SetFlag:on_loan"]),
        (1, FlagFailed("E01", True, "device.security_not_set"), ["UndoLoan"]),
        (1, LoanUndone("E01", True), ["Notify:not_lent", "SetFlag:shelf"]),
        (1, FlagSet("E01", False), []),
        (2, Finish(), ["EndSession:finished"]),
    ],
    "undo fails too: staff is asked, nothing is reported lent": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (1, pad("1"), ["Lend"]),
        (1, committed("1"), ["SetFlag:on_loan"]),
        (1, FlagFailed("E01", True, "device.offline"), ["UndoLoan"]),
        (1, LoanUndone("E01", False), ["Notify:hand_to_staff"]),
    ],
    "refused loan is reported, nothing flagged": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (1, pad("1"), ["Lend"]),
        (1, LoanRefused("E01", "1", "书1", "circ.reason.patron_expired"), ["Notify:not_lent"]),
        (2, Finish(), ["EndSession:finished"]),
    ],
    "reader offline: not attempted, reported": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (1, pad("1"), ["Lend"]),
        (1, StepFailed("E01", "1", "daemon.book.reader_offline"), ["Notify:not_lent"]),
    ],
    "books without a card are returned, flag after the return": [
        (0, pad("1"), ["StartSession", "Return"]),
        (0, ReturnCommitted("E01", "1", "书1", "txn-r1"), ["SetFlag:shelf"]),
        (0, FlagSet("E01", False), ["Notify:returned"]),
        (1, Finish(), ["EndSession:finished"]),
    ],
    "return whose shelf flag fails still stands; staff asked": [
        (0, pad("1"), ["StartSession", "Return"]),
        (0, ReturnCommitted("E01", "1", "书1", "txn-r1"), ["SetFlag:shelf"]),
        (0, FlagFailed("E01", False, "device.write_failed"),
         ["Notify:returned", "Notify:hand_to_staff"]),
    ],
    "a barcode typed at the desk is lent with no tag to write, and not twice": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (1, TypedBook("7"), ["Lend"]),
        (1, TypedBook("7"), []),
        (1, LoanCommitted("typed:7", "7", "txn-7", "书7", "2026-12-25"), ["Notify:lent"]),
        (2, Finish(), ["EndSession:finished"]),
    ],
    "a barcode typed with no card in session is taken back, no tag written": [
        (0, TypedBook("7"), ["StartSession", "Return"]),
        (0, ReturnCommitted("typed:7", "7", "书7", "txn-r7"), ["Notify:returned"]),
    ],
    "a refused typed loan may be lent with an override": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (1, TypedBook("7"), ["Lend"]),
        (1, LoanRefused("typed:7", "7", "书7", "circ.reason.patron_blocked"),
         ["Notify:not_lent"]),
        (1, OverrideLend("7", "补办手续"), ["Lend"]),
    ],
    "a new card ends the session and starts another": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (1, CardRemoved("U1"), []),
        (2, CardSeen(B, "U2"), ["EndSession:new_card", "StartSession"]),
    ],
    "the same card again only keeps the session going": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (1, CardRemoved("U1"), []),
        (2, CardSeen(A, "U1"), []),
    ],
    "an idle session is warned, then ends": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (44, Tick(), []),
        (45, Tick(), ["Notify:warning"]),
        (50, Tick(), []),
        (60, Tick(), ["EndSession:timeout"]),
        (61, Tick(), []),
    ],
    "a card lying on the reader does not extend the session": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (30, Tick(), []),
        (60, Tick(), ["EndSession:timeout"]),
        (70, pad(), []),
    ],
    "activity on the pad keeps the session": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (40, pad("1"), ["Lend"]),
        (40, committed("1"), ["SetFlag:on_loan"]),
        (40, FlagSet("E01", True), ["Notify:lent"]),
        (90, Tick(), ["Notify:warning"]),
        (100, Tick(), ["EndSession:timeout"]),
    ],
    "books on the pad at start are not handled": [
        (0, pad("1", "2", initial=True), []),
        (1, CardSeen(A, "U1"), ["StartSession"]),
        (2, pad("1", "2", "3"), ["Lend"]),
    ],
    "a book handled stays handled until lifted": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (1, pad("1"), ["Lend"]),
        (1, committed("1"), ["SetFlag:on_loan"]),
        (1, FlagSet("E01", True), ["Notify:lent"]),
        (2, pad("1"), []),
        (3, pad(), []),
        (4, pad("1"), ["Lend"]),
    ],
    "a returned book lying there is not lent to the next card": [
        (0, pad("1"), ["StartSession", "Return"]),
        (0, ReturnCommitted("E01", "1", "书1", "txn-r1"), ["SetFlag:shelf"]),
        (0, FlagSet("E01", False), ["Notify:returned"]),
        (1, CardSeen(A, "U1"), ["EndSession:new_card", "StartSession"]),
        (2, pad("1", "2"), ["Lend"]),
    ],
    "an unreadable tag is reported once": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (1, TagsChanged((PadBook("E0X", error="daemon.book.unreadable"),)),
         ["Notify:unreadable"]),
        (2, TagsChanged((PadBook("E0X", error="daemon.book.unreadable"),)), []),
    ],
    "the return button starts a return session; lend needs a card": [
        (0, SetMode(Mode.LEND), []),
        (0, SetMode(Mode.RETURN), ["StartSession"]),
        (1, pad("1"), ["Return"]),
    ],
    "a ready hold is collected from its locker and the session goes on": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (0, holds(1, "A01", "A02"), []),
        (40, Pickup(8), ["OpenLocker"]),
        (40, picked(8, "A02"), ["Notify:picked_up"]),
        (90, Tick(), ["Notify:warning"]),
        (91, Finish(), ["EndSession:finished"]),
    ],
    "a locker that did not open leaves the hold ready: the patron may try again": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (0, holds(1, "A01"), []),
        (1, Pickup(7), ["OpenLocker"]),
        (1, PickupFailed(7, "daemon.pickup.not_opened", {"slot": "A01"}),
         ["Notify:pickup_failed"]),
        (2, Pickup(7), ["OpenLocker"]),
        (2, picked(7), ["Notify:picked_up"]),
        (3, Pickup(7), ["Notify:pickup_failed"]),  # already collected: nothing opens
    ],
    "another patron's hold, or none, is refused and nothing opens": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (0, holds(1, "A01"), []),
        (1, Pickup(99), ["Notify:pickup_failed"]),
    ],
    "pressing pickup twice opens the locker once": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (0, holds(1, "A01"), []),
        (1, Pickup(7), ["OpenLocker"]),
        (1, Pickup(7), []),
    ],
    "a pickup needs a card; without a session it does nothing": [
        (0, Pickup(7), []),
        (1, pad("1"), ["StartSession", "Return"]),
        (2, Pickup(7), ["Notify:pickup_failed"]),
    ],
    "a hold not in a locker is for staff": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (0, holds(1, None), []),
        (1, Pickup(7), ["Notify:pickup_failed"]),
    ],
    "the holds of another session are not this patron's": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (0, holds(2, "A01"), []),
        (1, Pickup(7), ["Notify:pickup_failed"]),
    ],
    "a locker that opened but whose pickup was not recorded goes to staff": [
        (0, CardSeen(A, "U1"), ["StartSession"]),
        (0, holds(1, "A01"), []),
        (1, Pickup(7), ["OpenLocker"]),
        (1, PickupFailed(7, "daemon.pickup.not_recorded", {"slot": "A01"}, opened=True),
         ["Notify:hand_to_staff"]),
        (2, Pickup(7), ["Notify:pickup_failed"]),
    ],
    "finish without a session does nothing": [
        (0, Finish(), []),
        (0, Tick(), []),
    ],
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_script(name):
    machine = SessionMachine(timeout_s=60, warning_s=45)
    for step, (at, event, expected) in enumerate(SCRIPTS[name]):
        assert names(machine.feed(event, float(at))) == expected, f"{name}: step {step}"


def test_lent_is_told_only_after_the_flag_reads_back():
    machine = SessionMachine()
    machine.feed(CardSeen(A, "U1"), 0)
    (lend,) = machine.feed(pad("1"), 1)
    assert isinstance(lend, Lend) and (lend.card, lend.barcode) == (A, "1")
    (flag,) = machine.feed(committed("1"), 1)
    assert isinstance(flag, SetFlag) and flag.on_loan and flag.txn_id == "txn-1"
    (told,) = machine.feed(FlagSet("E01", True), 1)
    assert told.what == "lent" and told.txn_id == "txn-1" and told.message_key == "circ.checkout.ok"
    assert told.params["due_date"] == "2026-12-25"


def test_receipts_list_what_was_done_and_what_was_not():
    machine = SessionMachine()
    machine.feed(CardSeen(A, "U1"), 0)
    machine.feed(pad("1", "2", "3"), 1)
    for barcode in ("1", "2"):
        machine.feed(committed(barcode), 1)
    machine.feed(FlagSet("E01", True), 1)
    (undo,) = machine.feed(FlagFailed("E02", True, "device.security_not_set"), 1)
    assert isinstance(undo, UndoLoan) and undo.txn_id == "txn-2"
    machine.feed(LoanUndone("E02", True), 1)
    machine.feed(LoanRefused("E03", "3", "书3", "circ.reason.item_not_for_loan",
                             {"title": "书3"}), 1)
    (end,) = machine.feed(Finish(), 2)
    (receipt,) = end.receipts
    assert receipt.kind == "loan" and receipt.card == A
    assert [line.barcode for line in receipt.done] == ["1"]
    assert [(line.barcode, line.message_key) for line in receipt.not_done] == [
        ("2", "daemon.book.not_secured"), ("3", "circ.reason.item_not_for_loan")]


def test_nothing_done_means_no_receipt():
    machine = SessionMachine()
    machine.feed(CardSeen(A, "U1"), 0)
    machine.feed(pad("1"), 1)
    machine.feed(StepFailed("E01", "1", "daemon.book.reader_offline"), 1)
    (end,) = machine.feed(Finish(), 2)
    assert end.receipts == ()


def test_return_notes_carry_the_route():
    machine = SessionMachine()
    (start, ret) = machine.feed(pad("1"), 0)
    assert isinstance(start, StartSession) and start.card is None and start.mode is Mode.RETURN
    assert isinstance(ret, Return)
    machine.feed(ReturnCommitted("E01", "1", "书1", "t", ("circ.route.transit",),
                                 {"branch": "县图书馆"}), 0)
    (told,) = machine.feed(FlagSet("E01", False), 0)
    assert told.notes == ("circ.route.transit",) and told.params["branch"] == "县图书馆"
    (end,) = machine.feed(Finish(), 1)
    assert [r.kind for r in end.receipts] == ["return"]


def test_results_after_the_session_ended_are_ignored():
    machine = SessionMachine()
    machine.feed(CardSeen(A, "U1"), 0)
    machine.feed(Finish(), 1)
    assert machine.feed(committed("1"), 2) == []


def test_the_warning_must_come_before_the_timeout():
    with pytest.raises(ValueError):
        SessionMachine(timeout_s=30, warning_s=30)


def test_unknown_inputs_are_refused():
    with pytest.raises(TypeError):
        SessionMachine().feed(object(), 0)


def test_a_pickup_opens_the_holds_own_locker_and_tells_title_due_date_and_slot():
    machine = SessionMachine()
    machine.feed(CardSeen(A, "U1"), 0)
    machine.feed(holds(1, "A01", "B02"), 0)
    (opening,) = machine.feed(Pickup(8), 1)
    assert isinstance(opening, OpenLocker)
    assert (opening.session, opening.card, opening.hold_id, opening.slot) == (1, A, 8, "B02")
    (told,) = machine.feed(picked(8, "B02"), 1)
    assert (told.what, told.message_key, told.hold_id, told.slot) == (
        "picked_up", "circ.pickup.ok", 8, "B02")
    assert told.txn_id == "txn-h8" and told.barcode == "98"
    assert {k: told.params[k] for k in ("title", "due_date", "locker")} == {
        "title": "预约书8", "due_date": "2026-12-25", "locker": "B02"}
    summary = machine.session.summary()
    assert [(h["hold_id"], h["state"]) for h in summary["holds"]] == [
        (7, "ready"), (8, "picked_up")]


def test_refused_pickups_say_why():
    machine = SessionMachine()
    machine.feed(CardSeen(A, "U1"), 0)
    machine.feed(holds(1, "A01"), 0)
    (unknown,) = machine.feed(Pickup(99), 1)
    assert (unknown.message_key, unknown.params["hold_id"]) == ("daemon.pickup.unknown_hold", 99)
    machine.feed(Pickup(7), 1)
    blocked = PickupFailed(7, "circ.reason.patron_blocked", {"title": "预约书7"})
    (refused,) = machine.feed(blocked, 1)
    assert refused.what == "pickup_failed" and refused.message_key == "circ.reason.patron_blocked"
    assert refused.params["title"] == "预约书7" and refused.slot == "A01"


def test_the_loan_receipt_lists_picked_up_books_and_pickups_that_failed():
    machine = SessionMachine()
    machine.feed(CardSeen(A, "U1"), 0)
    machine.feed(holds(1, "A01", "A02"), 0)
    machine.feed(Pickup(7), 1)
    machine.feed(picked(7), 1)
    machine.feed(Pickup(8), 2)
    machine.feed(PickupFailed(8, "daemon.pickup.not_opened", {"slot": "A02"}), 2)
    (end,) = machine.feed(Finish(), 3)
    (receipt,) = end.receipts
    assert receipt.kind == "loan" and receipt.card == A
    assert [(line.title, line.barcode, line.due_date) for line in receipt.done] == [
        ("预约书7", "97", "2026-12-25")]
    assert [(line.title, line.message_key) for line in receipt.not_done] == [
        ("预约书8", "daemon.pickup.not_opened")]


def test_a_session_with_only_failed_pickups_prints_nothing():
    machine = SessionMachine()
    machine.feed(CardSeen(A, "U1"), 0)
    machine.feed(holds(1, "A01"), 0)
    machine.feed(Pickup(7), 1)
    machine.feed(PickupFailed(7, "daemon.pickup.not_opened"), 1)
    (end,) = machine.feed(Finish(), 2)
    assert end.receipts == ()
