"""Receipts: what a patron takes home after a loan, a return, or getting a new card.

Receipt texts come from the message catalogue (zh-CN or English, by the session's
language); the layout is a document of ESC/POS items that the printer driver encodes, so the
same receipt prints on a 58 mm or an 80 mm printer. A receipt left at the kiosk must not
tell a stranger who borrowed what: the patron's name and card number are masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from drivers.escpos_codec import Cut, Feed, QRCode, Rule, Text
from kiosk.messages import Catalogue


@dataclass(frozen=True)
class ReceiptHeader:
    library: str
    branch: str
    device_id: str
    when: datetime
    patron_name: str | None = None
    card_number: str | None = None
    offline: bool = False


@dataclass(frozen=True)
class LentItem:
    title: str
    barcode: str
    due_date: str


@dataclass(frozen=True)
class ReturnedItem:
    title: str
    barcode: str
    goes_to: str | None = None  # a branch name when the book travels home


@dataclass(frozen=True)
class NotDone:
    title: str
    reason: str  # already rendered from the catalogue


def mask_name(name: str) -> str:
    """王芳 -> 王*, 欧阳𡒄 -> 欧**, Emily Wang -> E**** W***: enough for the patron to
    recognise their slip, not enough for a stranger."""
    words = name.split()
    if len(words) > 1:
        return " ".join(w[0] + "*" * (len(w) - 1) for w in words)
    return name[:1] + "*" * (len(name) - 1)


def mask_card(card: str) -> str:
    return "*" * max(0, len(card) - 4) + card[-4:]


def _head(t: Catalogue, kind: str, h: ReceiptHeader) -> list[object]:
    items: list[object] = [
        Text(h.library, align="center", bold=True, height=2),
        Text(h.branch, align="center"),
        Rule(),
        Text(t.text(f"receipt.{kind}.title"), align="center", bold=True),
    ]
    if h.patron_name is not None and h.card_number is not None:
        items.append(Text(t.text("receipt.patron", name=mask_name(h.patron_name),
                                 card=mask_card(h.card_number))))
    items += [Text(t.text("receipt.time", time=h.when.strftime("%Y-%m-%d %H:%M"))), Rule()]
    return items


def _foot(t: Catalogue, kind: str, h: ReceiptHeader, qr: str | None) -> list[object]:
    items: list[object] = [Rule(), Text(t.text(f"receipt.{kind}.footer"))]
    if qr:
        items.append(QRCode(qr))
    if h.offline:
        items.append(Text(t.text("receipt.offline")))
    items += [Text(t.text("receipt.device", device=h.device_id), align="center"),
              Feed(2), Cut()]
    return items


def _not_done(t: Catalogue, not_done: Sequence[NotDone]) -> list[object]:
    if not not_done:
        return []
    items: list[object] = [Rule(), Text(t.text("receipt.not_done"), bold=True)]
    items += [Text(f"× {n.title}\n  {n.reason}") for n in not_done]
    return items


def loan_receipt(t: Catalogue, header: ReceiptHeader, lent: Sequence[LentItem],
                 not_done: Sequence[NotDone] = (), qr: str | None = None) -> list[object]:
    items = _head(t, "loan", header)
    for n, item in enumerate(lent, start=1):
        items.append(Text(f"{n}. {item.title}"))
        items.append(Text(t.text("receipt.loan.line", barcode=item.barcode,
                                 due_date=item.due_date)))
    items.append(Text(t.text("receipt.loan.count", count=len(lent)), bold=True))
    return items + _not_done(t, not_done) + _foot(t, "loan", header, qr)


def return_receipt(t: Catalogue, header: ReceiptHeader, returned: Sequence[ReturnedItem],
                   not_done: Sequence[NotDone] = ()) -> list[object]:
    items = _head(t, "return", header)
    for n, item in enumerate(returned, start=1):
        items.append(Text(f"{n}. {item.title}"))
        line = t.text("receipt.return.line", barcode=item.barcode)
        if item.goes_to:
            line += "\n" + t.text("receipt.return.goes_to", branch=item.goes_to)
        items.append(Text(line))
    items.append(Text(t.text("receipt.return.count", count=len(returned)), bold=True))
    return items + _not_done(t, not_done) + _foot(t, "return", header, None)


def new_card_receipt(t: Catalogue, header: ReceiptHeader, *, name: str, card_number: str,
                     patron_type: str, expires_on: str, max_loans: int,
                     loan_days: int) -> list[object]:
    """The card slip of a new reader: the full number (it is theirs, handed to them) as text
    and as a QR code, and the rules in short."""
    items = _head(t, "new_card", header)
    items += [
        Text(t.text("receipt.new_card.welcome", name=name), bold=True),
        Text(card_number, align="center", bold=True, width=2, height=2),
        QRCode(card_number),
        Text(t.text("receipt.new_card.details", patron_type=patron_type, expires_on=expires_on,
                    max_loans=max_loans, loan_days=loan_days)),
    ]
    return items + _foot(t, "new_card", header, None)
