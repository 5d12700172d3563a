"""SIP2 field kinds: how one value is written to and read from message text.

A message is a fixed-length part (positional fields, each of an exact width) followed by
variable fields, each a two-letter identifier, a value and a '|'. The kinds here convert
between Python values and that text. Writing is exact and refuses what cannot be
represented; reading is lenient where the standard's users are (blank means "not given")
and raises :class:`BadField` only where a value cannot mean anything (a date that is not
one).

Messages declare their fields with :func:`fixed` and :func:`var` (dataclass fields carrying
the kind in their metadata); :mod:`sync.sip2.codec` walks those declarations.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sync.sip2.errors import BadField

DATE_WIDTH = 18
# "YYYYMMDDZZZZHHMMSS"; ZZZZ is four spaces for local time or "   Z" for UTC.
_LOCAL_ZONE = "    "
_UTC_ZONE = "   Z"

# The 14 positions of the "patron status" fixed field (SIP 2.00, patron status response).
PATRON_STATUS_FLAGS = (
    "charge_privileges_denied", "renewal_privileges_denied", "recall_privileges_denied",
    "hold_privileges_denied", "card_reported_lost", "too_many_items_charged",
    "too_many_items_overdue", "too_many_renewals", "too_many_claims_of_items_returned",
    "too_many_items_lost", "excessive_outstanding_fines", "excessive_outstanding_fees",
    "recall_overdue", "too_many_items_billed",
)
# The 10 positions of the "summary" fixed field of patron information (63); at most one is
# 'Y'. The last four are reserved by the standard.
SUMMARY_ITEMS = ("hold", "overdue", "charged", "fine", "recall", "unavailable_hold")
# The 16 positions of BX "supported messages" (ACS status, 98), as the command identifier
# each position stands for.
SUPPORTED_MESSAGES = ("23", "11", "09", "01", "99", "97", "93", "63", "35", "37", "17", "19",
                      "25", "15", "29", "65")


def check_text(value: str, name: str) -> str:
    """``value`` if it may stand in a SIP2 field; '|' and line breaks would end it early."""
    if not isinstance(value, str):
        raise BadField(f"{name}: expected text, got {type(value).__name__}")
    for bad in ("|", "\r", "\n"):
        if bad in value:
            raise BadField(f"{name}: {bad!r} cannot appear in a SIP2 field value: {value!r}")
    return value


def write_date(value: datetime | None, name: str) -> str:
    """18 characters: blanks for ``None``, local time for a naive datetime, UTC ("   Z") for
    an aware one (converted to UTC first)."""
    if value is None:
        return " " * DATE_WIDTH
    if not isinstance(value, datetime):
        raise BadField(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.year < 1000:
        raise BadField(f"{name}: year {value.year} does not fit in four digits")
    if value.tzinfo is None:
        zone = _LOCAL_ZONE
    else:
        value, zone = value.astimezone(UTC), _UTC_ZONE
    return f"{value:%Y%m%d}{zone}{value:%H%M%S}"


def read_date(text: str, name: str) -> datetime | None:
    """``None`` for blanks; naive (local) unless the zone is "Z" (UTC). Other zone texts
    seen in the wild are read as local time."""
    if not text.strip():
        return None
    if len(text) != DATE_WIDTH or not (text[:8] + text[12:]).isdigit() \
            or not (text[:8] + text[12:]).isascii():
        raise BadField(f"{name}: {text!r} is not a SIP2 date (YYYYMMDDZZZZHHMMSS)")
    try:
        when = datetime.strptime(text[:8] + text[12:], "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise BadField(f"{name}: {text!r} is not a valid date ({exc})") from None
    return when.replace(tzinfo=UTC) if text[8:12].strip().upper() == "Z" else when


class Kind:
    """How one field's value becomes text and back. ``width`` is set for fixed fields."""

    width: int | None = None

    def write(self, value: Any, name: str) -> str:
        raise NotImplementedError

    def read(self, text: str, name: str) -> Any:
        raise NotImplementedError


class Text(Kind):
    """Free text; with a width, exactly that many characters."""

    def __init__(self, width: int | None = None) -> None:
        self.width = width

    def write(self, value: str, name: str) -> str:
        check_text(value, name)
        if self.width is not None and len(value) != self.width:
            raise BadField(f"{name}: must be exactly {self.width} characters, got {value!r}")
        return value

    def read(self, text: str, name: str) -> str:
        return text


