"""Sample county data for the demo, the tests and the benchmarks.

A deterministic county (division code 431121): the county library and its 24-hour city
reading space in every sample; township branches, village service points (农家书屋), more
reading spaces and book vans in the county-size sample. Chinese names and titles, some with
characters outside GB2312 (to exercise GB18030), a few Latin-script ones; patrons, items,
open loans consistent with ``patrons.loan_count``, holds, blocks, fines and loan rules.

What callers may rely on:

- ``load(cache, "small")`` gives byte-identical rows on every run, on every machine;
  likewise for ``"county"`` and for any given :class:`Scale`.
- Dates are fixed offsets from :data:`SAMPLE_TODAY` (2026-11-25), never the wall clock;
  run circulation with a clock at that day for the edge cases to mean what they say.
- Every sample, whatever its size, starts with the hand-made rows of :data:`EDGE_CASES`
  (patron cards, item barcodes, hold ids) at ``CN-431121-0002``, the simulated kiosk's
  branch; random rows come after them and never touch them.
- ``local_state`` gets the key ``'sample'`` (the scale's name), so any later code can tell a
  sample cache from real county data.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from types import MappingProxyType

from sync import errors, sample_plan
from sync import sample_data as data
from sync import sample_rows as rows
from sync.db import Cache, translated
from sync.sample_plan import CENTRAL, SAMPLE_TODAY, SPACE, Scale, card, day, stamp

__all__ = [
    "BATCH_ROWS",
    "EDGE_CASES",
    "SAMPLE_TODAY",
    "SCALES",
    "CacheNotEmpty",
    "Progress",
    "SampleInfo",
    "Scale",
    "load",
    "move_to",
    "scale_for",
]

SCALES: Mapping[str, Scale] = MappingProxyType({
    "small": Scale("small", patrons=200, items=2_000, loans=100, holds=12, blocks=4),
    "county": Scale("county", patrons=500_000, items=2_000_000, loans=200_000, holds=20_000,
                    blocks=2_500, reading_spaces=3, townships=22, villages_per_township=10,
                    vans=3),
})

# Rows per committed transaction. A crash loses at most one batch, the WAL stays small
# (a few MB, checkpointed between batches, instead of growing to the database's size) and
# ``progress`` is called this often. Larger batches measured no faster.
BATCH_ROWS = 20_000

Progress = Callable[[str, int, int], None]


class CacheNotEmpty(errors.CacheError, ValueError):
    """The cache already holds library data; a sample is only ever loaded into an empty one,
    so sample rows never mix with a county's real patrons and items."""

    message_key = "db.sample_not_empty"


@dataclass(frozen=True)
class SampleInfo:
    """What :func:`load` wrote: ``counts`` maps each table to the rows inserted, in load
    order; ``edge_cases`` is :data:`EDGE_CASES`."""

    scale: Scale
    counts: Mapping[str, int]
    edge_cases: Mapping[str, str | int] = field(repr=False)
    today: date = SAMPLE_TODAY

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values())


# -- the edge cases ----------------------------------------------------------------------
# Patrons: (key, name, patron type, status, expires (days from SAMPLE_TODAY), fines in
# cents). Home branch CN-431121-0002; ids 1, 2, ... in this order.
_EDGE_PATRONS = (
    ("ok_patron", "王芳", "adult", "active", 700, 0),
    ("child_patron", "张梓涵", "child", "active", 900, 0),
    ("elderly_patron", "刘秀英", "elderly", "active", 500, 0),
    ("student_patron", "陈浩宇", "student", "active", 300, 0),
    ("expired_patron", "赵建军", "adult", "active", -25, 0),
    ("blocked_patron", "孙丽", "adult", "active", 400, 0),
    ("fines_patron", "周强", "adult", "active", 400, 1250),
    ("small_fines_patron", "吴晓燕", "adult", "active", 400, 800),
    ("lost_card_patron", "吴敏", "adult", "lost_card", 400, 0),
    ("max_loans_patron", "郑伟", "adult", "active", 600, 0),
    ("borrower_patron", "黄晓燕", "adult", "active", 600, 0),
    ("ready_hold_patron", "林静", "adult", "active", 600, 0),
    ("hold_patron", "何磊", "adult", "active", 600, 0),
    ("rare_name_patron", "欧阳𡒄", "adult", "active", 600, 0),
    ("latin_name_patron", "Emily Wang", "adult", "active", 600, 0),
)

