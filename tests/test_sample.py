"""The sample county: deterministic, consistent, and its edge cases are what they say."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sync import db, sample
from sync.cache_views import loan_rule
from sync.circulation import Circulation, Identity
from sync.policy import Policy
from sync.rules import Flag, Reason

E = sample.EDGE_CASES
SHANGHAI = ZoneInfo("Asia/Shanghai")
REQUIRED_KEYS = {
    "ok_patron", "child_patron", "elderly_patron", "expired_patron", "blocked_patron",
    "fines_patron", "lost_card_patron", "max_loans_patron", "borrower_patron",
    "available_item", "available_item_2", "available_item_3", "other_branch_item",
    "reference_item", "withdrawn_item", "lost_item", "on_loan_item", "overdue_item",
    "held_item", "ready_hold", "ready_hold_patron", "ready_hold_item", "children_item",
}


def table_digest(conn: sqlite3.Connection) -> dict[str, str]:
    """A hash of every table's rows in primary-key order (the migration record, which
    carries the wall-clock time it was applied, left out)."""
    out = {}
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name != '_migrations' ORDER BY name")]
    for table in tables:
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        pk = [c[1] for c in sorted(info, key=lambda c: c[5]) if c[5]] or ["rowid"]
        h = hashlib.sha256()
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY {', '.join(pk)}"):
            h.update(repr(row).encode())
        out[table] = h.hexdigest()
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small sample, loaded once; tests that change it use their own copy."""
    path = tmp_path_factory.mktemp("small") / "kiosk.db"
    with db.create(path) as cache:
        sample.load(cache, "small")
    return path


@pytest.fixture
def conn(small: Path):
    c = sqlite3.connect(f"file:{small}?mode=ro", uri=True)
    yield c
    c.close()


def _patron(conn: sqlite3.Connection, key: str) -> dict:
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM patrons WHERE card_number = ?", (E[key],)).fetchone()
    conn.row_factory = None
    assert row is not None, key
    return dict(row)


def _item(conn: sqlite3.Connection, key: str) -> dict:
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM items WHERE barcode = ?", (E[key],)).fetchone()
    conn.row_factory = None
    assert row is not None, key
    return dict(row)


def check_invariants(conn: sqlite3.Connection, *, as_loaded: bool = True) -> None:
    def none(sql: str) -> None:
        assert conn.execute(sql).fetchall() == [], sql

    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # A patron's loan_count is exactly their open loans.
    none("SELECT id FROM patrons p WHERE loan_count != (SELECT count(*) FROM loans l"
         " WHERE l.patron_id = p.id AND l.returned_at IS NULL)")
    none("SELECT item_id FROM loans WHERE returned_at IS NULL GROUP BY item_id"
         " HAVING count(*) > 1")
    # An item is on loan exactly when it has an open loan.
    none("SELECT l.id FROM loans l JOIN items i ON i.id = l.item_id"
         " WHERE l.returned_at IS NULL AND i.status != 'on_loan'")
    none("SELECT id FROM items i WHERE status = 'on_loan' AND NOT EXISTS"
         " (SELECT 1 FROM loans l WHERE l.item_id = i.id AND l.returned_at IS NULL)")
    none("SELECT id FROM loans WHERE due_date < substr(loaned_at, 1, 10)")
    if as_loaded:
        # Loans from the hub: open, and made by no transaction of this device.
        none("SELECT id FROM loans WHERE returned_at IS NOT NULL OR checkout_txn IS NOT NULL")
    none("SELECT l.id FROM loans l JOIN items i ON i.id = l.item_id"
         " WHERE i.loan_type = 'reference'")
    # Holds agree with their items.
    none("SELECT h.id FROM holds h JOIN items i ON i.id = h.item_id WHERE h.status = 'ready'"
         " AND (i.status != 'on_hold_shelf' OR i.current_branch != h.pickup_branch"
         "      OR h.pickup_expires_on IS NULL)")
    none("SELECT h.id FROM holds h JOIN items i ON i.id = h.item_id"
         " WHERE h.status = 'in_transit' AND (i.status != 'in_transit'"
         "      OR i.transit_to != h.pickup_branch)")
    none("SELECT pickup_branch, locker_slot FROM holds WHERE status = 'ready'"
         " AND locker_slot IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1")
    none("SELECT id FROM items WHERE status = 'in_transit' AND"
         " (transit_to IS NULL OR transit_to = current_branch)")
    # Identifiers: 12-digit cards, 14-digit barcodes led by the owning branch's number.
    none("SELECT id FROM patrons WHERE length(card_number) != 12"
         " OR card_number GLOB '*[^0-9]*'")
    none("SELECT id FROM items WHERE length(barcode) != 14 OR barcode GLOB '*[^0-9]*'"
         " OR substr(barcode, 1, 4) != substr(owning_branch, -4)")
    # Nobody holds more than their rule allows.
    none("SELECT p.id FROM patrons p JOIN loan_rules r ON r.patron_type = p.patron_type"
         " AND r.loan_type = 'normal' WHERE p.loan_count > r.max_loans")


