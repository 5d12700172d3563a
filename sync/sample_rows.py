"""Rows of the sample county, streamed one at a time from a :class:`~sync.sample_plan.Plan`.

Each generator has its own seeded random stream, so the rows of one table do not depend on
how many values another table drew. Column tuples (``*_COLUMNS``) give the order of each
row; columns not named keep the schema's default.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate

from sync import sample_data as data
from sync.sample_plan import (
    CALL_NUMBER,
    CENTRAL,
    HOLD_SHELF,
    HOLD_TRANSIT,
    LOAN_TYPE,
    ON_LOAN,
    PATRON_HOME_WEIGHT,
    SEED,
    SPACE,
    Plan,
    Stream,
    barcode,
    branch_weights,
    card,
    day,
    rule,
    stamp,
)


def _pool(pairs: tuple[tuple[str, int], ...]) -> tuple[str, ...]:
    return tuple(s for s, w in pairs for _ in range(w))


_SURNAMES = _pool(data.SURNAMES)


def _name(rng: Stream, patron_type: str) -> str:
    r = rng.random()
    if r < 0.006:
        return data.LATIN_NAMES[int(rng.random() * len(data.LATIN_NAMES))]
    surname = _SURNAMES[int(rng.random() * len(_SURNAMES))]
    if patron_type == "elderly":
        given = data.GIVEN_ELDERLY[int(rng.random() * len(data.GIVEN_ELDERLY))]
        return surname + given
    if patron_type == "child":
        chars = data.GIVEN_CHILD
    else:
        chars = data.GIVEN_ADULT_MALE if rng.random() < 0.5 else data.GIVEN_ADULT_FEMALE
    first = chars[int(rng.random() * len(chars))]
    if r < 0.016:
        # About one reader in a hundred has a character outside GB2312 in their name.
        return surname + first + data.GIVEN_RARE[int(rng.random() * len(data.GIVEN_RARE))]
    if rng.random() < 0.3:
        return surname + first
    return surname + first + chars[int(rng.random() * len(chars))]


PATRON_COLUMNS = ("id", "card_number", "name", "patron_type", "home_branch", "status",
                  "expires_on", "fines_owed_cents", "loan_count")


def patron_rows(plan: Plan) -> Iterator[tuple]:
    rng = Stream(f"{SEED}/patrons")
    homes = [b.isil for b in plan.branches]
    cum = list(accumulate(branch_weights(plan.branches, PATRON_HOME_WEIGHT)))
    types = data.PATRON_TYPES
    for pid in range(plan.first_patron, plan.scale.patrons + 1):
        ptype = types[plan.patron_type[pid]]
        home = homes[rng.weighted(cum)]
        r = rng.random()
        status = "lost_card" if r < 0.004 else "withdrawn" if r < 0.007 else "active"
        if rng.random() < 0.03:
            expires = -1 - int(rng.random() * 720)
        else:
            expires = 1 + int(rng.random() * 1800)
        fines = 10 * (1 + int(rng.random() * 300)) if rng.random() < 0.04 else 0
        yield (pid, card(pid), _name(rng, ptype), ptype, home, status,
               day(expires), fines, plan.loan_count[pid])


BLOCK_COLUMNS = ("id", "patron_id", "reason", "note", "created_at")


def block_rows(plan: Plan) -> Iterator[tuple]:
    rng = Stream(f"{SEED}/blocks")
    for n, pid in enumerate(plan.blocked, start=plan.first_block):
        reason, note = rng.pick(data.BLOCK_REASONS)
        yield (n, pid, reason, note, stamp(-1 - rng.below(400), rng.between(540, 1019)))


ITEM_COLUMNS = ("id", "barcode", "title", "author", "call_number", "owning_branch",
                "current_branch", "loan_type", "status", "transit_to")


def item_rows(plan: Plan) -> Iterator[tuple]:
    rng = Stream(f"{SEED}/items")
    all_isils = [b.isil for b in plan.branches]
    ends = [*plan.range_start[1:], plan.scale.items + 1]
    for start, end, (branch, serial_offset) in zip(
            plan.range_start, ends, plan.range_branch, strict=True):
        isil = branch.isil
        for iid in range(start, end):
            t = plan.item_title[iid]
            title, author, _cls, _cat = data.TITLES[t]
            state = plan.item_state[iid]
            current, transit = isil, None
            if state == ON_LOAN:
                status = "on_loan"
            elif state == HOLD_SHELF:
                status, current = "on_hold_shelf", plan.hold_target[iid]
            elif state == HOLD_TRANSIT:
                status, transit = "in_transit", plan.hold_target[iid]
            else:
                r = rng.random()
                status = ("available" if r < 0.955 else "lost" if r < 0.965 else
                          "missing" if r < 0.975 else "withdrawn" if r < 0.99 else "in_transit")
                if status == "in_transit":
                    # Returned at another service point, on its way home.
                    current = all_isils[int(rng.random() * len(all_isils))]
                    if current == isil:
                        current = CENTRAL if isil != CENTRAL else SPACE
                    transit = isil
            yield (iid, barcode(branch.number, iid + serial_offset), title, author,
                   CALL_NUMBER[t], isil, current, LOAN_TYPE[t], status, transit)


LOAN_COLUMNS = ("id", "item_id", "patron_id", "branch", "loaned_at", "due_date", "renewals")


def loan_rows(plan: Plan) -> Iterator[tuple]:
    """Open loans made at the hub or other devices: ``checkout_txn`` stays NULL."""
    rng = Stream(f"{SEED}/loans")
    types = data.PATRON_TYPES
    for n, (item, pid) in enumerate(zip(plan.loan_item, plan.loan_patron, strict=True),
                                    start=plan.first_loan):
        days, max_renewals, _ = rule(types[plan.patron_type[pid]],
                                     LOAN_TYPE[plan.item_title[item]])
        overdue = rng.random() < 0.12
        due = -1 - int(rng.random() * 90) if overdue else 1 + int(rng.random() * days)
        loaned = due - days
        renewals = 0
        if max_renewals and rng.random() < 0.08:
            renewals = 1
            loaned -= days
        yield (n, item, pid, plan.branch_of(item).isil,
               stamp(loaned, 540 + int(rng.random() * 720)), day(due), renewals)


HOLD_COLUMNS = ("id", "patron_id", "item_id", "pickup_branch", "status", "locker_slot",
                "placed_at", "ready_at", "pickup_expires_on")


def hold_rows(plan: Plan) -> Iterator[tuple]:
    rng = Stream(f"{SEED}/holds")
    for n, (pid, item, pickup, status, slot) in enumerate(plan.holds, start=plan.first_hold):
        minute = 540 + int(rng.random() * 720)
        ready_at = expires = None
        if status in ("waiting", "in_transit"):
            placed = -1 - int(rng.random() * 30)
        elif status == "ready":
            ready = -int(rng.random() * 6)
            placed = ready - 1 - int(rng.random() * 10)
            ready_at = stamp(ready, 480 + int(rng.random() * 120))
            expires = day(ready + 7)
        else:
            placed = -30 - int(rng.random() * 200)
        yield (n, pid, item, pickup, status, slot, stamp(placed, minute), ready_at, expires)
