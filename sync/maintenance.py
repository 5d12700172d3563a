"""Checks and backups of the cache, for the technician's ``kiosk db`` commands."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sync import errors
from sync.db import Cache, translated
from sync.files import fsync_dir


@dataclass
class CheckReport:
    """What ``kiosk db check`` found. ``ok`` only when every list is empty."""

    integrity: list[str] = field(default_factory=list)
    foreign_keys: list[str] = field(default_factory=list)
    invariants: list[str] = field(default_factory=list)
    full: bool = False

    @property
    def ok(self) -> bool:
        return not (self.integrity or self.foreign_keys or self.invariants)

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok, "full": self.full, "integrity": self.integrity,
            "foreign_keys": self.foreign_keys, "invariants": self.invariants,
        }


_INVARIANTS = {
    "loan_count": """
        SELECT p.card_number || ': loan_count ' || p.loan_count || ', open loans ' || count(l.id)
        FROM patrons p LEFT JOIN loans l ON l.patron_id = p.id AND l.returned_at IS NULL
        GROUP BY p.id HAVING p.loan_count != count(l.id) LIMIT 20""",
    "item_status": """
        SELECT i.barcode || ': open loan but status ' || i.status
        FROM loans l JOIN items i ON i.id = l.item_id
        WHERE l.returned_at IS NULL AND i.status != 'on_loan' LIMIT 20""",
    "outbox_seq": """
        SELECT device_id || ': ' || count(*) || ' events, seq ' || min(seq) || '..' || max(seq)
        FROM outbox GROUP BY device_id HAVING max(seq) - min(seq) + 1 != count(*)""",
}


def check(cache: Cache, full: bool = False) -> CheckReport:
    """SQLite's own check (quick, or full ``integrity_check``), the foreign keys, and the
    cache's invariants (loan counts, item status of open loans, gap-free outbox seq)."""
    report = CheckReport(full=full)
    with translated(cache.path):
        pragma = "integrity_check" if full else "quick_check"
        rows = [r[0] for r in cache.conn.execute(f"PRAGMA {pragma}")]
        if rows != ["ok"]:
            report.integrity = rows
            return report
        report.foreign_keys = [
            f"{table} row {rowid} -> {parent}"
            for table, rowid, parent, _ in cache.conn.execute("PRAGMA foreign_key_check")
        ]
        for name, sql in _INVARIANTS.items():
            report.invariants += [f"{name}: {r[0]}" for r in cache.conn.execute(sql)]
    return report


def backup(cache: Cache, target: str | os.PathLike[str]) -> Path:
    """Write a consistent copy of the cache to ``target`` while it stays in use.

    ``VACUUM INTO`` writes a compact copy from one read transaction; it goes to a temporary
    name first and is renamed only once complete and checked, so a full disk or a power cut
    never leaves a half backup under the real name. An existing ``target`` is never
    overwritten.
    """
    target = Path(target)
    if target.exists():
        raise errors.BackupExists(f"{target}: already exists", path=str(target))
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        with translated(target):
            cache.conn.execute("VACUUM INTO ?", (str(partial),))
        with Cache.open(partial, check_schema=False) as copy:
            copy.conn.execute("PRAGMA journal_mode = DELETE")
            result = copy.conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise errors.DatabaseCorrupt(f"{partial}: backup check failed: {result}",
                                         path=str(partial))
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, target)
        fsync_dir(target.parent)
    finally:
        for leftover in (partial, *(partial.with_name(partial.name + s)
                                    for s in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
    return target
