"""What the session machine and the daemon say to each other: the results of the steps the
daemon carried out (fed back into the machine) and the actions the machine asks for.

Plain frozen dataclasses; see :mod:`kiosk.daemon.session` for the rules that connect them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kiosk.daemon.state import Mode

# -- results of the steps, fed back by the daemon -------------------------------------------


@dataclass(frozen=True)
class LoanCommitted:
    uid: str
    barcode: str
    txn_id: str
    title: str
    due_date: str


@dataclass(frozen=True)
class LoanRefused:
    """The rules said no (card expired, not for loan...): nothing was recorded."""

    uid: str
    barcode: str
    title: str
    message_key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepFailed:
    """A lend or return could not even be tried (reader offline, database error): nothing
    was recorded. ``message_key`` says why, for the patron."""

    uid: str
    barcode: str
    message_key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FlagSet:
    uid: str
    on_loan: bool


@dataclass(frozen=True)
class FlagFailed:
    uid: str
    on_loan: bool
    message_key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoanUndone:
    """The return that undoes a loan whose flag could not be set: committed (``ok``) or not
    (then the loan stands without a secured tag, and stays in the flag journal)."""

    uid: str
    ok: bool


@dataclass(frozen=True)
class ReturnCommitted:
    uid: str
    barcode: str
    title: str
    txn_id: str | None
    notes: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReturnRefused:
    uid: str
    barcode: str
    title: str
    message_key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadyHold:
    """A hold of the session's patron ready for pickup here: its book and its locker slot
    (None: the book is not in a locker, staff hand it over)."""

    hold_id: int
    title: str
    barcode: str
    slot: str | None
    expires_on: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"hold_id": self.hold_id, "title": self.title, "barcode": self.barcode,
                "slot": self.slot, "expires_on": self.expires_on}


@dataclass(frozen=True)
class HoldsFound:
    """The ready holds of the patron of ``session`` (read when the session started)."""

    session: int
    holds: tuple[ReadyHold, ...]


@dataclass(frozen=True)
class PickedUp:
    """The locker of hold ``hold_id`` opened (its sensor saw the door open) and the pickup
    is committed with its event: the book is lent to the patron."""

    hold_id: int
    slot: str
    barcode: str
    title: str
    due_date: str
    txn_id: str


@dataclass(frozen=True)
class PickupFailed:
    """Hold ``hold_id`` was not picked up: the rules refused (nothing opened), or the
    locker did not open (nothing recorded; the hold stays ready). ``opened``: the locker
    did open but the pickup could not be recorded, so the book is out unrecorded."""

    hold_id: int
    message_key: str
    params: dict[str, Any] = field(default_factory=dict)
    opened: bool = False


@dataclass(frozen=True)
class PinChecked:
    """The answer to :class:`AskPin` or :class:`VerifyPin` for ``session``: ``ok`` (the
    card may lend; ``needed`` False when no PIN was asked at all), or why not
    (``message_key``, ``params``); ``locked``: no more tries, the session ends."""

    session: int
    ok: bool
    needed: bool = True
    message_key: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    locked: bool = False
    locked_now: bool = False  # this wrong PIN was the one that locked the card


Result = (LoanCommitted | LoanRefused | StepFailed | FlagSet | FlagFailed | LoanUndone
          | ReturnCommitted | ReturnRefused | HoldsFound | PickedUp | PickupFailed
          | PinChecked)

# -- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartSession:
    session: int
    card: str | None
    mode: Mode


@dataclass(frozen=True)
class Lend:
    session: int
    card: str
    uid: str
    barcode: str
    override_reason: str | None = None  # staff at the desk lend despite a refusal


@dataclass(frozen=True)
class Return:
    session: int
    uid: str
    barcode: str


@dataclass(frozen=True)
class SetFlag:
    """Write the tag's flag (``on_loan`` or back on the shelf) and read it back; once it
    reads as written, the flag journal's row of loan ``txn_id`` (if given) is settled."""

    session: int
    uid: str
    barcode: str
    on_loan: bool
    txn_id: str | None = None


@dataclass(frozen=True)
class UndoLoan:
    session: int
    uid: str
    barcode: str
    txn_id: str


@dataclass(frozen=True)
class OpenLocker:
    """Collect hold ``hold_id`` for ``card`` from locker ``slot``: ask the rules (nothing is
    opened if they refuse), open the slot, and only once its sensor saw the door open,
    commit the pickup. Result: :class:`PickedUp` or :class:`PickupFailed`."""

    session: int
    card: str
    hold_id: int
    slot: str


@dataclass(frozen=True)
class Notify:
    """Tell the patron (and the watchers): ``what`` is lent, not_lent, returned,
    not_returned, picked_up, pickup_failed, hand_to_staff, unreadable or warning; the text
    is ``message_key`` with ``params``, followed by each of ``notes``. ``hold_id`` and
    ``slot`` are given for a pickup."""

    session: int
    what: str
    message_key: str
    params: dict[str, Any] = field(default_factory=dict)
    uid: str | None = None
    barcode: str | None = None
    txn_id: str | None = None
    notes: tuple[str, ...] = ()
    hold_id: int | None = None
    slot: str | None = None


@dataclass(frozen=True)
class ReceiptLine:
    title: str
    barcode: str
    due_date: str = ""
    message_key: str = ""  # why not done, for a book that was not
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceiptPlan:
    """What one receipt lists: ``kind`` loan or return, the books done and those not."""

    kind: str
    card: str | None
    done: tuple[ReceiptLine, ...]
    not_done: tuple[ReceiptLine, ...] = ()


@dataclass(frozen=True)
class EndSession:
    session: int
    reason: str  # finished, timeout, new_card, shutdown
    receipts: tuple[ReceiptPlan, ...] = ()


@dataclass(frozen=True)
class AskPin:
    """Does the holder of ``card`` have to give a PIN before lending? (answered with
    :class:`PinChecked`)"""

    session: int
    card: str


@dataclass(frozen=True)
class VerifyPin:
    """Check the PIN the patron typed (answered with :class:`PinChecked`)."""

    session: int
    card: str
    pin: str = field(repr=False)


Action = (StartSession | Lend | Return | SetFlag | UndoLoan | OpenLocker | Notify | EndSession
          | AskPin | VerifyPin)
