"""The daemon's explicit state and the named events its workers post to the event loop.

Every event is a frozen dataclass with a ``kind`` (its name in logs and on the control
socket's ``watch`` stream). Device events come from the worker threads; the session machine
(:mod:`kiosk.daemon.session`) consumes them together with :class:`Tick`, :class:`Finish`,
:class:`SetMode` and :class:`Pickup`, and with the results of the steps it asked for
(:mod:`kiosk.daemon.actions` defines those). :class:`EntryCardSeen` and :class:`DoorAlarm`
do not concern the patron session: the daemon handles them itself. Times are monotonic
seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class DaemonState(StrEnum):
    """Where the daemon is in its life. READY and DEGRADED both serve patrons; DEGRADED
    means a device is offline (it is being reconnected and ``kiosk status`` names it)."""

    STARTING = "starting"
    READY = "ready"
    DEGRADED = "degraded"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Mode(StrEnum):
    """What placing books does in a session: lend them to the card holder, or take them back."""

    LEND = "lend"
    RETURN = "return"


@dataclass(frozen=True)
class PadBook:
    """A tag on the pad: ``barcode`` when its ISO 28560 data decoded, else ``error`` (why not:
    a message key such as ``daemon.book.unreadable``)."""

    uid: str
    barcode: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class CardSeen:
    """A card arrived on the reader. ``card`` is the library-card number stored on it, or
    its UID (hex) when it carries none."""

    card: str
    uid: str
    kind = "card_seen"


@dataclass(frozen=True)
class CardRemoved:
    """The card left the reader (it was not seen for a few polls in a row)."""

    uid: str
    kind = "card_removed"


@dataclass(frozen=True)
class TagsChanged:
    """What is on the pad now (every tag, not only the new ones). ``initial`` marks the first
    inventory after the daemon started: those books were there before anyone asked for
    anything, and are not lent or returned by merely lying there."""

    books: tuple[PadBook, ...]
    initial: bool = False
    kind = "tags_changed"


@dataclass(frozen=True)
class EntryCardSeen:
    """A card arrived on the reader outside the entrance (night entry); fields as
    :class:`CardSeen`. Its removal is not posted: nothing depends on it."""

    card: str
    uid: str
    kind = "entry_card_seen"


@dataclass(frozen=True)
class DoorChanged:
    """A door (the entrance, or a locker slot ``name``) opened or closed (debounced)."""

    name: str
    is_open: bool
    kind = "door"


@dataclass(frozen=True)
class DoorAlarm:
    """A door (``door``, or a locker slot ``name``) has been open longer than allowed
    (``left_open``), or it closed again after that (``left_open`` False)."""

    name: str
    left_open: bool
    kind = "door_alarm"


@dataclass(frozen=True)
class PrinterStatusChanged:
    """The printer's problems changed (empty: it can print)."""

    problems: tuple[str, ...]
    kind = "printer"


@dataclass(frozen=True)
class DeviceChanged:
    """A device went offline or came back (from its link)."""

    device: str
    online: bool
    detail: str
    kind = "device"


@dataclass(frozen=True)
class SyncStateChanged:
    """A sync with the hub ended: ``ok``, the events still waiting, and the error's code."""

    ok: bool
    queue_depth: int
    error: str | None = None
    kind = "sync"


@dataclass(frozen=True)
class Tick:
    """Time passes (sent about four times a second): session warnings and timeouts."""

    kind = "tick"


@dataclass(frozen=True)
class Finish:
    """The patron pressed "finish" (on the screen, or ``kiosk sim finish``)."""

    kind = "finish"


@dataclass(frozen=True)
class SetMode:
    """The patron chose to borrow or to return (the screen's buttons)."""

    mode: Mode
    kind = "set_mode"


@dataclass(frozen=True)
class Pickup:
    """The patron asked to collect the reserved book of hold ``hold_id`` from its locker
    (the screen, ``kiosk sim pickup``)."""

    hold_id: int
    kind = "pickup"


@dataclass(frozen=True)
class PinEntered:
    """The patron typed a PIN on the screen. Never shown in logs."""

    pin: str = field(repr=False)
    kind = "pin_entered"


@dataclass(frozen=True)
class OverrideLend:
    """Staff at the desk lend a book the rules refused, giving ``reason`` (see
    :class:`sync.staff.Override`): the book on the pad is tried again with the override."""

    barcode: str
    reason: str
    kind = "override_lend"


@dataclass(frozen=True)
class TypedBook:
    """Staff at the desk typed a book's barcode (its tag cannot be read, or the book has
    none): it is lent or returned like a book on the pad, but no tag is written."""

    barcode: str
    kind = "typed_book"


DeviceEvent = (CardSeen | CardRemoved | EntryCardSeen | TagsChanged | DoorChanged | DoorAlarm
               | PrinterStatusChanged | DeviceChanged | SyncStateChanged)