class Flag(Kind):
    """A one-character boolean: ``yes``/``no`` letters, and optionally an "unknown" letter
    read and written as ``None``. Reading: anything that is not ``yes`` is false, unless an
    unknown letter is defined, in which case anything that is neither is ``None``."""

    width = 1

    def __init__(self, yes: str = "Y", no: str = "N", unknown: str | None = None) -> None:
        self.yes, self.no, self.unknown = yes, no, unknown

    def write(self, value: bool | None, name: str) -> str:
        if value is None and self.unknown is not None:
            return self.unknown
        if not isinstance(value, bool):
            raise BadField(f"{name}: expected True or False, got {value!r}")
        return self.yes if value else self.no

    def read(self, text: str, name: str) -> bool | None:
        letter = text.upper()
        if letter == self.yes:
            return True
        if self.unknown is None or letter == self.no:
            return False
        return None


class Date(Kind):
    width = DATE_WIDTH

    def write(self, value: datetime | None, name: str) -> str:
        return write_date(value, name)

    def read(self, text: str, name: str) -> datetime | None:
        return read_date(text, name)


class Number(Kind):
    """A non-negative integer; fixed fields are zero-padded to their width and blank when
    ``None``. Reading blank gives ``None``."""

    def __init__(self, width: int | None = None) -> None:
        self.width = width

    def write(self, value: int | None, name: str) -> str:
        if value is None:
            return " " * (self.width or 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadField(f"{name}: expected a non-negative integer, got {value!r}")
        text = str(value) if self.width is None else f"{value:0{self.width}d}"
        if self.width is not None and len(text) > self.width:
            raise BadField(f"{name}: {value} does not fit in {self.width} digits")
        return text

    def read(self, text: str, name: str) -> int | None:
        stripped = text.strip()
        if not stripped:
            return None
        if not (stripped.isascii() and stripped.isdigit()):
            raise BadField(f"{name}: {text!r} is not a number")
        return int(stripped)


class FlagSet(Kind):
    """A fixed row of positions, each ``on`` or not, read as the frozenset of the names of
    the positions that are on. ``names`` may be shorter than the width (reserved
    positions); an "on" in a reserved position is read as ``"position N"`` so nothing a
    server sends is lost."""

    def __init__(self, names: tuple[str, ...], width: int, on: str = "Y", off: str = " ",
                 variable: bool = False) -> None:
        self.names, self.on, self.off = names, on, off
        self.size = width
        self.width = None if variable else width

    def write(self, value: frozenset[str], name: str) -> str:
        unknown = set(value) - set(self.names)
        if unknown:
            raise BadField(f"{name}: unknown flags {sorted(unknown)}; known: {self.names}")
        return "".join(self.on if n in value else self.off for n in self.names) \
            + self.off * (self.size - len(self.names))

    def read(self, text: str, name: str) -> frozenset[str]:
        found = set()
        for index, letter in enumerate(text):
            if letter.upper() == "Y" or (self.on != "Y" and letter == self.on):
                found.add(self.names[index] if index < len(self.names)
                          else f"position {index + 1}")
        return frozenset(found)


class Summary(Kind):
    """Patron information's summary: ten positions, at most one 'Y', read as the name of the
    list asked for (``None`` when none is)."""

    width = 10

    def write(self, value: str | None, name: str) -> str:
        if value is None:
            return " " * self.width
        if value not in SUMMARY_ITEMS:
            raise BadField(f"{name}: {value!r} is not one of {SUMMARY_ITEMS}")
        index = SUMMARY_ITEMS.index(value)
        return " " * index + "Y" + " " * (self.width - index - 1)

    def read(self, text: str, name: str) -> str | None:
        for index, letter in enumerate(text):
            if letter.upper() == "Y":
                return SUMMARY_ITEMS[index] if index < len(SUMMARY_ITEMS) else None
        return None


TEXT = Text()
YN = Flag()
YNU = Flag(unknown="U")
OK01 = Flag("1", "0")
DATE = Date()
NUMBER = Number()


@dataclasses.dataclass(frozen=True)
class Fixed:
    kind: Kind


@dataclasses.dataclass(frozen=True)
class Var:
    ident: str
    kind: Kind
    required: bool = False
    repeat: bool = False


def fixed(kind: Kind, default: Any = None) -> Any:
    """Declare a fixed-length field (position follows declaration order)."""
    return dataclasses.field(default=default, metadata={"sip": Fixed(kind)})


def var(ident: str, kind: Kind = TEXT, *, required: bool = False, repeat: bool = False,
        default: Any = None) -> Any:
    """Declare a variable field. Required fields default to ``""`` (or are always written);
    optional ones default to ``None`` (not written); repeatable ones are lists."""
    spec = Var(ident, kind, required, repeat)
    if repeat:
        return dataclasses.field(default_factory=list, metadata={"sip": spec})
    if required and default is None and kind is TEXT:
        default = ""
    return dataclasses.field(default=default, metadata={"sip": spec})
