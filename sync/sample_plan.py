"""The sample county's shape and plan, drawn up front for :mod:`sync.sample_rows`.

:class:`Plan` draws everything that ties one table to another (each patron's type and number
of loans, each item's title and whether it is on loan or held, which loans and holds exist)
into compact arrays: 3 bytes per item, 2 per patron, 8 per loan, about 10 MB for the county,
never a Python object per row. The row generators then stream the rows from it.

Every random stream is a :class:`Stream` seeded with a fixed string (string seeds are
hashed with SHA-512, independent of ``PYTHONHASHSEED``), and every date is an offset from
:data:`SAMPLE_TODAY`, so the same scale gives byte-identical rows on every run.
"""

from __future__ import annotations

import bisect
import random
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from typing import TypeVar

from sync import sample_data as data

T = TypeVar("T")

SEED = "library-kiosk sample county v1"

# The day the sample is drawn for: due dates, expiry dates and holds are relative to it, so
# an "expired" patron stays expired and an "overdue" loan stays overdue.
SAMPLE_TODAY = date(2026, 11, 25)

CARD_PREFIX = "4311"
# Sample cards are CARD_PREFIX + 8 digits from 10,000,001 up; the device's leased range
# (CARD_RANGE) issues CARD_PREFIX + 8 digits below 1,000,000, so they never meet. Cards
# issued on a device also carry a Luhn check digit (sync/cardnumbers.py): 13 digits, never
# equal to a 12-digit sample card.
CARD_BASE = 10_000_000
CARD_RANGE = (900_000, 909_999)

CENTRAL = f"{data.ISIL_PREFIX}0001"
SPACE = f"{data.ISIL_PREFIX}0002"

# Item states in the plan (one byte per item).
AVAILABLE, ON_LOAN, HOLD_SHELF, HOLD_TRANSIT = 0, 1, 2, 3

ITEM_WEIGHT = {"central": 30, "24h-space": 12, "branch": 38, "village": 14, "van": 6}
PATRON_HOME_WEIGHT = {"central": 25, "24h-space": 20, "branch": 40, "village": 10, "van": 5}
_PICKUP_KINDS = ("central", "24h-space", "branch")
LOCKER_SLOTS = tuple(f"{row}{n:02d}" for row in "ABCD" for n in range(1, 13))


@dataclass(frozen=True)
class Scale:
    """How big a sample is. Counts are exact: the loaded tables hold exactly these rows.

    The layout fields add service points to the two every sample has (the county library
    ``CN-431121-0001`` and the 24-hour space ``CN-431121-0002``).
    """

    name: str
    patrons: int
    items: int
    loans: int
    holds: int
    blocks: int
    reading_spaces: int = 0
    townships: int = 0
    villages_per_township: int = 0
    vans: int = 0


@dataclass(frozen=True)
class Branch:
    isil: str
    number: int
    name: str
    kind: str
    parent: str | None
    closed_weekdays: str


def _iso(offset: int) -> str:
    return (SAMPLE_TODAY + timedelta(days=offset)).isoformat()


# Formatting dates is a good part of generating a row; the sample's span is precomputed.
_DAY_SPAN = 4000
_DAYS = tuple(_iso(o) for o in range(-_DAY_SPAN, _DAY_SPAN + 1))


def day(offset: int) -> str:
    """ISO date ``offset`` days from :data:`SAMPLE_TODAY`."""
    if -_DAY_SPAN <= offset <= _DAY_SPAN:
        return _DAYS[offset + _DAY_SPAN]
    return _iso(offset)


def stamp(offset: int, minute_of_day: int) -> str:
    """Local wall time (Asia/Shanghai, as circulation records it) on day ``offset``."""
    hour, minute = divmod(minute_of_day, 60)
    return f"{day(offset)}T{hour:02d}:{minute:02d}:00+08:00"


def card(patron_id: int) -> str:
    return f"{CARD_PREFIX}{CARD_BASE + patron_id:08d}"


def barcode(branch_number: int, serial: int) -> str:
    return f"{branch_number:04d}{serial:010d}"


TITLE_INDEX = {t[0]: i for i, t in enumerate(data.TITLES)}
LOAN_TYPE = tuple(data.CATEGORIES[t[3]] for t in data.TITLES)
# Copies of a title share its call number: class / author number.
CALL_NUMBER = tuple(f"{t[2]}/{(i * 37) % 900 + 100}" for i, t in enumerate(data.TITLES))
RULES = {(r[0], r[1]): r[2:] for r in data.LOAN_RULES}


def rule(patron_type: str, loan_type_: str) -> tuple[int, int, int]:
    """(loan days, max renewals, max loans) by the same wildcard order as the cache."""
    for key in ((patron_type, loan_type_), ("*", loan_type_), ("*", "*")):
        if key in RULES:
            return RULES[key]
    raise KeyError(patron_type)