# Items: (key, title (from sample_data.TITLES, which fixes author, call number and loan
# type), status, owning branch number, current branch number, transit_to number).
# Keys starting with "_" are rows without a name of their own.
_EDGE_ITEMS = (
    ("available_item", "活着", "available", 2, 2, None),
    ("available_item_2", "平凡的世界", "available", 2, 2, None),
    ("available_item_3", "围城", "available", 2, 2, None),
    ("other_branch_item", "白鹿原", "available", 1, 1, None),
    ("reference_item", "现代汉语词典（第7版）", "available", 2, 2, None),
    ("withdrawn_item", "子夜", "withdrawn", 2, 2, None),
    ("lost_item", "家", "lost", 2, 2, None),
    ("on_loan_item", "边城", "on_loan", 2, 2, None),
    ("overdue_item", "骆驼祥子", "on_loan", 2, 2, None),
    ("renewed_item", "文化苦旅", "on_loan", 2, 2, None),
    ("held_item", "三体", "available", 2, 2, None),
    ("ready_hold_item", "乡土中国", "on_hold_shelf", 2, 2, None),
    ("children_item", "草房子", "available", 2, 2, None),
    ("new_book_item", "宝水", "available", 2, 2, None),
    ("rare_title_item", "南汉高祖刘䶮", "available", 2, 2, None),
    ("latin_title_item", "The Old Man and the Sea", "available", 2, 2, None),
    ("in_transit_item", "人世间", "in_transit", 1, 2, 1),
    *((f"_max_loans_{n}", title, "on_loan", 2, 2, None) for n, title in enumerate(
        ("红楼梦", "三国演义", "水浒传", "西游记", "呐喊", "雷雨", "长恨歌", "繁花"))),
)

# Open loans: (patron key, item key, loaned (days from SAMPLE_TODAY), due, renewals).
# Adult loans of normal books run 30 days with one renewal (sample_data.LOAN_RULES).
_EDGE_LOANS = (
    ("borrower_patron", "on_loan_item", -10, 20, 0),
    ("borrower_patron", "overdue_item", -45, -15, 0),
    ("borrower_patron", "renewed_item", -40, 20, 1),
    *(("max_loans_patron", f"_max_loans_{n}", -5, 25, 0) for n in range(8)),
)

_READY_LOCKER = "A03"
# Holds: (key, patron key, item key, status, locker, placed, ready (days), expires).
_EDGE_HOLDS = (
    ("waiting_hold", "hold_patron", "held_item", "waiting", None, -3, None, None),
    ("ready_hold", "ready_hold_patron", "ready_hold_item", "ready", _READY_LOCKER, -6, -2, 5),
)

_BRANCH = {1: CENTRAL, 2: SPACE}
_PATRON_ID = {p[0]: n for n, p in enumerate(_EDGE_PATRONS, start=1)}
_ITEM_ID = {i[0]: n for n, i in enumerate(_EDGE_ITEMS, start=1)}


def _edge_barcodes() -> dict[str, str]:
    serial = {1: 0, 2: 0}
    out = {}
    for key, _title, _status, owner, _current, _to in _EDGE_ITEMS:
        serial[owner] += 1
        out[key] = sample_plan.barcode(owner, serial[owner])
    return out


_BARCODE = _edge_barcodes()


def _edge_cases() -> Mapping[str, str | int]:
    out: dict[str, str | int] = {key: card(n) for key, n in _PATRON_ID.items()}
    out.update({k: b for k, b in _BARCODE.items() if not k.startswith("_")})
    out.update({h[0]: n for n, h in enumerate(_EDGE_HOLDS, start=1)})
    out["ready_hold_locker"] = _READY_LOCKER
    return MappingProxyType(out)


