"""Bad input for the cache: every case gives a clear error and leaves existing data intact."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sync import db, errors, maintenance, migrations
from sync.errors import CacheError
from sync.policy import OfflineLimits, Policy
from tests.conftest import NOON_ISH, ManualClock, build_world


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_AS_USER = """
import os, sys
from kiosk.cli import main
import importlib.metadata, importlib.readers, kiosk.commands, sync.circulation, sync.db
from kiosk.messages import available, texts
available(), texts("en"), texts("zh-CN")  # read everything main needs before dropping root
uid = int(sys.argv.pop(1))
os.setgroups([]); os.setgid(uid); os.setuid(uid)
sys.exit(main(sys.argv[1:]))
"""


def kiosk(*args: str, user: int | None = None, **kw):
    """Run the real ``kiosk`` command in a child process, optionally as another user (the
    child imports as root, then drops to ``user``, like a service started by systemd)."""
    prefix = ["-m", "kiosk"] if user is None else ["-c", _AS_USER, str(user)]
    return subprocess.run(
        [sys.executable, *prefix, "--lang", "en", *args], capture_output=True, text=True,
        timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()}, **kw,
    )


def test_missing_database_is_not_created(tmp_path):
    target = tmp_path / "nope.db"
    with pytest.raises(errors.DatabaseMissing):
        db.Cache.open(target)
    assert not target.exists()
    r = kiosk("--db", str(target), "circ", "checkin", "--item", "B1")
    assert r.returncode == 4
    assert "No database at" in r.stderr and "kiosk db init" in r.stderr
    assert not target.exists()


def test_missing_folder_for_new_database(tmp_path):
    with pytest.raises(errors.DatabaseMissing):
        db.create(tmp_path / "no-such-dir" / "k.db")


def test_garbage_file_is_reported_corrupt_and_left_alone(tmp_path):
    target = tmp_path / "k.db"
    target.write_bytes(b"this is not a database at all" * 200)
    before = digest(target)
    with pytest.raises(errors.DatabaseCorrupt) as info:
        db.Cache.open(target)
    assert isinstance(info.value, ValueError) and str(target) in str(info.value)
    r = kiosk("--db", str(target), "queue")
    assert r.returncode == 4 and "damaged" in r.stderr
    assert digest(target) == before


def test_damaged_pages_are_found_by_check_without_writing(world, tmp_path):
    world.patron("C1")
    for n in range(400):
        world.item(f"B{n:05d}")
    world.cache.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    world.cache.close()
    raw = bytearray(world.path.read_bytes())
    page = 4096
    # Scribble over the middle of the items table's pages, not the header page.
    for offset in range(page * 3 + 100, min(len(raw), page * 8), 97):
        raw[offset] = 0xFF
    world.path.write_bytes(bytes(raw))
    before = digest(world.path)
    r = kiosk("--db", str(world.path), "db", "check", "--full")
    assert r.returncode in (1, 4)
    assert ("Integrity problem" in r.stdout) or ("damaged" in r.stderr)
    assert digest(world.path) == before


def test_database_from_a_newer_release_is_refused_read_and_write(world):
    world.cache.conn.execute(
        "INSERT INTO _migrations (id, name, applied_at) VALUES (99, 'future', 'x')")
    world.cache.close()
    before = digest(world.path)
    with pytest.raises(errors.SchemaTooNew) as info:
        db.Cache.open(world.path)
    assert info.value.params["found"] == 99
    for args in (["queue"], ["db", "migrate"], ["circ", "checkin", "--item", "B"]):
        r = kiosk("--db", str(world.path), *args)
        assert r.returncode == 4 and "newer release" in r.stderr, args
    assert digest(world.path) == before


def test_a_sqlite_file_that_is_not_a_kiosk_cache(tmp_path):
    target = tmp_path / "other.db"
    con = sqlite3.connect(target)
    con.execute("CREATE TABLE photos (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(errors.NotInitialised):
        db.Cache.open(target)


def _extra(fail: bool) -> tuple[migrations.Migration, ...]:
    def add_column(d) -> None:
        d["patrons"].add_column("nickname", str)
        if fail:
            raise RuntimeError("migration failed half way")
    nxt = migrations.latest() + 1
    return (*migrations.MIGRATIONS, migrations.Migration(nxt, "nickname", add_column))


def test_outdated_schema_is_detected_and_migrated_with_its_record(world):
    plan = _extra(fail=False)
    with pytest.raises(errors.SchemaOutdated):
        migrations.require_current(world.cache.conn, world.path, plan)
    applied = migrations.migrate(world.cache.conn, world.path, plan)
    nxt = migrations.latest() + 1
    assert [m.id for m in applied] == [nxt]
    assert migrations.applied(world.cache.conn) == [*range(1, nxt + 1)]
    assert world.one("PRAGMA user_version") == nxt
    assert "nickname" in world.cache.db["patrons"].columns_dict
    assert migrations.migrate(world.cache.conn, world.path, plan) == []


def test_failing_migration_leaves_neither_change_nor_record(world):
    with pytest.raises(RuntimeError):
        migrations.migrate(world.cache.conn, world.path, _extra(fail=True))
    assert migrations.applied(world.cache.conn) == [*range(1, migrations.latest() + 1)]
    assert "nickname" not in world.cache.db["patrons"].columns_dict
    assert world.one("PRAGMA user_version") == migrations.latest()


def test_pragmas_of_an_open_cache(world):
    c = world.cache.conn
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        c.execute("INSERT INTO loans (item_id, patron_id, branch, loaned_at, due_date)"
                  " VALUES (999, 999, 'x', 'x', 'x')")


def test_the_database_refuses_a_second_open_loan_for_an_item(world):
    pid = world.patron("C1")
    iid = world.item("B1")
    ins = ("INSERT INTO loans (item_id, patron_id, branch, loaned_at, due_date)"
           " VALUES (?, ?, 'x', 'x', 'x')")
    world.sql(ins, iid, pid)
    with pytest.raises(sqlite3.IntegrityError):
        world.sql(ins, iid, pid)


@pytest.fixture
def shared_dir():
    """A folder another user can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="kiosk-ro-"))
    path.chmod(0o755)
    yield path
    for p in [path, *path.iterdir()]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(path)