def test_same_size_gives_identical_rows(tmp_path: Path) -> None:
    digests = []
    for n in range(2):
        with db.create(tmp_path / f"{n}.db") as cache:
            sample.load(cache, "small")
            digests.append(table_digest(cache.conn))
    assert digests[0] == digests[1]
    assert digests[0]["patrons"] != digests[0]["items"]


def test_rows_do_not_depend_on_the_process(tmp_path: Path, small: Path) -> None:
    # String hashing is salted per process; the sample must not notice.
    code = (
        "import sys; from sync import db, sample; c = db.create(sys.argv[1]);"
        " sample.load(c, 'small'); c.close()"
    )
    path = tmp_path / "other.db"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env)
    with sqlite3.connect(path) as a, sqlite3.connect(small) as b:
        assert table_digest(a) == table_digest(b)


def test_small_sample_shape(small: Path, conn: sqlite3.Connection) -> None:
    counts = dict(conn.execute(
        "SELECT 'patrons', count(*) FROM patrons UNION ALL SELECT 'items', count(*) FROM items"
        " UNION ALL SELECT 'branches', count(*) FROM branches"))
    assert counts == {"patrons": 200, "items": 2000, "branches": 2}
    kinds = dict(conn.execute("SELECT isil, kind FROM branches"))
    assert kinds == {"CN-431121-0001": "central", "CN-431121-0002": "24h-space"}
    assert conn.execute("SELECT closed_weekdays FROM branches WHERE isil = 'CN-431121-0001'"
                        ).fetchone() == ("1",)
    assert conn.execute("SELECT count(*) FROM branch_closed_days WHERE isil ="
                        " 'CN-431121-0002'").fetchone() == (0,)
    assert conn.execute("SELECT value FROM local_state WHERE key = 'sample'").fetchone() == (
        "small",)
    assert conn.execute("SELECT prefix, first_number, last_number FROM card_ranges"
                        ).fetchall() == [("4311", 900000, 909999)]
    types = {r[0] for r in conn.execute("SELECT DISTINCT patron_type FROM patrons")}
    assert types == {"adult", "child", "elderly", "student"}
    assert conn.execute("SELECT count(*) FROM loan_rules WHERE patron_type = '*'"
                        " AND loan_type = '*'").fetchone() == (1,)


def test_small_sample_invariants(conn: sqlite3.Connection) -> None:
    check_invariants(conn)


