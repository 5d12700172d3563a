"""Circulation decided by the library system (online, over SIP2) instead of by the cache.

While the SIP2 link is up the kiosk asks the library system first (checkout 11 or checkin
09 with ``no block = N``). When it says yes, the library system is the authority: the
cache records the loan or return as it was decided there, even when the cache's own rules
(:mod:`sync.rules`) would have refused it (a stale block, a loan limit, a book the cache
thinks is on loan to someone else). :class:`IlsDecision` carries what the library system
said into :meth:`sync.circulation.Circulation.checkout` and ``checkin``;
:func:`checkout_decision` turns it into the :class:`~sync.rules.Decision` the cache
applies. Nothing here reads a database or a clock.

The event of such a change carries the flag ``ils_decided`` (and, when the cache would
have refused, ``local_reason``); its row in ``sip2_outcomes`` is written ``ok`` (code
``online``) in the same transaction, so the replayer never sends it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sync.policy import Policy
from sync.rules import (
    ACTIVE_HOLD,
    Action,
    Calendar,
    Context,
    Decision,
    Flag,
    HoldView,
    ItemView,
    LoanView,
    PatronView,
    Reason,
    due_date,
)

# The patron type of a reader the cache learned of only from the library system (a card
# it lent to that the cache did not know). Offline the cache lends to such a reader only
# under the county's catch-all loan rules (patron type ``*``), if it has them, until a hub
# or a rebuild fills the reader in; their loans and returns are recorded either way.
LEARNED_PATRON_TYPE = "sip2"


@dataclass(frozen=True)
class IlsDecision:
    """The library system said yes. ``due_date``: its due date (None: it sent none the
    kiosk can read; the local rule's is used, else ``unknown_item_loan_days``). ``title``:
    its title of the item, kept when the cache has none. ``acknowledge``: SIP2 is the
    kiosk's only sync, so the event is acknowledged in the outbox at once."""

    due_date: date | None = None
    title: str | None = None
    acknowledge: bool = False


def checkout_decision(patron: PatronView, item: ItemView | None, loan: LoanView | None,
                      holds: Sequence[HoldView], local: Decision, ils: IlsDecision,
                      calendar: Calendar, policy: Policy, ctx: Context) -> Decision:
    """The allowed checkout the cache records for a loan the library system made.
    ``local`` is what the cache's rules said (for the due date when the library system
    sent none). An open loan of the book ends first (``return_then_lend``): the library
    system lent it, so whatever loan the cache still had is over there."""
    flags = {Flag.ILS_DECIDED}
    if not ctx.clock_trusted:
        flags.add(Flag.CLOCK_UNTRUSTED)
    if item is None:
        flags.add(Flag.UNKNOWN_ITEM)
    elif item.status in ("lost", "missing"):
        flags.add(Flag.FOUND_ITEM)
    if loan is not None:
        flags.add(Flag.RETURN_THEN_LEND)
        if loan.patron_id != patron.id:
            flags.add(Flag.ON_LOAN_TO_OTHER)
    own = next((h for h in holds if h.status in ACTIVE_HOLD and h.patron_id == patron.id),
               None)
    if own is not None:
        flags.add(Flag.FULFILS_HOLD)
    due = ils.due_date or local.due_date or due_date(
        ctx.today, policy.unknown_item_loan_days, calendar)
    return Decision(Action.CHECKOUT, True, Reason.OK, due_date=due, flags=frozenset(flags),
                    hold_id=own.id if own is not None else None)


def checkin_decision(local: Decision) -> Decision:
    """The cache's own return decision (a return is always taken), marked as made with
    the library system: ``offline`` does not apply."""
    if not local.changes_state:
        return local
    flags = (local.flags - {Flag.OFFLINE}) | {Flag.ILS_DECIDED}
    return Decision(local.action, local.allowed, local.reason, local.due_date,
                    frozenset(flags), local.route, local.offer, local.hold_id,
                    local.locker_slot, local.changes_state, dict(local.params), local.waived)


def renew_decision(local: Decision, ils: IlsDecision) -> Decision:
    """The allowed renewal the cache records for one the library system made: its due
    date (the local rule's when it sent none), whatever the local rules said."""
    due = ils.due_date or local.due_date
    if due is None:
        return local  # nothing the cache could record: its own answer stands
    flags = (local.flags - {Flag.OFFLINE}) | {Flag.ILS_DECIDED}
    return Decision(Action.RENEW, True, Reason.OK, due_date=due, flags=frozenset(flags))


__all__ = ["LEARNED_PATRON_TYPE", "IlsDecision", "checkin_decision", "checkout_decision",
           "renew_decision"]