def branches(scale: Scale) -> list[Branch]:
    """Service points in ISIL order; the first two are in every sample."""
    p = data.ISIL_PREFIX
    out = [Branch(CENTRAL, 1, "县图书馆", "central", None, "1"),
           Branch(SPACE, 2, "城东24小时城市书房", "24h-space", CENTRAL, "")]
    for i in range(scale.reading_spaces):
        out.append(Branch(f"{p}{3 + i:04d}", 3 + i, data.READING_SPACES[i], "24h-space",
                          CENTRAL, ""))
    towns = [Branch(f"{p}{10 + i:04d}", 10 + i, f"{data.TOWNSHIPS[i]}分馆", "branch",
                    CENTRAL, "1") for i in range(scale.townships)]
    out += towns
    for i in range(scale.vans):
        # A van runs on weekdays; at weekends it is in the depot.
        out.append(Branch(f"{p}{100 + i:04d}", 100 + i, f"流动图书车{i + 1}号", "van",
                          CENTRAL, "67"))
    number = 1000
    for town in towns:
        for v in range(scale.villages_per_township):
            name = f"{town.name[:-2]}{data.VILLAGES[v]}村农家书屋"
            out.append(Branch(f"{p}{number:04d}", number, name, "village", town.isil, "1"))
            number += 1
    return out


def closed_days(branch: Branch) -> tuple[str, ...]:
    """The 24-hour spaces never close; the county library closes over the Spring Festival
    eve only; the others over every public holiday."""
    if branch.kind == "24h-space":
        return ()
    if branch.kind == "central":
        return data.SPRING_FESTIVAL_EVE
    return data.PUBLIC_HOLIDAYS


class Stream(random.Random):
    """A seeded random stream drawing only through ``random()``: Python promises that
    sequence across versions, not those of ``randrange``, ``choice``, ``sample`` or
    ``choices``, and the sample must be the same on a Pi's Python 3.11 and anywhere else."""

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def between(self, lo: int, hi: int) -> int:
        """``lo`` to ``hi`` inclusive."""
        return lo + int(self.random() * (hi - lo + 1))

    def pick(self, seq: Sequence[T]) -> T:
        return seq[int(self.random() * len(seq))]

    def weighted(self, cum_weights: Sequence[int]) -> int:
        """An index drawn by cumulative weights (zero-weight entries never come up)."""
        return bisect.bisect_right(cum_weights, self.random() * cum_weights[-1])

    def distinct(self, lo: int, hi: int, k: int) -> list[int]:
        """``k`` different numbers from ``lo`` to ``hi`` inclusive, in the order drawn."""
        if k > hi - lo + 1:
            raise ValueError(f"cannot draw {k} different numbers from {lo}..{hi}")
        seen: set[int] = set()
        out = []
        while len(out) < k:
            n = self.between(lo, hi)
            if n not in seen:
                seen.add(n)
                out.append(n)
        return out


