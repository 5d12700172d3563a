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
    Lend,
    LoanCommitted,
    LoanRefused,
    LoanUndone,
    Notify,
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
    PadBook,
    SetMode,
    TagsChanged,
    Tick,
)

A, B = "431100000017", "431100000025"


def pad(*barcodes: str, initial: bool = False) -> TagsChanged:
    return TagsChanged(tuple(PadBook(f"E0{b}", b) for b in barcodes), initial)


def committed(barcode: str) -> LoanCommitted:
    return LoanCommitted(f"E0{barcode}", barcode, f"txn-{barcode}", f"书{barcode}", "2026-12-25")


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
