"""What the client returns: the answers to the kiosk's questions, typed.

Every result keeps the message it was made from as ``reply`` (nothing the library system
said is lost). ``screen_message`` is the AF fields joined by newlines, meant for the patron;
``print_lines`` are the AG fields, meant for the receipt. ``retried`` says the request was
sent a second time after a dropped connection (see :class:`sync.sip2.client.Sip2Client`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sync.sip2.errors import BadField
from sync.sip2.fields import read_date
from sync.sip2.messages import (
    CheckinResponse,
    CheckoutResponse,
    EndSessionResponse,
    ItemInformationResponse,
    PatronInformationResponse,
    PatronStatusResponse,
    RenewResponse,
)

CIRCULATION_STATUS = {
    "01": "other", "02": "on order", "03": "available", "04": "charged",
    "05": "charged; not to be recalled until earliest recall date", "06": "in process",
    "07": "recalled", "08": "waiting on hold shelf", "09": "waiting to be re-shelved",
    "10": "in transit between library locations", "11": "claimed returned", "12": "lost",
    "13": "missing",
}
# Due dates (AH) are free text in SIP2; these are the forms library systems are known to
# send besides the standard's own 18-character date.
_DUE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d",
                "%Y%m%d", "%m/%d/%Y")


def parse_due_date(text: str | None) -> datetime | None:
    """The due date in ``text`` if it is in a known form, else ``None`` (the caller still
    has the text)."""
    if not text or not text.strip():
        return None
    try:
        return read_date(text, "due date")
    except BadField:
        pass
    for form in _DUE_FORMATS:
        try:
            return datetime.strptime(text.strip(), form)
        except ValueError:
            continue
    return None


def _screen(reply) -> str:
    return "\n".join(reply.screen_message)


@dataclass(frozen=True)
class PatronStatus:
    """Answer to patron status (23) and block patron (01)."""

    patron_id: str
    name: str
    valid: bool | None
    pin_ok: bool | None
    blocks: frozenset[str]
    fee_amount: str | None
    currency: str | None
    screen_message: str
    print_lines: tuple[str, ...]
    reply: PatronStatusResponse | PatronInformationResponse

    @property
    def may_borrow(self) -> bool:
        """Known, PIN not refused, and charge privileges not denied."""
        return self.valid is not False and self.pin_ok is not False \
            and "charge_privileges_denied" not in self.blocks

    @classmethod
    def of(cls, reply: PatronStatusResponse | PatronInformationResponse) -> PatronStatus:
        return cls(reply.patron_identifier, reply.personal_name, reply.valid_patron,
                   reply.valid_patron_password, reply.patron_status, reply.fee_amount,
                   reply.currency_type, _screen(reply), tuple(reply.print_line), reply)


@dataclass(frozen=True)
class PatronInformation:
    """Answer to patron information (63): status plus counts and the item list asked for."""

    status: PatronStatus
    counts: dict[str, int | None]
    holds: tuple[str, ...]
    overdue: tuple[str, ...]
    charged: tuple[str, ...]
    fines: tuple[str, ...]
    recalls: tuple[str, ...]
    unavailable_holds: tuple[str, ...]
    email: str | None
    phone: str | None
    reply: PatronInformationResponse

    @classmethod
    def of(cls, reply: PatronInformationResponse) -> PatronInformation:
        counts = {"hold": reply.hold_items_count, "overdue": reply.overdue_items_count,
                  "charged": reply.charged_items_count, "fine": reply.fine_items_count,
                  "recall": reply.recall_items_count,
                  "unavailable_hold": reply.unavailable_holds_count}
        return cls(PatronStatus.of(reply), counts, tuple(reply.hold_items),
                   tuple(reply.overdue_items), tuple(reply.charged_items),
                   tuple(reply.fine_items), tuple(reply.recall_items),
                   tuple(reply.unavailable_hold_items), reply.email_address,
                   reply.home_phone_number, reply)


@dataclass(frozen=True)
class ItemInformation:
    """Answer to item information (17)."""

    item_id: str
    title: str
    circulation_status: str
    due_date: datetime | None
    due_date_text: str | None
    hold_queue_length: int | None
    permanent_location: str | None
    current_location: str | None
    media_type: str | None
    screen_message: str
    print_lines: tuple[str, ...]
    reply: ItemInformationResponse

    @property
    def status_name(self) -> str:
        return CIRCULATION_STATUS.get(self.circulation_status, "unknown")

    @property
    def available(self) -> bool:
        return self.circulation_status == "03"

    @classmethod
    def of(cls, reply: ItemInformationResponse) -> ItemInformation:
        return cls(reply.item_identifier, reply.title_identifier, reply.circulation_status,
                   parse_due_date(reply.due_date), reply.due_date, reply.hold_queue_length,
                   reply.permanent_location, reply.current_location, reply.media_type,
                   _screen(reply), tuple(reply.print_line), reply)


@dataclass(frozen=True)
class Loan:
    """Answer to checkout (11) or renew (29). ``ok`` is the library system's verdict; when
    it is false, ``screen_message`` usually says why."""

    ok: bool
    renewal: bool
    patron_id: str
    item_id: str
    title: str
    due_date: datetime | None
    due_date_text: str
    desensitize: bool | None
    fee_amount: str | None
    screen_message: str
    print_lines: tuple[str, ...]
    retried: bool
    reply: CheckoutResponse | RenewResponse

    @classmethod
    def of(cls, reply: CheckoutResponse | RenewResponse, retried: bool = False) -> Loan:
        return cls(reply.ok, reply.renewal_ok, reply.patron_identifier, reply.item_identifier,
                   reply.title_identifier, parse_due_date(reply.due_date), reply.due_date,
                   reply.desensitize, reply.fee_amount, _screen(reply),
                   tuple(reply.print_line), retried, reply)


@dataclass(frozen=True)
class Return:
    """Answer to checkin (09)."""

    ok: bool
    item_id: str
    title: str | None
    permanent_location: str
    sort_bin: str | None
    alert: bool
    resensitize: bool
    patron_id: str | None
    screen_message: str
    print_lines: tuple[str, ...]
    retried: bool
    reply: CheckinResponse

    @classmethod
    def of(cls, reply: CheckinResponse, retried: bool = False) -> Return:
        return cls(reply.ok, reply.item_identifier, reply.title_identifier,
                   reply.permanent_location, reply.sort_bin, reply.alert, reply.resensitize,
                   reply.patron_identifier, _screen(reply), tuple(reply.print_line), retried,
                   reply)


@dataclass(frozen=True)
class SessionEnd:
    """Answer to end patron session (35)."""

    ended: bool
    patron_id: str
    screen_message: str
    print_lines: tuple[str, ...]
    reply: EndSessionResponse

    @classmethod
    def of(cls, reply: EndSessionResponse) -> SessionEnd:
        return cls(reply.end_session, reply.patron_identifier, _screen(reply),
                   tuple(reply.print_line), reply)