def test_read_only_database_gives_clear_error_and_keeps_data(shared_dir):
    w = build_world(shared_dir / "kiosk.db", ManualClock(NOON_ISH))
    w.patron("C1")
    w.item("B1")
    w.circulation().checkout("C1", "B1")
    w.cache.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    w.cache.close()
    for leftover in shared_dir.glob("kiosk.db-*"):
        leftover.unlink()
    before = digest(w.path)
    w.path.chmod(0o444)
    shared_dir.chmod(0o555)
    # As root, permissions do not stop writes: act as an unprivileged user, as the
    # kiosk's service user would be.
    user = 65534 if os.geteuid() == 0 else None
    r = kiosk("--db", str(w.path), "circ", "checkin", "--item", "B1", user=user)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "cannot be written" in r.stderr
    assert digest(w.path) == before


def _fill_until_full(world, items: int = 4000) -> tuple[int, Exception]:
    """Lend items until the disk is full; return how many were reported done."""
    circ = world.circulation(Policy(offline=OfflineLimits(max_loans_per_patron=1 << 20)))
    for n in range(items):
        try:
            out = circ.checkout("C1", f"FILL{n:06d}")
        except CacheError as exc:
            return n, exc
        assert out.allowed
    raise AssertionError("the disk never filled")


def _stock(world, items: int = 4000) -> None:
    with world.cache.transaction() as conn:
        conn.execute("INSERT INTO patrons (card_number, name, patron_type) VALUES"
                     " ('C1', '读者', 'adult')")
        conn.execute("INSERT INTO loan_rules VALUES ('adult', '*', 30, 2, 100000, 0)")
        conn.executemany("INSERT INTO items (barcode, title) VALUES (?, ?)",
                         ((f"FILL{n:06d}", "县志") for n in range(items)))


def _assert_full_disk_lost_nothing(world, done: int) -> None:
    assert world.one("SELECT count(*) FROM loans") == done
    assert world.one("SELECT count(*) FROM outbox") == done
    assert world.one("SELECT loan_count FROM patrons WHERE card_number = 'C1'") == done
    assert world.one("PRAGMA integrity_check") == "ok"