EDGE_CASES: Mapping[str, str | int] = _edge_cases()
"""Named rows every sample contains. Patron keys (``*_patron``) map to card numbers, item
keys (``*_item``, ``*_item_2``...) to barcodes, ``waiting_hold`` and ``ready_hold`` to hold
ids (int), ``ready_hold_locker`` to the locker slot of the ready hold."""


def _edge_patron_rows() -> Iterable[tuple]:
    loans = {k: sum(1 for loan in _EDGE_LOANS if loan[0] == k) for k in _PATRON_ID}
    for n, (key, name, ptype, status, expires, fines) in enumerate(_EDGE_PATRONS, start=1):
        yield (n, card(n), name, ptype, SPACE, status, day(expires), fines, loans[key])


def _edge_item_rows() -> Iterable[tuple]:
    for n, (key, title, status, owner, current, to) in enumerate(_EDGE_ITEMS, start=1):
        t = sample_plan.TITLE_INDEX[title]
        _title, author, _cls, _cat = data.TITLES[t]
        yield (n, _BARCODE[key], title, author, sample_plan.CALL_NUMBER[t], _BRANCH[owner],
               _BRANCH[current], sample_plan.LOAN_TYPE[t], status, _BRANCH.get(to))


def _edge_loan_rows() -> Iterable[tuple]:
    for n, (patron, item, loaned, due, renewals) in enumerate(_EDGE_LOANS, start=1):
        yield (n, _ITEM_ID[item], _PATRON_ID[patron], SPACE, stamp(loaned, 600 + n),
               day(due), renewals)


def _edge_hold_rows() -> Iterable[tuple]:
    for n, (_key, patron, item, status, locker, placed, ready, expires) in enumerate(
            _EDGE_HOLDS, start=1):
        yield (n, _PATRON_ID[patron], _ITEM_ID[item], SPACE, status, locker,
               stamp(placed, 630), None if ready is None else stamp(ready, 500),
               None if expires is None else day(expires))


def _edge_block_rows() -> Iterable[tuple]:
    reason, note = data.BLOCK_REASONS[0]
    yield (1, _PATRON_ID["blocked_patron"], reason, note, stamp(-20, 600))


# -- scales ------------------------------------------------------------------------------

