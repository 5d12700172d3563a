"""The hub's own tables, on top of the kiosk cache schema (:mod:`sync.migrations`).

The hub database is a kiosk cache (same circulation tables, created by ``sync.db.create``)
plus the tables below. They are applied like the cache's migrations: each migration in one
``BEGIN IMMEDIATE`` transaction together with its row in ``_hub_migrations``, so a power cut
leaves the hub schema before or after a migration, never half way. A database carrying a
hub migration this release does not know is refused.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import sqlite_utils

from sync import errors, migrations
from sync.migrations import Migration

_INITIAL = [
    # Small key/value facts: the epoch of this hub's change log (a new database gets a new
    # one, so cursors from another database are refused), the last change id, how far the
    # log was compacted, and the next card number to lease.
    """CREATE TABLE hub_state (
        key TEXT PRIMARY KEY,
        value ANY
    ) STRICT, WITHOUT ROWID""",
    """CREATE TABLE hub_devices (
        device_id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        created_at_ns INTEGER NOT NULL,
        stored_through_seq INTEGER NOT NULL DEFAULT 0,
        applied_through_seq INTEGER NOT NULL DEFAULT 0,
        last_seen_ns INTEGER
    ) STRICT""",
    """CREATE TABLE hub_staff (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        created_at_ns INTEGER NOT NULL
    ) STRICT""",
    # Every event as the device recorded it, stored once per (device_id, txn_id).
    # event_time_ns is the time the hub uses (corrected, never after receipt); item is the
    # barcode the event is about, indexed for "what happened to this book after then".
    """CREATE TABLE hub_events (
        device_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        txn_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        boot_id TEXT NOT NULL,
        mono_ns INTEGER NOT NULL,
        wall_ns INTEGER NOT NULL,
        clock_synced INTEGER NOT NULL CHECK (clock_synced IN (0, 1)),
        hlc INTEGER NOT NULL,
        payload TEXT NOT NULL,
        item TEXT,
        received_at_ns INTEGER NOT NULL,
        corrected_time_ns INTEGER NOT NULL,
        event_time_ns INTEGER NOT NULL,
        time_basis TEXT NOT NULL CHECK (time_basis IN ('anchor', 'wall')),
        time_flags TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'stored' CHECK (state IN ('stored', 'applied', 'rejected')),
        outcome TEXT CHECK (outcome IN ('ok', 'exception', 'rejected')),
        codes TEXT NOT NULL DEFAULT '',
        message TEXT,
        applied_at_ns INTEGER,
        PRIMARY KEY (device_id, seq),
        UNIQUE (device_id, txn_id)
    ) STRICT, WITHOUT ROWID""",
    """CREATE INDEX hub_events_item ON hub_events(item, event_time_ns, txn_id)
        WHERE item IS NOT NULL AND state = 'applied'""",
    """CREATE TABLE hub_idempotency (
        device_id TEXT NOT NULL,
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at_ns INTEGER NOT NULL,
        PRIMARY KEY (device_id, key)
    ) STRICT, WITHOUT ROWID""",
    # The change log. change_id is given by a counter in hub_state (never reused, even after
    # compaction); device_id is set for the feeds only one device sees (card_range, verdict).
    """CREATE TABLE hub_changes (
        change_id INTEGER PRIMARY KEY,
        feed TEXT NOT NULL,
        key TEXT NOT NULL,
        op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
        version INTEGER NOT NULL,
        data TEXT,
        device_id TEXT,
        made_at_ns INTEGER NOT NULL
    ) STRICT""",
    # Versions of rows whose table has no version column (loans, blocks, closed days).
    """CREATE TABLE hub_row_versions (
        feed TEXT NOT NULL,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (feed, key)
    ) STRICT, WITHOUT ROWID""",
    """CREATE TABLE hub_card_ranges (
        range_id INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL,
        prefix TEXT NOT NULL,
        first_number INTEGER NOT NULL,
        last_number INTEGER NOT NULL,
        leased_at_ns INTEGER NOT NULL,
        expires_on TEXT,
        CHECK (first_number <= last_number)
    ) STRICT""",
    "CREATE INDEX hub_card_ranges_device ON hub_card_ranges(device_id)",
    """CREATE TABLE hub_anchors (
        device_id TEXT NOT NULL,
        boot_id TEXT NOT NULL,
        mono_ns INTEGER NOT NULL,
        hub_time_ns INTEGER NOT NULL,
        rtt_ns INTEGER,
        received_at_ns INTEGER NOT NULL,
        PRIMARY KEY (device_id, boot_id, mono_ns)
    ) STRICT, WITHOUT ROWID""",
    """CREATE TABLE hub_exceptions (
        id INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL,
        txn_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        code TEXT NOT NULL,
        message TEXT,
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
        event_time_ns INTEGER,
        created_at_ns INTEGER NOT NULL,
        resolved_at_ns INTEGER,
        UNIQUE (device_id, txn_id, code)
    ) STRICT""",
    "CREATE INDEX hub_exceptions_open ON hub_exceptions(status, id)",
    """CREATE TABLE hub_heartbeats (
        device_id TEXT PRIMARY KEY,
        received_at_ns INTEGER NOT NULL,
        sent_at_ns INTEGER NOT NULL,
        body TEXT NOT NULL
    ) STRICT""",
]


def _m001_hub(db: sqlite_utils.Database) -> None:
    for statement in _INITIAL:
        db.execute(statement)
    db.execute(
        "INSERT INTO hub_state (key, value) VALUES ('epoch', ?), ('last_change_id', 0),"
        " ('compacted_through', 0), ('card_next', 0)",
        [secrets.token_hex(8)],
    )


def _m002_loan_history_index(db: sqlite_utils.Database) -> None:
    # Applying an event looks at the loans of one book that were still open at the event's
    # time; without this index that is a scan of every loan in the county.
    db.execute("CREATE INDEX hub_loans_item ON loans(item_id, returned_at)")


def _m003_fleet(db: sqlite_utils.Database) -> None:
    # The van stop each event was recorded at (NULL at a fixed branch), and the daily
    # figures each device sends: absolute values per (day, branch, stop, metric), replaced
    # day by day as the device sends them again (stop '' = none).
    db.execute("ALTER TABLE hub_events ADD COLUMN stop TEXT")
    db.execute("""CREATE TABLE hub_daily_stats (
        device_id TEXT NOT NULL,
        day TEXT NOT NULL,
        branch TEXT NOT NULL,
        stop TEXT NOT NULL DEFAULT '',
        metric TEXT NOT NULL,
        value INTEGER NOT NULL,
        received_at_ns INTEGER NOT NULL,
        PRIMARY KEY (device_id, day, branch, stop, metric)
    ) STRICT, WITHOUT ROWID""")
    db.execute("CREATE INDEX hub_daily_stats_day ON hub_daily_stats(day, metric)")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "hub tables", _m001_hub),
    Migration(2, "index of each book's loans", _m002_loan_history_index),
    Migration(3, "fleet: van stop of each event, daily figures per device", _m003_fleet),
)

LEDGER = migrations.Ledger("_hub_migrations", user_version=False, what="hub schema")


def applied(conn: sqlite3.Connection) -> list[int]:
    """Ids of hub migrations recorded in the database (empty for a plain kiosk cache)."""
    return migrations.applied(conn, LEDGER)


def _refuse_newer(conn: sqlite3.Connection, path: Path) -> list[int]:
    return migrations.refuse_newer(conn, path, MIGRATIONS, LEDGER)


def migrate(conn: sqlite3.Connection, path: Path) -> list[Migration]:
    """Apply every pending hub migration, each in its own transaction with its record.

    Returns the migrations applied (empty when the hub schema was current).
    """
    return migrations.migrate(conn, path, MIGRATIONS, LEDGER)


def require_current(conn: sqlite3.Connection, path: Path) -> None:
    """Raise unless the database holds exactly this release's hub migrations."""
    done = _refuse_newer(conn, path)
    if len(done) < len(MIGRATIONS):
        raise errors.SchemaOutdated(
            f"{path}: hub schema version {max(done, default=0)}, this release needs "
            f"{MIGRATIONS[-1].id}",
            path=str(path), found=max(done, default=0), known=MIGRATIONS[-1].id,
        )