def test_edge_cases_exist_and_mean_what_they_say(conn: sqlite3.Connection) -> None:
    assert set(E) >= REQUIRED_KEYS
    today = sample.SAMPLE_TODAY.isoformat()
    ok = _patron(conn, "ok_patron")
    assert (ok["patron_type"], ok["status"], ok["loan_count"], ok["fines_owed_cents"]) == (
        "adult", "active", 0, 0)
    assert ok["expires_on"] > today
    assert _patron(conn, "child_patron")["patron_type"] == "child"
    assert _patron(conn, "elderly_patron")["patron_type"] == "elderly"
    assert _patron(conn, "expired_patron")["expires_on"] < today
    blocked = _patron(conn, "blocked_patron")
    assert conn.execute("SELECT count(*) FROM patron_blocks WHERE patron_id = ?",
                        (blocked["id"],)).fetchone()[0] == 1
    assert _patron(conn, "fines_patron")["fines_owed_cents"] > 1000
    assert 0 < _patron(conn, "small_fines_patron")["fines_owed_cents"] <= 1000
    assert _patron(conn, "lost_card_patron")["status"] == "lost_card"
    most = _patron(conn, "max_loans_patron")
    assert most["loan_count"] == loan_rule(conn, "adult", "normal").max_loans
    borrower = _patron(conn, "borrower_patron")
    loans = conn.execute("SELECT i.barcode, l.due_date, l.renewals FROM loans l JOIN items i"
                         " ON i.id = l.item_id WHERE l.patron_id = ?", (borrower["id"],)
                         ).fetchall()
    assert borrower["loan_count"] == len(loans) >= 2
    assert sum(1 for _b, due, _r in loans if due < today) == 1
    by_barcode = {b: (due, r) for b, due, r in loans}
    assert by_barcode[E["overdue_item"]][0] < today <= by_barcode[E["on_loan_item"]][0]
    assert by_barcode[E["renewed_item"]][1] == loan_rule(conn, "adult", "normal").max_renewals

    for key in ("available_item", "available_item_2", "available_item_3", "held_item",
                "children_item", "new_book_item", "rare_title_item", "latin_title_item"):
        item = _item(conn, key)
        assert (item["status"], item["owning_branch"]) == ("available", "CN-431121-0002"), key
    other = _item(conn, "other_branch_item")
    assert (other["status"], other["owning_branch"]) == ("available", "CN-431121-0001")
    assert _item(conn, "reference_item")["loan_type"] == "reference"
    assert loan_rule(conn, "adult", "reference").loan_days == 0
    assert _item(conn, "children_item")["loan_type"] == "children"
    assert _item(conn, "new_book_item")["loan_type"] == "new_book"
    assert _item(conn, "withdrawn_item")["status"] == "withdrawn"
    assert _item(conn, "lost_item")["status"] == "lost"
    assert _item(conn, "on_loan_item")["status"] == "on_loan"

    held = _item(conn, "held_item")
    holds = conn.execute("SELECT id, patron_id, status FROM holds WHERE item_id = ?",
                         (held["id"],)).fetchall()
    assert holds == [(E["waiting_hold"], _patron(conn, "hold_patron")["id"], "waiting")]
    ready = conn.execute(
        "SELECT patron_id, item_id, pickup_branch, status, locker_slot, pickup_expires_on"
        " FROM holds WHERE id = ?", (E["ready_hold"],)).fetchone()
    assert ready[:5] == (_patron(conn, "ready_hold_patron")["id"],
                         _item(conn, "ready_hold_item")["id"], "CN-431121-0002", "ready",
                         E["ready_hold_locker"])
    assert ready[5] >= today
    # Random rows never touch the edge cases.
    edge_patrons = [v for k, v in E.items() if k.endswith("_patron")]
    marks = ",".join("?" * len(edge_patrons))
    assert conn.execute(f"SELECT count(*) FROM holds h JOIN patrons p ON p.id = h.patron_id"
                        f" WHERE p.card_number IN ({marks})", edge_patrons).fetchone()[0] == 2


class FixedClock:
    """Wall time fixed at noon of the sample's day in Shanghai."""

    def __init__(self) -> None:
        noon = datetime.combine(sample.SAMPLE_TODAY, dtime(12), SHANGHAI)
        self._wall = int(noon.timestamp()) * 1_000_000_000

    def wall_ns(self) -> int:
        return self._wall

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def boot_id(self) -> str:
        return "test-boot"

    def synchronised(self) -> bool:
        return True


