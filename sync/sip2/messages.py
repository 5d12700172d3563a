"""Every SIP2 2.00 message the kiosk sends or reads, as a dataclass.

Declaration order is wire order: fixed fields first (positional, exact widths), then the
variable fields in the order the standard lists them. Field names follow the standard's
field names. Each class has ``code`` (the two-character command identifier) and ``extra``:
variable fields that the class does not know, or repeats of a field it holds only once,
kept in the order received (and written back after the known fields).

Values: dates are ``datetime`` (naive = local time, aware = UTC), counts and limits ``int``
(``None`` when blank), Y/N fields ``bool``, Y/N/U fields ``bool | None``. Variable-field
dates (AH due date, CJ, CM) stay text: library systems put many formats there.
"""

# fixed() and var() return dataclasses.field(...) declarations, which RUF009 cannot see.
# ruff: noqa: RUF009
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from sync.sip2.fields import (
    DATE,
    NUMBER,
    OK01,
    PATRON_STATUS_FLAGS,
    SUPPORTED_MESSAGES,
    YN,
    YNU,
    FlagSet,
    Number,
    Summary,
    Text,
    fixed,
    var,
)

PATRON_STATUS = FlagSet(PATRON_STATUS_FLAGS, 14)
SUPPORTED = FlagSet(SUPPORTED_MESSAGES, 16, off="N", variable=True)
LANGUAGE = Text(3)  # "000" unknown, "001" English, ... (three digits, kept as text)
REGISTRY: dict[str, type[Message]] = {}


@dataclass
class Message:
    """Base of every message class."""

    code: ClassVar[str] = ""
    name: ClassVar[str] = ""


def register(cls: type[Message]) -> type[Message]:
    REGISTRY[cls.code] = cls
    return cls


