"""Table-driven tests of every circulation rule and reason (pure functions, no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from sync import rules
from sync.policy import OfflineLimits, OnLoanToOther, Policy, Station, UnknownItem
from sync.rules import (
    Action,
    Calendar,
    Context,
    Flag,
    HoldView,
    ItemView,
    LoanRule,
    LoanView,
    PatronView,
    Reason,
    RouteKind,
)

TODAY = date(2026, 11, 25)  # a Wednesday
HERE = "CN-431121-0002"
CENTRAL = "CN-431121-0001"
P = PatronView(id=1, card_number="C1", patron_type="adult", expires_on=date(2027, 1, 1))
OTHER = PatronView(id=2, card_number="C2", patron_type="adult")
ITEM = ItemView(id=10, barcode="B10", owning_branch=HERE, current_branch=HERE)
RULE = LoanRule(loan_days=30, max_renewals=2, max_loans=10)
OPEN = Calendar()
CTX = Context(branch=HERE, today=TODAY)
POLICY = Policy()


def hold(patron_id: int, status: str = "waiting", branch: str = HERE, **kw) -> HoldView:
    return HoldView(id=kw.pop("id", 5), patron_id=patron_id, item_id=ITEM.id, pickup_branch=branch,
                    status=status, **kw)


def loan(patron_id: int, due: date = TODAY + timedelta(days=10), renewals: int = 0) -> LoanView:
    return LoanView(id=7, patron_id=patron_id, item_id=ITEM.id, due_date=due, renewals=renewals)


CHECKOUT_CASES = [
    # (name, kwargs overriding the defaults, expected reason, allowed)
    ("ok", {}, Reason.OK, True),
    ("unknown patron", {"patron": None}, Reason.PATRON_UNKNOWN, False),
    ("withdrawn patron", {"patron": replace(P, status="withdrawn")}, Reason.PATRON_UNKNOWN, False),
    ("lost card", {"patron": replace(P, status="lost_card")}, Reason.CARD_REPORTED_LOST, False),
    ("expired yesterday", {"patron": replace(P, expires_on=TODAY - timedelta(days=1))},
     Reason.PATRON_EXPIRED, False),
    ("expires today still ok", {"patron": replace(P, expires_on=TODAY)}, Reason.OK, True),
    ("blocked", {"patron": replace(P, blocks=("overdue",))}, Reason.PATRON_BLOCKED, False),
    ("fines over limit", {"patron": replace(P, fines_owed_cents=1001)},
     Reason.FINES_OVER_LIMIT, False),
    ("fines at limit ok", {"patron": replace(P, fines_owed_cents=1000)}, Reason.OK, True),
    ("too many loans", {"patron": replace(P, loan_count=10)}, Reason.TOO_MANY_LOANS, False),
    ("not for loan rule", {"rule": LoanRule(0, 0, 0)}, Reason.ITEM_NOT_FOR_LOAN, False),
    ("no rule at all", {"rule": None}, Reason.ITEM_NOT_FOR_LOAN, False),
    ("withdrawn item", {"item": replace(ITEM, status="withdrawn")},
     Reason.ITEM_NOT_FOR_LOAN, False),
    ("held for other", {"holds": (hold(OTHER.id),)}, Reason.ITEM_ON_HOLD_FOR_OTHER, False),
    ("ready hold for other", {"holds": (hold(OTHER.id, "ready"),)},
     Reason.ITEM_ON_HOLD_FOR_OTHER, False),
    ("fulfilled hold of other is history", {"holds": (hold(OTHER.id, "fulfilled"),)},
     Reason.OK, True),
    ("already on loan to patron", {"open_loan": loan(P.id)},
     Reason.ALREADY_ON_LOAN_TO_PATRON, False),
    ("on loan to other at kiosk", {"open_loan": loan(OTHER.id)}, Reason.ON_LOAN_TO_OTHER, False),
    ("unknown item offline lends", {"item": None}, Reason.OK, True),
    ("unknown item online refused", {"item": None, "ctx": replace(CTX, online=True)},
     Reason.ITEM_UNKNOWN, False),
]


def run_checkout(**kw):
    args = {"patron": P, "item": ITEM, "open_loan": None, "holds": (), "rule": RULE,
            "calendar": OPEN, "policy": POLICY, "ctx": CTX, **kw}
    return rules.checkout(**args)


@pytest.mark.parametrize(("name", "kw", "reason", "allowed"), CHECKOUT_CASES,
                         ids=[c[0] for c in CHECKOUT_CASES])
def test_checkout_reasons(name, kw, reason, allowed):
    d = run_checkout(**kw)
    assert (d.reason, d.allowed) == (reason, allowed)
    assert d.action is Action.CHECKOUT
    assert d.changes_state is allowed
    if allowed:
        assert d.due_date is not None and d.message_key == "circ.checkout.ok"
    else:
        assert d.due_date is None and d.message_key == f"circ.reason.{reason}"


def test_checkout_ok_due_date_and_offline_flags():
    d = run_checkout()
    assert d.due_date == TODAY + timedelta(days=30)
    assert d.flags == {Flag.OFFLINE}
    online = run_checkout(ctx=replace(CTX, online=True, clock_trusted=False))
    assert online.flags == {Flag.CLOCK_UNTRUSTED}


def test_already_on_loan_offers_renew():
    assert run_checkout(open_loan=loan(P.id)).offer is Action.RENEW


def test_on_loan_to_other_at_desk_returns_then_lends_and_is_flagged():
    d = run_checkout(open_loan=loan(OTHER.id), ctx=replace(CTX, station=Station.DESK))
    assert d.allowed
    assert {Flag.RETURN_THEN_LEND, Flag.ON_LOAN_TO_OTHER} <= d.flags
    refused = run_checkout(open_loan=loan(OTHER.id))
    assert Flag.ON_LOAN_TO_OTHER in refused.flags


def test_on_loan_to_other_policy_can_refuse_at_desk_too():
    policy = Policy(on_loan_to_other_desk=OnLoanToOther.REFUSE)
    d = run_checkout(open_loan=loan(OTHER.id), policy=policy,
                     ctx=replace(CTX, station=Station.DESK))
    assert d.reason is Reason.ON_LOAN_TO_OTHER


def test_unknown_item_uses_default_loan_period_and_flag():
    d = run_checkout(item=None, policy=Policy(unknown_item_loan_days=9))
    assert d.due_date == TODAY + timedelta(days=9)
    assert Flag.UNKNOWN_ITEM in d.flags


def test_unknown_item_offline_policy_can_refuse():
    policy = Policy(offline=OfflineLimits(unknown_item=UnknownItem.REFUSE))
    assert run_checkout(item=None, policy=policy).reason is Reason.ITEM_UNKNOWN


def test_offline_limit_is_lower_than_rule():
    policy = Policy(offline=OfflineLimits(max_loans_per_patron=3))
    patron = replace(P, loan_count=3)
    offline = run_checkout(patron=patron, policy=policy)
    assert offline.reason is Reason.TOO_MANY_LOANS and offline.params == {"limit": 3}
    assert run_checkout(patron=patron, policy=policy, ctx=replace(CTX, online=True)).allowed


def test_lost_item_found_on_pad_is_lent_and_flagged():
    d = run_checkout(item=replace(ITEM, status="lost"))
    assert d.allowed and Flag.FOUND_ITEM in d.flags


def test_own_hold_is_fulfilled_by_checkout():
    d = run_checkout(holds=(hold(P.id, "ready", id=44),))
    assert d.allowed and d.hold_id == 44 and Flag.FULFILS_HOLD in d.flags


def test_patron_checks_come_before_item_checks():
    # A blocked patron with an unknown item hears about the block, the thing they can fix.
    d = run_checkout(patron=replace(P, blocks=("manual",)), item=None)
    assert d.reason is Reason.PATRON_BLOCKED


# -- due dates and calendars ------------------------------------------------------------

@pytest.mark.parametrize(("closed_weekdays", "closed_days", "expected"), [
    (frozenset(), frozenset(), date(2026, 12, 25)),
    (frozenset({5}), frozenset(), date(2026, 12, 26)),  # Friday closed -> Saturday
    (frozenset({5, 6}), frozenset(), date(2026, 12, 27)),
    (frozenset(), frozenset({date(2026, 12, 25), date(2026, 12, 26)}), date(2026, 12, 27)),
    (frozenset({5}), frozenset({date(2026, 12, 26)}), date(2026, 12, 27)),
])
def test_due_date_skips_closed_days(closed_weekdays, closed_days, expected):
    cal = Calendar(closed_weekdays, closed_days)
    assert rules.due_date(TODAY, 30, cal) == expected
    assert cal.is_open(expected)


def test_calendar_closed_every_day_does_not_loop_forever():
    cal = Calendar(frozenset(range(1, 8)))
    assert rules.due_date(TODAY, 30, cal) == TODAY + timedelta(days=30)


# -- checkin -----------------------------------------------------------------------------

def test_checkin_on_loan_goes_to_shelf():
    d = rules.checkin(ITEM, loan(P.id), (), CTX)
    assert d.allowed and d.reason is Reason.OK and d.route == rules.Route(RouteKind.SHELF)
    assert d.changes_state


def test_checkin_overdue_is_flagged():
    d = rules.checkin(ITEM, loan(P.id, due=TODAY - timedelta(days=1)), (), CTX)
    assert Flag.OVERDUE in d.flags


def test_return_anywhere_sends_item_home():
    item = replace(ITEM, owning_branch=CENTRAL)
    d = rules.checkin(item, loan(P.id), (), CTX)
    assert d.route == rules.Route(RouteKind.TRANSIT, CENTRAL)
    assert rules.item_status_after(d.route) == "in_transit"


def test_waiting_hold_here_traps_item():
    d = rules.checkin(ITEM, loan(P.id), (hold(OTHER.id, id=3),), CTX)
    assert d.route.kind is RouteKind.HOLD_HERE and d.hold_id == 3


def test_waiting_hold_elsewhere_goes_in_transit_before_home():
    item = replace(ITEM, owning_branch=HERE)
    d = rules.checkin(item, loan(P.id), (hold(OTHER.id, branch=CENTRAL),), CTX)
    assert d.route == rules.Route(RouteKind.HOLD_TRANSIT, CENTRAL)


def test_oldest_waiting_hold_wins():
    holds = (hold(OTHER.id, id=9, branch=CENTRAL), hold(3, id=4))
    assert rules.checkin(ITEM, loan(P.id), holds, CTX).hold_id == 4


def test_checkin_unknown_item_is_accepted_and_set_aside():
    d = rules.checkin(None, None, (), CTX)
    assert d.allowed and d.route.kind is RouteKind.SET_ASIDE and Flag.UNKNOWN_ITEM in d.flags


def test_checkin_twice_is_already_returned_without_change():
    d = rules.checkin(ITEM, None, (), CTX)
    assert d.reason is Reason.ALREADY_RETURNED and not d.changes_state


def test_checkin_without_local_loan_of_item_elsewhere_is_recorded():
    # Lent at another van (the hub knows, we don't yet): the book is here now.
    item = replace(ITEM, status="on_loan", current_branch=CENTRAL)
    d = rules.checkin(item, None, (), CTX)
    assert d.changes_state and Flag.NO_LOCAL_LOAN in d.flags


# -- renew -------------------------------------------------------------------------------

RENEW_CASES = [
    ("ok", {}, Reason.OK),
    ("unknown patron", {"patron": None}, Reason.PATRON_UNKNOWN),
    ("expired", {"patron": replace(P, expires_on=TODAY - timedelta(days=1))},
     Reason.PATRON_EXPIRED),
    ("blocked", {"patron": replace(P, blocks=("x",))}, Reason.PATRON_BLOCKED),
    ("fines", {"patron": replace(P, fines_owed_cents=5000)}, Reason.FINES_OVER_LIMIT),
    ("not on loan", {"open_loan": None}, Reason.NOT_ON_LOAN_TO_PATRON),
    ("loan of other", {"open_loan": loan(OTHER.id)}, Reason.NOT_ON_LOAN_TO_PATRON),
    ("unknown item", {"item": None}, Reason.NOT_ON_LOAN_TO_PATRON),
    ("limit", {"open_loan": loan(P.id, renewals=2)}, Reason.RENEWAL_LIMIT),
    ("held", {"holds": (hold(OTHER.id),)}, Reason.ITEM_ON_HOLD_FOR_OTHER),
    ("reference", {"rule": LoanRule(0, 0, 0)}, Reason.ITEM_NOT_FOR_LOAN),
]


@pytest.mark.parametrize(("name", "kw", "reason"), RENEW_CASES, ids=[c[0] for c in RENEW_CASES])
def test_renew_reasons(name, kw, reason):
    args = {"patron": P, "item": ITEM, "open_loan": loan(P.id), "holds": (), "rule": RULE,
            "calendar": OPEN, "policy": POLICY, "ctx": CTX, **kw}
    d = rules.renew(**args)
    assert d.reason is reason and d.allowed is (reason is Reason.OK)


def test_renew_never_shortens_a_loan():
    far = loan(P.id, due=TODAY + timedelta(days=60))
    d = rules.renew(P, ITEM, far, (), RULE, OPEN, POLICY, CTX)
    assert d.due_date == far.due_date
    near = loan(P.id, due=TODAY + timedelta(days=1))
    assert rules.renew(P, ITEM, near, (), RULE, OPEN, POLICY, CTX).due_date == TODAY + timedelta(30)


# -- pickup ------------------------------------------------------------------------------

READY = hold(P.id, "ready", locker_slot="A03", pickup_expires_on=TODAY + timedelta(days=3))
PICKUP_CASES = [
    ("ok", {}, Reason.OK),
    ("blocked patron", {"patron": replace(P, blocks=("x",))}, Reason.PATRON_BLOCKED),
    ("no hold", {"hold": None}, Reason.NO_HOLD_READY),
    ("not yet ready", {"hold": replace(READY, status="in_transit")}, Reason.NO_HOLD_READY),
    ("someone else's", {"hold": replace(READY, patron_id=OTHER.id)}, Reason.HOLD_FOR_OTHER),
    ("expired", {"hold": replace(READY, pickup_expires_on=TODAY - timedelta(days=1))},
     Reason.HOLD_EXPIRED),
    ("other branch", {"hold": replace(READY, pickup_branch=CENTRAL)},
     Reason.HOLD_AT_OTHER_BRANCH),
    ("too many loans", {"patron": replace(P, loan_count=10)}, Reason.TOO_MANY_LOANS),
    ("not for loan", {"rule": None}, Reason.ITEM_NOT_FOR_LOAN),
]


@pytest.mark.parametrize(("name", "kw", "reason"), PICKUP_CASES, ids=[c[0] for c in PICKUP_CASES])
def test_pickup_reasons(name, kw, reason):
    args = {"patron": P, "hold": READY, "rule": RULE, "calendar": OPEN, "policy": POLICY,
            "ctx": CTX, **kw}
    d = rules.pickup(**args)
    assert d.reason is reason and d.allowed is (reason is Reason.OK)


def test_pickup_names_locker_and_fulfils_hold():
    d = rules.pickup(P, READY, RULE, OPEN, POLICY, CTX)
    assert d.locker_slot == "A03" and d.hold_id == READY.id and Flag.FULFILS_HOLD in d.flags
    assert d.due_date == TODAY + timedelta(days=30)


def test_every_reason_is_reachable_by_some_table():
    # Keeps the tables honest: a new Reason without a test case fails here.
    covered = {c[2] for c in CHECKOUT_CASES} | {c[2] for c in RENEW_CASES}
    covered |= {c[2] for c in PICKUP_CASES} | {Reason.ALREADY_RETURNED}
    assert covered == set(Reason)