def test_edge_cases_drive_the_circulation_rules(tmp_path: Path, small: Path) -> None:
    """What the demo shows at the simulated branch on the sample's day."""
    path = tmp_path / "copy.db"
    with sqlite3.connect(small) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    with db.Cache.open(path) as cache:
        circ = Circulation(cache, Identity("test-01", "CN-431121-0002"), Policy(),
                           FixedClock())
        refusals = {
            ("expired_patron", "available_item"): Reason.PATRON_EXPIRED,
            ("blocked_patron", "available_item"): Reason.PATRON_BLOCKED,
            ("fines_patron", "available_item"): Reason.FINES_OVER_LIMIT,
            ("lost_card_patron", "available_item"): Reason.CARD_REPORTED_LOST,
            ("max_loans_patron", "available_item"): Reason.TOO_MANY_LOANS,
            ("ok_patron", "reference_item"): Reason.ITEM_NOT_FOR_LOAN,
            ("ok_patron", "withdrawn_item"): Reason.ITEM_NOT_FOR_LOAN,
            ("ok_patron", "held_item"): Reason.ITEM_ON_HOLD_FOR_OTHER,
            ("ok_patron", "on_loan_item"): Reason.ON_LOAN_TO_OTHER,
        }
        for (patron, item), reason in refusals.items():
            outcome = circ.checkout(E[patron], E[item])
            assert (outcome.allowed, outcome.decision.reason) == (False, reason), (patron, item)
        for patron, item in (("ok_patron", "available_item"), ("child_patron", "children_item"),
                             ("small_fines_patron", "available_item_2"),
                             ("hold_patron", "held_item"), ("rare_name_patron", "lost_item")):
            assert circ.checkout(E[patron], E[item]).allowed, (patron, item)
        renewed = circ.renew(E["borrower_patron"], E["renewed_item"])
        assert renewed.decision.reason is Reason.RENEWAL_LIMIT
        assert circ.renew(E["borrower_patron"], E["on_loan_item"]).allowed
        back = circ.checkin(E["overdue_item"])
        assert Flag.OVERDUE in back.decision.flags
        ready = circ.ready_holds(E["ready_hold_patron"])
        assert [(h["hold_id"], h["locker_slot"]) for h in ready] == [
            (E["ready_hold"], E["ready_hold_locker"])]
        picked = circ.pickup(E["ready_hold_patron"], E["ready_hold"])
        assert picked.allowed and picked.decision.locker_slot == "A03"
        check_invariants(cache.conn, as_loaded=False)


def test_all_text_encodes_in_gb18030_and_some_is_outside_gb2312(
        conn: sqlite3.Connection) -> None:
    texts = [r[0] for r in conn.execute(
        "SELECT name FROM patrons UNION ALL SELECT title FROM items"
        " UNION ALL SELECT author FROM items UNION ALL SELECT name FROM branches"
        " UNION ALL SELECT note FROM patron_blocks")]
    outside = []
    for text in texts:
        assert text.encode("gb18030").decode("gb18030") == text
        try:
            text.encode("gb2312")
        except UnicodeEncodeError:
            outside.append(text)
    assert outside
    # Some need GB18030's four-byte sequences (CJK Extension B, beyond the BMP).
    assert any(any(ord(ch) > 0xFFFF for ch in text) for text in outside)
    assert any(text.isascii() for text in texts)  # Latin-script names and titles
    assert _patron(conn, "rare_name_patron")["name"].encode("gb18030")
    with pytest.raises(UnicodeEncodeError):
        _item(conn, "rare_title_item")["title"].encode("gb2312")