@register
@dataclass
class Login(Message):
    code: ClassVar[str] = "93"
    name: ClassVar[str] = "login"
    uid_algorithm: str = fixed(Text(1), "0")
    pwd_algorithm: str = fixed(Text(1), "0")
    login_user_id: str = var("CN", required=True)
    login_password: str = var("CO", required=True)
    location_code: str | None = var("CP")
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class LoginResponse(Message):
    code: ClassVar[str] = "94"
    name: ClassVar[str] = "login response"
    ok: bool = fixed(OK01, False)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class ScStatus(Message):
    code: ClassVar[str] = "99"
    name: ClassVar[str] = "SC status"
    status_code: str = fixed(Text(1), "0")  # 0 ok, 1 printer out of paper, 2 shutting down
    max_print_width: int | None = fixed(Number(3), 0)
    protocol_version: str = fixed(Text(4), "2.00")
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class AcsStatus(Message):
    code: ClassVar[str] = "98"
    name: ClassVar[str] = "ACS status"
    online_status: bool = fixed(YN, False)
    checkin_ok: bool = fixed(YN, False)
    checkout_ok: bool = fixed(YN, False)
    acs_renewal_policy: bool = fixed(YN, False)
    status_update_ok: bool = fixed(YN, False)
    offline_ok: bool = fixed(YN, False)
    timeout_period: int | None = fixed(Number(3), 0)  # tenths of a second; 999 = unknown
    retries_allowed: int | None = fixed(Number(3), 0)  # 999 = unknown
    date_time_sync: datetime | None = fixed(DATE)
    protocol_version: str = fixed(Text(4), "2.00")
    institution_id: str = var("AO", required=True)
    library_name: str | None = var("AM")
    supported_messages: frozenset[str] = var("BX", SUPPORTED, required=True,
                                             default=frozenset())
    terminal_location: str | None = var("AN")
    screen_message: list[str] = var("AF", repeat=True)
    print_line: list[str] = var("AG", repeat=True)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class PatronStatusRequest(Message):
    code: ClassVar[str] = "23"
    name: ClassVar[str] = "patron status request"
    language: str = fixed(LANGUAGE, "000")
    transaction_date: datetime | None = fixed(DATE)
    institution_id: str = var("AO", required=True)
    patron_identifier: str = var("AA", required=True)
    terminal_password: str = var("AC", required=True)
    patron_password: str = var("AD", required=True)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class PatronStatusResponse(Message):
    code: ClassVar[str] = "24"
    name: ClassVar[str] = "patron status response"
    patron_status: frozenset[str] = fixed(PATRON_STATUS, frozenset())
    language: str = fixed(LANGUAGE, "000")
    transaction_date: datetime | None = fixed(DATE)
    institution_id: str = var("AO", required=True)
    patron_identifier: str = var("AA", required=True)
    personal_name: str = var("AE", required=True)
    valid_patron: bool | None = var("BL", YN)
    valid_patron_password: bool | None = var("CQ", YN)
    currency_type: str | None = var("BH")
    fee_amount: str | None = var("BV")
    screen_message: list[str] = var("AF", repeat=True)
    print_line: list[str] = var("AG", repeat=True)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class PatronInformationRequest(Message):
    code: ClassVar[str] = "63"
    name: ClassVar[str] = "patron information"
    language: str = fixed(LANGUAGE, "000")
    transaction_date: datetime | None = fixed(DATE)
    summary: str | None = fixed(Summary())
    institution_id: str = var("AO", required=True)
    patron_identifier: str = var("AA", required=True)
    terminal_password: str | None = var("AC")
    patron_password: str | None = var("AD")
    start_item: int | None = var("BP", NUMBER)
    end_item: int | None = var("BQ", NUMBER)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class PatronInformationResponse(Message):
    code: ClassVar[str] = "64"
    name: ClassVar[str] = "patron information response"
    patron_status: frozenset[str] = fixed(PATRON_STATUS, frozenset())
    language: str = fixed(LANGUAGE, "000")
    transaction_date: datetime | None = fixed(DATE)
    hold_items_count: int | None = fixed(Number(4))
    overdue_items_count: int | None = fixed(Number(4))
    charged_items_count: int | None = fixed(Number(4))
    fine_items_count: int | None = fixed(Number(4))
    recall_items_count: int | None = fixed(Number(4))
    unavailable_holds_count: int | None = fixed(Number(4))
    institution_id: str = var("AO", required=True)
    patron_identifier: str = var("AA", required=True)
    personal_name: str = var("AE", required=True)
    hold_items_limit: int | None = var("BZ", Number(4))
    overdue_items_limit: int | None = var("CA", Number(4))
    charged_items_limit: int | None = var("CB", Number(4))
    valid_patron: bool | None = var("BL", YN)
    valid_patron_password: bool | None = var("CQ", YN)
    currency_type: str | None = var("BH")
    fee_amount: str | None = var("BV")
    fee_limit: str | None = var("CC")
    hold_items: list[str] = var("AS", repeat=True)
    overdue_items: list[str] = var("AT", repeat=True)
    charged_items: list[str] = var("AU", repeat=True)
    fine_items: list[str] = var("AV", repeat=True)
    recall_items: list[str] = var("BU", repeat=True)
    unavailable_hold_items: list[str] = var("CD", repeat=True)
    home_address: str | None = var("BD")
    email_address: str | None = var("BE")
    home_phone_number: str | None = var("BF")
    screen_message: list[str] = var("AF", repeat=True)
    print_line: list[str] = var("AG", repeat=True)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class ItemInformationRequest(Message):
    code: ClassVar[str] = "17"
    name: ClassVar[str] = "item information"
    transaction_date: datetime | None = fixed(DATE)
    institution_id: str = var("AO", required=True)
    item_identifier: str = var("AB", required=True)
    terminal_password: str | None = var("AC")
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class ItemInformationResponse(Message):
    code: ClassVar[str] = "18"
    name: ClassVar[str] = "item information response"
    circulation_status: str = fixed(Text(2), "01")  # 01 other ... 03 available, 04 charged
    security_marker: str = fixed(Text(2), "00")
    fee_type: str = fixed(Text(2), "01")
    transaction_date: datetime | None = fixed(DATE)
    hold_queue_length: int | None = var("CF", NUMBER)
    due_date: str | None = var("AH")
    recall_date: str | None = var("CJ")
    hold_pickup_date: str | None = var("CM")
    item_identifier: str = var("AB", required=True)
    title_identifier: str = var("AJ", required=True)
    owner: str | None = var("BG")
    currency_type: str | None = var("BH")
    fee_amount: str | None = var("BV")
    media_type: str | None = var("CK")
    permanent_location: str | None = var("AQ")
    current_location: str | None = var("AP")
    item_properties: str | None = var("CH")
    screen_message: list[str] = var("AF", repeat=True)
    print_line: list[str] = var("AG", repeat=True)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class Checkout(Message):
    code: ClassVar[str] = "11"
    name: ClassVar[str] = "checkout"
    sc_renewal_policy: bool = fixed(YN, False)
    no_block: bool = fixed(YN, False)
    transaction_date: datetime | None = fixed(DATE)
    nb_due_date: datetime | None = fixed(DATE)
    institution_id: str = var("AO", required=True)
    patron_identifier: str = var("AA", required=True)
    item_identifier: str = var("AB", required=True)
    terminal_password: str = var("AC", required=True)
    item_properties: str | None = var("CH")
    patron_password: str | None = var("AD")
    fee_acknowledged: bool | None = var("BO", YN)
    cancel: bool | None = var("BI", YN)
    extra: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _CirculationResponse(Message):
    """Checkout response (12) and renew response (30) share one layout."""

    ok: bool = fixed(OK01, False)
    renewal_ok: bool = fixed(YN, False)
    magnetic_media: bool | None = fixed(YNU)
    desensitize: bool | None = fixed(YNU)
    transaction_date: datetime | None = fixed(DATE)
    institution_id: str = var("AO", required=True)
    patron_identifier: str = var("AA", required=True)
    item_identifier: str = var("AB", required=True)
    title_identifier: str = var("AJ", required=True)
    due_date: str = var("AH", required=True)
    fee_type: str | None = var("BT")
    security_inhibit: bool | None = var("CI", YN)
    currency_type: str | None = var("BH")
    fee_amount: str | None = var("BV")
    media_type: str | None = var("CK")
    item_properties: str | None = var("CH")
    transaction_id: str | None = var("BK")
    screen_message: list[str] = var("AF", repeat=True)
    print_line: list[str] = var("AG", repeat=True)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class CheckoutResponse(_CirculationResponse):
    code: ClassVar[str] = "12"
    name: ClassVar[str] = "checkout response"