def scale_for(size: str | Scale, **custom: int) -> Scale:
    """The :class:`Scale` for ``size``: ``"small"``, ``"county"``, a :class:`Scale`, or
    ``"custom"`` with ``patrons``, ``items``, ``loans`` and optionally ``holds``, ``blocks``
    (default: a tenth of the loans, one patron in 200) and the layout fields of
    :class:`Scale` (default: the county's service points).

    Raises ``ValueError`` for an unknown size or a scale too small for the edge cases or
    too crowded to draw (more than 0.6 loans per patron or 0.25 per item).
    """
    if isinstance(size, Scale):
        scale = size
    elif size == "custom":
        missing = {"patrons", "items", "loans"} - custom.keys()
        if missing:
            raise ValueError(f"custom sample needs {', '.join(sorted(missing))}")
        county = SCALES["county"]
        scale = replace(county, name="custom", holds=max(2, custom["loans"] // 10),
                        blocks=max(1, custom["patrons"] // 200))
        try:
            scale = replace(scale, **custom)
        except TypeError as exc:
            raise ValueError(f"custom sample: {exc}") from None
    elif size in SCALES:
        if custom:
            raise ValueError(f"sample size {size!r} takes no counts; use 'custom'")
        scale = SCALES[size]
    else:
        raise ValueError(f"unknown sample size {size!r}: choose small, county or custom")
    _check(scale)
    return scale


def _check(s: Scale) -> None:
    need = (("patrons", len(_EDGE_PATRONS) + 1), ("items", len(_EDGE_ITEMS) + 1),
            ("loans", len(_EDGE_LOANS)), ("holds", len(_EDGE_HOLDS)), ("blocks", 1))
    for name, least in need:
        if getattr(s, name) < least:
            raise ValueError(f"sample {s.name}: {name} must be at least {least}")
    if s.loans > 0.6 * s.patrons or s.loans + s.holds > 0.25 * s.items:
        raise ValueError(f"sample {s.name}: too many loans and holds for its patrons and items")
    limits = (("reading_spaces", len(data.READING_SPACES)), ("townships", len(data.TOWNSHIPS)),
              ("villages_per_township", len(data.VILLAGES)), ("vans", 99))
    for name, most in limits:
        if not 0 <= getattr(s, name) <= most:
            raise ValueError(f"sample {s.name}: {name} must be between 0 and {most}")


# -- loading -----------------------------------------------------------------------------

_DATA_TABLES = ("branches", "patrons", "items", "loans", "holds", "loan_rules", "card_ranges")


def _refuse_non_empty(cache: Cache) -> None:
    with cache.snapshot() as conn:
        for table in _DATA_TABLES:
            if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:
                raise CacheNotEmpty(
                    f"{cache.path}: table {table} already holds rows; a sample is loaded only "
                    "into a new, empty cache", path=str(cache.path), table=table)


def _reference_tables(plan: sample_plan.Plan) -> Iterable[tuple[str, list[dict]]]:
    """The small tables, as dicts for sqlite-utils."""
    yield "branches", [
        {"isil": b.isil, "name": b.name, "kind": b.kind, "parent_isil": b.parent,
         "closed_weekdays": b.closed_weekdays} for b in plan.branches]
    yield "branch_closed_days", [
        {"isil": b.isil, "day": d} for b in plan.branches for d in sample_plan.closed_days(b)]
    yield "loan_rules", [
        {"patron_type": p, "loan_type": t, "loan_days": days, "max_renewals": renewals,
         "max_loans": most} for p, t, days, renewals, most in data.LOAN_RULES]
    yield "staff", [
        {"card_number": c, "name": name, "role": role, "pin_hash": pin_hash, "active": 1}
        for c, name, role, pin_hash in data.STAFF]
    first, last = sample_plan.CARD_RANGE
    # The range the hub leased to this device for cards issued offline.
    yield "card_ranges", [
        {"id": 1, "prefix": sample_plan.CARD_PREFIX, "first_number": first, "last_number": last,
         "next_number": first, "leased_at": stamp(-5, 540), "expires_on": day(360)}]


_BulkTable = tuple[str, tuple[str, ...], Iterable[tuple], int]


def _bulk_tables(plan: sample_plan.Plan) -> Iterable[_BulkTable]:
    """(table, columns, rows, planned count): edge-case rows first, then the random ones."""
    s = plan.scale
    chain = itertools.chain
    yield ("patrons", rows.PATRON_COLUMNS, chain(_edge_patron_rows(), rows.patron_rows(plan)),
           s.patrons)
    yield ("patron_blocks", rows.BLOCK_COLUMNS,
           chain(_edge_block_rows(), rows.block_rows(plan)), s.blocks)
    yield "items", rows.ITEM_COLUMNS, chain(_edge_item_rows(), rows.item_rows(plan)), s.items
    yield "loans", rows.LOAN_COLUMNS, chain(_edge_loan_rows(), rows.loan_rows(plan)), s.loans
    yield "holds", rows.HOLD_COLUMNS, chain(_edge_hold_rows(), rows.hold_rows(plan)), s.holds


def load(
    cache: Cache,
    size: str | Scale = "small",
    *,
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
    **custom: int,
) -> SampleInfo:
    """Fill an empty, migrated cache (``sync.db.create``) with the sample of ``size``.

    ``size`` is ``"small"`` (2 branches, 200 patrons, 2,000 items), ``"county"`` (250
    service points, 500,000 patrons, 2,000,000 items, 200,000 open loans), a
    :class:`Scale`, or ``"custom"`` with keyword counts (see :func:`scale_for`).

    ``progress(table, rows_done, rows_total)``, if given, is called after every committed
    batch (and so at least once per table, last with ``rows_done == rows_total``); it runs
    between transactions, so it may take its time or raise to abort (rows committed so far
    stay).

    Rows are streamed from generators and committed every ``batch_rows`` rows; peak memory
    stays far below the sample's size. A crash loses at most one batch but leaves a partial
    sample, which a second ``load`` refuses: delete the file and start again.

    Raises :class:`CacheNotEmpty` if the cache already holds branches, patrons, items,
    loans, holds, rules or card ranges; ``ValueError`` for a bad size; the
    :mod:`sync.errors` classes for database trouble (disk full, read-only...).
    """
    scale = scale_for(size, **custom)
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    _refuse_non_empty(cache)
    plan = sample_plan.Plan(
        scale, edge_patrons=len(_EDGE_PATRONS),
        edge_items=[(i[3], 0) for i in _EDGE_ITEMS], edge_loans=len(_EDGE_LOANS),
        edge_holds=len(_EDGE_HOLDS), edge_blocks=1)
    counts: dict[str, int] = {}
    with translated(cache.path):
        for table, records in _reference_tables(plan):
            # Small tables: sqlite-utils is plenty fast here and reads better.
            with cache.db.atomic():
                cache.db[table].insert_all(records)
            counts[table] = len(records)
            if progress:
                progress(table, len(records), len(records))
        for table, columns, source, total in _bulk_tables(plan):
            counts[table] = _insert(cache, table, columns, source, total, progress, batch_rows)
        with cache.db.atomic():
            cache.db["local_state"].insert({"key": "sample", "value": scale.name}, replace=True)
    return SampleInfo(scale, MappingProxyType(counts), EDGE_CASES)


def _insert(cache: Cache, table: str, columns: tuple[str, ...], source: Iterable[tuple],
            total: int, progress: Progress | None, batch_rows: int) -> int:
    # Big tables go through executemany on tuples, not sqlite-utils' insert_all: measured
    # on the items table (200,000 rows, 2-core AMD EPYC, SQLite 3.40), insert_all made
    # 80,000 rows/s and executemany 142,000 rows/s, against 188,000 rows/s for the sqlite3
    # shell's .import; insert_all alone would miss the benchmark's target (half the shell's
    # speed) before a single row is generated. Still one atomic() per batch.
    sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
           f"VALUES ({', '.join('?' * len(columns))})")
    done = 0
    rows_iter = iter(source)
    while batch := list(itertools.islice(rows_iter, batch_rows)):
        with cache.db.atomic():
            cache.conn.executemany(sql, batch)
        done += len(batch)
        if progress:
            progress(table, done, total)
    if done != total:
        raise AssertionError(f"sample {table}: generated {done} rows, planned {total}")
    return done


# Every date a sample writes, by table; branch holidays (branch_closed_days) are real dates
# and stay where they are.
_DATED = {
    "patrons": ("expires_on",),
    "patron_blocks": ("created_at",),
    "loans": ("loaned_at", "due_date", "returned_at"),
    "holds": ("placed_at", "ready_at", "pickup_expires_on"),
    "card_ranges": ("leased_at", "expires_on"),
}


def move_to(cache: Cache, today: date) -> int:
    """Shift every date of a loaded sample by ``today - SAMPLE_TODAY`` days, so that on
    ``today`` each edge case means what it meant on :data:`SAMPLE_TODAY` (an expired card is
    still expired, a ready hold still waits in its locker). For the demo on a later day;
    tests keep the fixed date. Returns the shift in days; one transaction."""
    shift = (today - SAMPLE_TODAY).days
    if shift == 0:
        return 0
    with cache.transaction() as conn:
        for table, columns in _DATED.items():
            for col in columns:
                # Dates are 'YYYY-MM-DD', times 'YYYY-MM-DDTHH:MM:SS+08:00': move the date
                # part, keep the rest.
                conn.execute(
                    f"UPDATE {table} SET {col} = date(substr({col}, 1, 10), ?)"
                    f" || substr({col}, 11) WHERE {col} IS NOT NULL",
                    (f"{shift:+d} days",),
                )
    return shift