def _split(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainder), summing exactly."""
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    rest = sorted(range(len(weights)), key=lambda i: -(total * weights[i] % whole))
    for i in rest[: total - sum(shares)]:
        shares[i] += 1
    return shares


def branch_weights(bs: list[Branch], kind_weight: dict[str, int]) -> list[int]:
    """Weight of each branch: its kind's weight shared among the branches of that kind."""
    kinds = [b.kind for b in bs]
    return [kind_weight[k] * 1000 // kinds.count(k) for k in kinds]


def _active(patron_id: int) -> bool:
    # About 30 % of registered readers borrow at all; a multiplicative hash picks them
    # without storing a flag per patron.
    return (patron_id * 2654435761) % 1000 < 300


class Plan:
    """Cross-table facts of one sample, drawn once.

    ``edge_items`` are the (branch number, state) of the hand-made edge-case items that
    take the first item ids; random rows start after every edge row.
    """

    def __init__(self, scale: Scale, *, edge_patrons: int, edge_items: list[tuple[int, int]],
                 edge_loans: int, edge_holds: int, edge_blocks: int) -> None:
        self.scale = scale
        self.branches = branches(scale)
        self.first_patron = edge_patrons + 1
        self.first_item = len(edge_items) + 1
        self.first_loan = edge_loans + 1
        self.first_hold = edge_holds + 1
        self.first_block = edge_blocks + 1
        rng = Stream(f"{SEED}/plan")
        self.patron_type = bytearray(scale.patrons + 1)
        self.loan_count = bytearray(scale.patrons + 1)
        self.item_title = array("H", bytes(2 * (scale.items + 1)))
        self.item_state = bytearray(scale.items + 1)
        self.loan_item = array("i")
        self.loan_patron = array("i")
        self.hold_target: dict[int, str] = {}
        self.holds: list[tuple[int, int, str, str, str | None]] = []
        self._draw_patron_types(rng)
        self._lay_out_items(rng, edge_items)
        self._draw_loans(rng, scale.loans - edge_loans)
        self._draw_holds(rng, scale.holds - edge_holds)
        self.blocked = sorted(rng.distinct(self.first_patron, scale.patrons,
                                           scale.blocks - edge_blocks))

    def _draw_patron_types(self, rng: Stream) -> None:
        cum = list(accumulate(data.PATRON_TYPE_WEIGHTS))
        types = self.patron_type
        for pid in range(self.first_patron, self.scale.patrons + 1):
            types[pid] = rng.weighted(cum)

    def _lay_out_items(self, rng: Stream, edge_items: list[tuple[int, int]]) -> None:
        """Give each branch a contiguous run of item ids, so barcodes (branch number first)
        grow with the id, and draw each item's title from its branch kind's mix."""
        n = self.scale.items - len(edge_items)
        counts = _split(n, branch_weights(self.branches, ITEM_WEIGHT))
        edge_serials = {b.number: 0 for b in self.branches}
        for number, _state in edge_items:
            edge_serials[number] += 1
        self.range_start: list[int] = []
        self.range_branch: list[tuple[Branch, int]] = []
        first = self.first_item
        for branch, count in zip(self.branches, counts, strict=True):
            if not count:
                continue
            self.range_start.append(first)
            # Serial of the first random item: after the branch's edge-case items.
            self.range_branch.append((branch, edge_serials[branch.number] + 1 - first))
            weights = data.CATEGORY_WEIGHTS[branch.kind]
            sizes = {c: sum(1 for t in data.TITLES if t[3] == c) for c in weights}
            cum = list(accumulate(
                weights[t[3]] * 10_000 // sizes[t[3]] for t in data.TITLES))
            titles, weighted = self.item_title, rng.weighted
            for iid in range(first, first + count):
                titles[iid] = weighted(cum)
            first += count

    def branch_of(self, item_id: int) -> Branch:
        """Owning branch of a random (non edge-case) item."""
        return self.range_branch[bisect.bisect_right(self.range_start, item_id) - 1][0]

    def _draw(self, rng: Stream, table: str, accept: Callable[[int], bool]) -> int:
        """A random non edge-case patron or item id that ``accept`` takes. Rejection
        sampling: cheap while the sample is far from full, which scale_for ensures; a
        degenerate scale gets an error instead of an endless loop."""
        lo, hi = ((self.first_patron, self.scale.patrons) if table == "patrons"
                  else (self.first_item, self.scale.items))
        for _ in range(10_000):
            n = rng.between(lo, hi)
            if accept(n):
                return n
        raise ValueError(f"sample {self.scale.name}: too few {table} to draw from")

    def _free_item(self, rng: Stream) -> int:
        """A random available, lendable item that no loan or hold has taken yet."""
        state, title = self.item_state, self.item_title
        return self._draw(rng, "items", lambda i: state[i] == AVAILABLE
                          and LOAN_TYPE[title[i]] != "reference")

    def _draw_loans(self, rng: Stream, n: int) -> None:
        caps = [rule(t, "normal")[2] for t in data.PATRON_TYPES]
        count, ptype = self.loan_count, self.patron_type
        for _ in range(n):
            item = self._free_item(rng)
            self.item_state[item] = ON_LOAN
            p = self._draw(rng, "patrons", lambda p: _active(p) and count[p] < caps[ptype[p]])
            self.loan_count[p] += 1
            self.loan_item.append(item)
            self.loan_patron.append(p)

    def _random_patron(self, rng: Stream) -> int:
        return rng.between(self.first_patron, self.scale.patrons)

    def _draw_holds(self, rng: Stream, n: int) -> None:
        """Holds as (patron, item, pickup branch, status, locker slot): most wait for a book
        on loan, some are on their way, some ready on a hold shelf or in a locker, and a few
        are history (fulfilled, expired, cancelled)."""
        pickups = [b.isil for b in self.branches if b.kind in _PICKUP_KINDS]
        spaces = [b.isil for b in self.branches if b.kind == "24h-space"]
        # A03 at the city reading space holds the edge-case ready hold.
        free_slots = {s: [x for x in LOCKER_SLOTS if (s, x) != (SPACE, "A03")] for s in spaces}
        n_wait = min(n * 55 // 100, len(self.loan_item))
        n_transit = n * 15 // 100
        n_ready = n * 15 // 100
        n_closed = n - n_wait - n_transit - n_ready
        for k in rng.distinct(0, len(self.loan_item) - 1, n_wait):
            borrower = self.loan_patron[k]
            p = self._draw(rng, "patrons", lambda p, b=borrower: p != b)
            self.holds.append((p, self.loan_item[k], rng.pick(pickups), "waiting", None))
        for _ in range(n_transit):
            item = self._free_item(rng)
            home = self.branch_of(item).isil
            to = rng.pick([b for b in pickups if b != home] or pickups)
            self.item_state[item] = HOLD_TRANSIT
            self.hold_target[item] = to
            self.holds.append((self._random_patron(rng), item, to, "in_transit", None))
        for _ in range(n_ready):
            item = self._free_item(rng)
            to = rng.pick(pickups)
            slot = None
            if to in free_slots:
                if free_slots[to]:
                    slot = free_slots[to].pop(rng.below(len(free_slots[to])))
                else:
                    to = CENTRAL
            self.item_state[item] = HOLD_SHELF
            self.hold_target[item] = to
            self.holds.append((self._random_patron(rng), item, to, "ready", slot))
        for _ in range(n_closed):
            item = rng.between(self.first_item, self.scale.items)
            status = rng.pick(("fulfilled", "expired", "cancelled"))
            self.holds.append((self._random_patron(rng), item, rng.pick(pickups), status, None))