def test_medium_custom_scale_is_consistent(tmp_path: Path) -> None:
    seen: dict[str, list[tuple[int, int]]] = {}

    def progress(table: str, done: int, total: int) -> None:
        seen.setdefault(table, []).append((done, total))

    with db.create(tmp_path / "medium.db") as cache:
        info = sample.load(cache, "custom", patrons=20_000, items=80_000, loans=8_000,
                           progress=progress)
        check_invariants(cache.conn)
        counts = dict(cache.conn.execute(
            "SELECT 'patrons', count(*) FROM patrons UNION ALL SELECT 'items', count(*)"
            " FROM items UNION ALL SELECT 'loans', count(*) FROM loans"))
        kinds = {r[0] for r in cache.conn.execute("SELECT DISTINCT kind FROM branches")}
        overdue = cache.conn.execute(
            "SELECT count(*) FROM loans WHERE due_date < ?",
            (sample.SAMPLE_TODAY.isoformat(),)).fetchone()[0]
    assert counts == {"patrons": 20_000, "items": 80_000, "loans": 8_000}
    assert info.counts["patrons"] == 20_000 and info.counts["holds"] == 800
    assert info.total_rows == sum(info.counts.values())
    assert kinds == {"central", "24h-space", "branch", "village", "van"}
    assert 0.05 < overdue / 8_000 < 0.25
    # Progress: every table, rising, ending at its total; big tables in several batches.
    assert set(seen) == set(info.counts)
    for table, calls in seen.items():
        assert calls[-1] == (info.counts[table], info.counts[table]), table
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(seen["items"]) == 80_000 // sample.BATCH_ROWS


def test_refuses_a_cache_that_holds_data(tmp_path: Path) -> None:
    with db.create(tmp_path / "k.db") as cache:
        sample.load(cache, "small")
        before = table_digest(cache.conn)
        with pytest.raises(sample.CacheNotEmpty, match="already holds rows"):
            sample.load(cache, "small")
        assert table_digest(cache.conn) == before
    with db.create(tmp_path / "real.db") as cache:
        with cache.transaction() as c:
            c.execute("INSERT INTO patrons (card_number, name, patron_type)"
                      " VALUES ('1', '真读者', 'adult')")
        with pytest.raises(sample.CacheNotEmpty) as err:
            sample.load(cache, "small")
        assert err.value.params["table"] == "patrons"
        assert isinstance(err.value, ValueError)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown sample size"):
        sample.scale_for("huge")
    with pytest.raises(ValueError, match="takes no counts"):
        sample.scale_for("small", patrons=100)
    with pytest.raises(ValueError, match="needs items, loans"):
        sample.scale_for("custom", patrons=100)
    with pytest.raises(ValueError, match="patrons must be at least"):
        sample.scale_for("custom", patrons=3, items=1000, loans=20)
    with pytest.raises(ValueError, match="too many loans"):
        sample.scale_for("custom", patrons=100, items=100_000, loans=90)
    with pytest.raises(ValueError, match="colour"):
        sample.scale_for("custom", patrons=100, items=1000, loans=20, colour=1)
    assert sample.scale_for("county") is sample.SCALES["county"]
    scale = sample.scale_for("custom", patrons=1000, items=4000, loans=200, townships=2)
    assert (scale.holds, scale.blocks, scale.townships, scale.vans) == (20, 5, 2, 3)


def test_move_to_keeps_every_edge_case_meaning_on_a_later_day(tmp_path):
    from datetime import timedelta

    from tests.conftest import ManualClock

    later = sample.SAMPLE_TODAY + timedelta(days=400)
    cache = db.create(tmp_path / "later.db")
    sample.load(cache, "small")
    assert sample.move_to(cache, later) == 400
    clock = ManualClock(datetime(later.year, later.month, later.day, 2, 0, tzinfo=UTC))
    circ = Circulation(cache, Identity("sim-01", sample.SPACE), Policy(), clock)
    cases = sample.EDGE_CASES
    assert circ.checkout(cases["ok_patron"], cases["available_item"]).allowed
    refused = circ.checkout(cases["expired_patron"], cases["available_item_2"])
    assert refused.decision.reason is Reason.PATRON_EXPIRED
    (ready,) = circ.ready_holds(cases["ready_hold_patron"])
    assert circ.pickup(cases["ready_hold_patron"], ready["hold_id"]).allowed
    overdue = circ.checkin(cases["overdue_item"])
    assert "overdue" in overdue.as_dict()["flags"]
    assert cache.conn.execute("SELECT count(*) FROM branch_closed_days WHERE day < '2027-01-01'"
                              ).fetchone()[0] > 0  # holidays stay on their real dates
    cache.close()
