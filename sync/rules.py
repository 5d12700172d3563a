"""Circulation rules: pure functions from what the cache knows to a decision.

Nothing here reads a database or a clock. The kiosk calls these with rows from its cache
and the moment it was asked; the reference hub calls them again with its own rows when the
event arrives, and compares. A decision always says why (``reason``), with a message key
for the screen; what it changes is applied by :mod:`sync.circulation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

from sync.policy import OnLoanToOther, Policy, Station, UnknownItem


class Action(StrEnum):
    CHECKOUT = "checkout"
    CHECKIN = "checkin"
    RENEW = "renew"
    PICKUP = "pickup"


class Reason(StrEnum):
    OK = "ok"
    PATRON_UNKNOWN = "patron_unknown"
    CARD_REPORTED_LOST = "card_reported_lost"
    PATRON_EXPIRED = "patron_expired"
    PATRON_BLOCKED = "patron_blocked"
    TOO_MANY_LOANS = "too_many_loans"
    FINES_OVER_LIMIT = "fines_over_limit"
    ITEM_UNKNOWN = "item_unknown"
    ITEM_NOT_FOR_LOAN = "item_not_for_loan"
    ITEM_ON_HOLD_FOR_OTHER = "item_on_hold_for_other"
    ALREADY_ON_LOAN_TO_PATRON = "already_on_loan_to_patron"
    ON_LOAN_TO_OTHER = "on_loan_to_other"
    ALREADY_RETURNED = "already_returned"
    NOT_ON_LOAN_TO_PATRON = "not_on_loan_to_patron"
    RENEWAL_LIMIT = "renewal_limit"
    NO_HOLD_READY = "no_hold_ready"
    HOLD_FOR_OTHER = "hold_for_other"
    HOLD_EXPIRED = "hold_expired"
    HOLD_AT_OTHER_BRANCH = "hold_at_other_branch"


class Flag(StrEnum):
    """Facts about an allowed decision that staff or the hub must see later."""

    OFFLINE = "offline"
    CLOCK_UNTRUSTED = "clock_untrusted"
    UNKNOWN_ITEM = "unknown_item"
    ON_LOAN_TO_OTHER = "on_loan_to_other"
    RETURN_THEN_LEND = "return_then_lend"
    FOUND_ITEM = "found_item"
    NO_LOCAL_LOAN = "no_local_loan"
    OVERDUE = "overdue"
    FULFILS_HOLD = "fulfils_hold"
    ILS_DECIDED = "ils_decided"  # the library system decided it online (sync.online)


class RouteKind(StrEnum):
    SHELF = "shelf"
    TRANSIT = "transit"
    HOLD_HERE = "hold_here"
    HOLD_TRANSIT = "hold_transit"
    SET_ASIDE = "set_aside"


@dataclass(frozen=True)
class Route:
    """Where a returned book goes next; ``to_branch`` is an ISIL for the transit kinds."""

    kind: RouteKind
    to_branch: str | None = None


ACTIVE_HOLD = frozenset({"waiting", "in_transit", "ready"})


@dataclass(frozen=True)
class PatronView:
    id: int
    card_number: str
    patron_type: str
    status: str = "active"
    expires_on: date | None = None
    blocks: tuple[str, ...] = ()
    fines_owed_cents: int = 0
    loan_count: int = 0


@dataclass(frozen=True)
class ItemView:
    id: int
    barcode: str
    loan_type: str = "normal"
    status: str = "available"
    owning_branch: str | None = None
    current_branch: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class LoanView:
    id: int
    patron_id: int
    item_id: int
    due_date: date
    renewals: int = 0


@dataclass(frozen=True)
class HoldView:
    id: int
    patron_id: int
    item_id: int
    pickup_branch: str
    status: str = "waiting"
    locker_slot: str | None = None
    pickup_expires_on: date | None = None


@dataclass(frozen=True)
class LoanRule:
    loan_days: int
    max_renewals: int
    max_loans: int


@dataclass(frozen=True)
class Calendar:
    """Days a branch is closed: ISO weekdays (1 = Monday) and single dates."""

    closed_weekdays: frozenset[int] = frozenset()
    closed_days: frozenset[date] = frozenset()

    def is_open(self, day: date) -> bool:
        return day.isoweekday() not in self.closed_weekdays and day not in self.closed_days

    def next_open(self, day: date) -> date:
        """The first open day on or after ``day``; ``day`` itself if the branch is never open
        within a year (a misconfigured calendar must not make a loan due in 2100)."""
        probe = day
        for _ in range(366):
            if self.is_open(probe):
                return probe
            probe += timedelta(days=1)
        return day


@dataclass(frozen=True)
class Context:
    """Where and when a decision is made."""

    branch: str
    today: date
    station: Station = Station.KIOSK
    online: bool = False
    clock_trusted: bool = True


@dataclass(frozen=True)
class Decision:
    action: Action
    allowed: bool
    reason: Reason
    due_date: date | None = None
    flags: frozenset[Flag] = frozenset()
    route: Route | None = None
    offer: Action | None = None
    hold_id: int | None = None
    locker_slot: str | None = None
    changes_state: bool = True
    params: dict[str, object] = field(default_factory=dict)
    # Refusals a staff override let through (sync.staff): empty for every ordinary decision.
    waived: frozenset[Reason] = frozenset()

    @property
    def message_key(self) -> str:
        if self.allowed and self.reason is Reason.OK:
            return f"circ.{self.action}.ok"
        return f"circ.reason.{self.reason}"


def _refuse(action: Action, reason: Reason, **kw: object) -> Decision:
    return Decision(action, False, reason, changes_state=False, **kw)  # type: ignore[arg-type]


def _context_flags(ctx: Context) -> set[Flag]:
    flags = set()
    if not ctx.online:
        flags.add(Flag.OFFLINE)
    if not ctx.clock_trusted:
        flags.add(Flag.CLOCK_UNTRUSTED)
    return flags


def patron_problem(patron: PatronView | None, policy: Policy, ctx: Context) -> Reason | None:
    """Why this patron may not borrow or renew now, or None."""
    problems = patron_problems(patron, policy, ctx)
    return problems[0] if problems else None


def patron_problems(patron: PatronView | None, policy: Policy, ctx: Context) -> list[Reason]:
    """Every reason this patron may not borrow or renew now, the weightiest first."""
    if patron is None or patron.status == "withdrawn":
        return [Reason.PATRON_UNKNOWN]
    found = []
    if patron.status == "lost_card":
        found.append(Reason.CARD_REPORTED_LOST)
    if patron.expires_on is not None and patron.expires_on < ctx.today:
        found.append(Reason.PATRON_EXPIRED)
    if patron.blocks:
        found.append(Reason.PATRON_BLOCKED)
    if patron.fines_owed_cents > policy.max_fines_cents:
        found.append(Reason.FINES_OVER_LIMIT)
    return found


def loan_limit(rule: LoanRule, policy: Policy, ctx: Context) -> int:
    if ctx.online:
        return rule.max_loans
    return min(rule.max_loans, policy.offline.max_loans_per_patron)


def _held_for_other(holds: Sequence[HoldView], patron_id: int) -> HoldView | None:
    return next((h for h in holds if h.status in ACTIVE_HOLD and h.patron_id != patron_id), None)


def due_date(today: date, loan_days: int, calendar: Calendar) -> date:
    """Due date of a loan made ``today``: closed days push it to the next open day."""
    return calendar.next_open(today + timedelta(days=loan_days))


def checkout(
    patron: PatronView | None,
    item: ItemView | None,
    open_loan: LoanView | None,
    holds: Sequence[HoldView],
    rule: LoanRule | None,
    calendar: Calendar,
    policy: Policy,
    ctx: Context,
    waive: frozenset[Reason] = frozenset(),
) -> Decision:
    """May ``patron`` take ``item`` home now? ``rule`` is the loan rule for the pair.

    ``waive`` names refusals a staff override lets through (:data:`sync.staff.OVERRIDABLE`:
    the caller checks who may waive what); an allowed decision lists in ``waived`` the ones
    it actually let through."""
    act = Action.CHECKOUT
    waived: set[Reason] = set()
    for problem in patron_problems(patron, policy, ctx):
        if problem not in waive:
            return _refuse(act, problem)
        waived.add(problem)
    assert patron is not None
    flags = _context_flags(ctx)
    own: HoldView | None = None
    if item is None:
        if policy.unknown_item(ctx.online) is UnknownItem.REFUSE:
            return _refuse(act, Reason.ITEM_UNKNOWN)
        flags.add(Flag.UNKNOWN_ITEM)
        rule = LoanRule(policy.unknown_item_loan_days, 0, rule.max_loans if rule else 1 << 30)
    else:
        if open_loan is not None:
            if open_loan.patron_id == patron.id:
                return _refuse(act, Reason.ALREADY_ON_LOAN_TO_PATRON, offer=Action.RENEW)
            if policy.on_loan_to_other(ctx.station) is OnLoanToOther.REFUSE:
                return _refuse(act, Reason.ON_LOAN_TO_OTHER, flags=frozenset(
                    {Flag.ON_LOAN_TO_OTHER}))
            flags |= {Flag.ON_LOAN_TO_OTHER, Flag.RETURN_THEN_LEND}
        if item.status == "withdrawn" or rule is None or rule.loan_days == 0:
            return _refuse(act, Reason.ITEM_NOT_FOR_LOAN)
        if item.status in ("lost", "missing"):
            flags.add(Flag.FOUND_ITEM)
        other = _held_for_other(holds, patron.id)
        if other is not None:
            return _refuse(act, Reason.ITEM_ON_HOLD_FOR_OTHER)
        own = next((h for h in holds if h.status in ACTIVE_HOLD), None)
        if own is not None:
            flags.add(Flag.FULFILS_HOLD)
    limit = loan_limit(rule, policy, ctx)
    if patron.loan_count >= limit:
        if Reason.TOO_MANY_LOANS not in waive:
            return _refuse(act, Reason.TOO_MANY_LOANS, params={"limit": limit})
        waived.add(Reason.TOO_MANY_LOANS)
    return Decision(
        act, True, Reason.OK,
        due_date=due_date(ctx.today, rule.loan_days, calendar),
        flags=frozenset(flags), hold_id=own.id if own is not None else None,
        waived=frozenset(waived),
    )


def route_return(
    item: ItemView, holds: Sequence[HoldView], ctx: Context
) -> tuple[Route, HoldView | None]:
    """Where a returned item goes: a waiting hold first, then its home branch, then here."""
    waiting = sorted((h for h in holds if h.status == "waiting"), key=lambda h: h.id)
    if waiting:
        hold = waiting[0]
        if hold.pickup_branch == ctx.branch:
            return Route(RouteKind.HOLD_HERE), hold
        return Route(RouteKind.HOLD_TRANSIT, hold.pickup_branch), hold
    if item.owning_branch and item.owning_branch != ctx.branch:
        return Route(RouteKind.TRANSIT, item.owning_branch), None
    return Route(RouteKind.SHELF), None


_SETTLED = {
    RouteKind.SHELF: "available",
    RouteKind.HOLD_HERE: "on_hold_shelf",
    RouteKind.TRANSIT: "in_transit",
    RouteKind.HOLD_TRANSIT: "in_transit",
}


def item_status_after(route: Route) -> str:
    return _SETTLED.get(route.kind, "available")


def checkin(
    item: ItemView | None,
    open_loan: LoanView | None,
    holds: Sequence[HoldView],
    ctx: Context,
) -> Decision:
    """A book is back in our hands. Physical fact first: a return is always accepted; the
    decision says where the book goes and what staff or the hub must look at."""
    act = Action.CHECKIN
    flags = _context_flags(ctx)
    if item is None:
        flags.add(Flag.UNKNOWN_ITEM)
        return Decision(act, True, Reason.OK, flags=frozenset(flags),
                        route=Route(RouteKind.SET_ASIDE))
    route, hold = route_return(item, holds, ctx)
    if open_loan is None:
        settled = item.status == item_status_after(route) and (
            item.current_branch in (None, ctx.branch) or route.kind is RouteKind.TRANSIT)
        if settled and hold is None:
            return Decision(act, True, Reason.ALREADY_RETURNED, route=route,
                            changes_state=False)
        flags.add(Flag.NO_LOCAL_LOAN)
    elif open_loan.due_date < ctx.today:
        flags.add(Flag.OVERDUE)
    return Decision(act, True, Reason.OK, flags=frozenset(flags), route=route,
                    hold_id=hold.id if hold else None)


def renew(
    patron: PatronView | None,
    item: ItemView | None,
    open_loan: LoanView | None,
    holds: Sequence[HoldView],
    rule: LoanRule | None,
    calendar: Calendar,
    policy: Policy,
    ctx: Context,
) -> Decision:
    act = Action.RENEW
    problem = patron_problem(patron, policy, ctx)
    if problem is not None:
        return _refuse(act, problem)
    assert patron is not None
    if item is None or open_loan is None or open_loan.patron_id != patron.id:
        return _refuse(act, Reason.NOT_ON_LOAN_TO_PATRON)
    if rule is None or rule.loan_days == 0:
        return _refuse(act, Reason.ITEM_NOT_FOR_LOAN)
    if open_loan.renewals >= rule.max_renewals:
        return _refuse(act, Reason.RENEWAL_LIMIT, params={"limit": rule.max_renewals})
    if _held_for_other(holds, patron.id) is not None:
        return _refuse(act, Reason.ITEM_ON_HOLD_FOR_OTHER)
    new_due = max(open_loan.due_date, due_date(ctx.today, rule.loan_days, calendar))
    return Decision(act, True, Reason.OK, due_date=new_due,
                    flags=frozenset(_context_flags(ctx)))


def pickup(
    patron: PatronView | None,
    hold: HoldView | None,
    rule: LoanRule | None,
    calendar: Calendar,
    policy: Policy,
    ctx: Context,
) -> Decision:
    """May ``patron`` collect the reserved item of ``hold`` here, and from which locker?"""
    act = Action.PICKUP
    problem = patron_problem(patron, policy, ctx)
    if problem is not None:
        return _refuse(act, problem)
    assert patron is not None
    if hold is None:
        return _refuse(act, Reason.NO_HOLD_READY)
    if hold.patron_id != patron.id:
        return _refuse(act, Reason.HOLD_FOR_OTHER)
    if hold.status != "ready":
        return _refuse(act, Reason.NO_HOLD_READY)
    if hold.pickup_expires_on is not None and hold.pickup_expires_on < ctx.today:
        return _refuse(act, Reason.HOLD_EXPIRED)
    if hold.pickup_branch != ctx.branch:
        return _refuse(act, Reason.HOLD_AT_OTHER_BRANCH, params={"branch": hold.pickup_branch})
    if rule is None or rule.loan_days == 0:
        return _refuse(act, Reason.ITEM_NOT_FOR_LOAN)
    limit = loan_limit(rule, policy, ctx)
    if patron.loan_count >= limit:
        return _refuse(act, Reason.TOO_MANY_LOANS, params={"limit": limit})
    return Decision(
        act, True, Reason.OK, due_date=due_date(ctx.today, rule.loan_days, calendar),
        flags=frozenset(_context_flags(ctx) | {Flag.FULFILS_HOLD}),
        hold_id=hold.id, locker_slot=hold.locker_slot,
    )