@register
@dataclass
class Checkin(Message):
    code: ClassVar[str] = "09"
    name: ClassVar[str] = "checkin"
    no_block: bool = fixed(YN, False)
    transaction_date: datetime | None = fixed(DATE)
    return_date: datetime | None = fixed(DATE)
    current_location: str = var("AP", required=True)
    institution_id: str = var("AO", required=True)
    item_identifier: str = var("AB", required=True)
    terminal_password: str = var("AC", required=True)
    item_properties: str | None = var("CH")
    cancel: bool | None = var("BI", YN)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class CheckinResponse(Message):
    code: ClassVar[str] = "10"
    name: ClassVar[str] = "checkin response"
    ok: bool = fixed(OK01, False)
    resensitize: bool = fixed(YN, False)
    magnetic_media: bool | None = fixed(YNU)
    alert: bool = fixed(YN, False)
    transaction_date: datetime | None = fixed(DATE)
    institution_id: str = var("AO", required=True)
    item_identifier: str = var("AB", required=True)
    permanent_location: str = var("AQ", required=True)
    title_identifier: str | None = var("AJ")
    sort_bin: str | None = var("CL")
    patron_identifier: str | None = var("AA")
    media_type: str | None = var("CK")
    item_properties: str | None = var("CH")
    screen_message: list[str] = var("AF", repeat=True)
    print_line: list[str] = var("AG", repeat=True)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class Renew(Message):
    code: ClassVar[str] = "29"
    name: ClassVar[str] = "renew"
    third_party_allowed: bool = fixed(YN, False)
    no_block: bool = fixed(YN, False)
    transaction_date: datetime | None = fixed(DATE)
    nb_due_date: datetime | None = fixed(DATE)
    institution_id: str = var("AO", required=True)
    patron_identifier: str = var("AA", required=True)
    patron_password: str | None = var("AD")
    item_identifier: str | None = var("AB")
    title_identifier: str | None = var("AJ")
    terminal_password: str | None = var("AC")
    item_properties: str | None = var("CH")
    fee_acknowledged: bool | None = var("BO", YN)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class RenewResponse(_CirculationResponse):
    code: ClassVar[str] = "30"
    name: ClassVar[str] = "renew response"


@register
@dataclass
class EndPatronSession(Message):
    code: ClassVar[str] = "35"
    name: ClassVar[str] = "end patron session"
    transaction_date: datetime | None = fixed(DATE)
    institution_id: str = var("AO", required=True)
    patron_identifier: str = var("AA", required=True)
    terminal_password: str | None = var("AC")
    patron_password: str | None = var("AD")
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class EndSessionResponse(Message):
    code: ClassVar[str] = "36"
    name: ClassVar[str] = "end session response"
    end_session: bool = fixed(YN, False)
    transaction_date: datetime | None = fixed(DATE)
    institution_id: str = var("AO", required=True)
    patron_identifier: str = var("AA", required=True)
    screen_message: list[str] = var("AF", repeat=True)
    print_line: list[str] = var("AG", repeat=True)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class BlockPatron(Message):
    """Answered by a patron status response (24)."""

    code: ClassVar[str] = "01"
    name: ClassVar[str] = "block patron"
    card_retained: bool = fixed(YN, False)
    transaction_date: datetime | None = fixed(DATE)
    institution_id: str = var("AO", required=True)
    blocked_card_msg: str = var("AL", required=True)
    patron_identifier: str = var("AA", required=True)
    terminal_password: str = var("AC", required=True)
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class RequestAcsResend(Message):
    """SC -> ACS: "your last message arrived corrupted, send it again". No sequence number."""

    code: ClassVar[str] = "97"
    name: ClassVar[str] = "request ACS resend"
    extra: list[tuple[str, str]] = field(default_factory=list)


@register
@dataclass
class RequestScResend(Message):
    """ACS -> SC: "your last message arrived corrupted, send it again". No sequence number."""

    code: ClassVar[str] = "96"
    name: ClassVar[str] = "request SC resend"
    extra: list[tuple[str, str]] = field(default_factory=list)


RESEND_CODES = frozenset({RequestAcsResend.code, RequestScResend.code})