def test_full_database_limit_rolls_back_the_change(world):
    _stock(world)
    pages = world.one("PRAGMA page_count")
    world.cache.conn.execute(f"PRAGMA max_page_count = {pages + 20}")
    done, exc = _fill_until_full(world)
    assert done > 0
    assert isinstance(exc, errors.DiskFull) and isinstance(exc, OSError)
    _assert_full_disk_lost_nothing(world, done)


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if not _mount_tmpfs(mnt, "2m"):
        pytest.skip("cannot mount a size-limited tmpfs here (needs root and mount rights)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_really_full_disk_gives_disk_full_and_loses_nothing(small_disk):
    w = build_world(small_disk / "kiosk.db", ManualClock(NOON_ISH))
    _stock(w)
    done, exc = _fill_until_full(w)
    assert done > 0
    assert isinstance(exc, errors.DiskFull), exc
    w.cache.close()
    with db.Cache.open(small_disk / "kiosk.db") as again:
        w.cache = again
        _assert_full_disk_lost_nothing(w, done)


def test_read_only_filesystem_gives_clear_error_and_keeps_data(small_disk):
    w = build_world(small_disk / "kiosk.db", ManualClock(NOON_ISH))
    w.patron("C1")
    w.item("B1")
    w.circulation().checkout("C1", "B1")
    w.cache.close()
    before = digest(w.path)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    r = kiosk("--db", str(w.path), "circ", "checkin", "--item", "B1")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "cannot be written" in r.stderr
    assert digest(w.path) == before


def test_backup_to_a_full_disk_leaves_no_partial_file(world, small_disk):
    with world.cache.transaction() as conn:
        conn.executemany("INSERT INTO items (barcode, title) VALUES (?, ?)",
                         ((f"B{n:06d}", f"县志{n}" * 150) for n in range(4000)))
    assert world.path.stat().st_size > 3_000_000 or world.one("PRAGMA page_count") > 750
    target = small_disk / "backup.db"
    with pytest.raises(errors.DiskFull):
        maintenance.backup(world.cache, target)
    assert list(small_disk.iterdir()) == []


def test_busy_database_times_out_with_a_clear_error(world):
    world.patron("C1")
    world.item("B1")
    other = sqlite3.connect(world.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        busy = db.Cache.open(world.path, busy_timeout_ms=100)
        w2 = type(world)(busy, world.clock, world.path)
        with pytest.raises(errors.DatabaseBusy):
            w2.circulation().checkout("C1", "B1")
        busy.close()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert world.one("SELECT count(*) FROM loans") == 0


def test_backup_is_a_checked_copy_and_never_overwrites(world, tmp_path):
    world.patron("C1")
    world.item("B1")
    world.circulation().checkout("C1", "B1")
    target = maintenance.backup(world.cache, tmp_path / "b.db")
    with db.Cache.open(target) as copy:
        assert copy.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1
    before = digest(target)
    with pytest.raises(errors.BackupExists):
        maintenance.backup(world.cache, target)
    assert digest(target) == before


def test_check_finds_broken_invariants(world):
    pid = world.patron("C1")
    world.item("B1")
    world.circulation().checkout("C1", "B1")
    assert maintenance.check(world.cache).ok
    world.sql("UPDATE patrons SET loan_count = 5 WHERE id = ?", pid)
    world.sql("UPDATE outbox SET seq = 7")
    world.sql("INSERT INTO outbox (device_id, seq, txn_id, kind, boot_id, mono_ns, wall_ns,"
              " clock_synced, hlc, payload) VALUES ('test-01', 9, 'x', 'k', 'b', 1, 1, 0, 1, '{}')")
    report = maintenance.check(world.cache)
    assert not report.ok
    joined = " ".join(report.invariants)
    assert "loan_count: C1" in joined and "outbox_seq: test-01" in joined


def test_db_init_refuses_existing_database(world):
    world.patron("C1")
    world.cache.close()
    before = digest(world.path)
    r = kiosk("--db", str(world.path), "db", "init")
    assert r.returncode == 4 and "already exists" in r.stderr
    assert digest(world.path) == before
