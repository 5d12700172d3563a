"""Schema migrations of the offline cache.

Each migration is a function of a ``sqlite_utils.Database`` and is applied in one
``BEGIN IMMEDIATE`` transaction together with its row in ``_migrations`` (and
``PRAGMA user_version``), so a power cut leaves the schema either before or after it, never
half way. A database carrying a migration this release does not know was written by a newer
release and is refused, read and write alike.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from sync import errors


@dataclass(frozen=True)
class Migration:
    id: int
    name: str
    apply: Callable[[sqlite_utils.Database], None]


_INITIAL_SCHEMA = [
    """CREATE TABLE branches (
        isil TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('central', 'branch', 'village', '24h-space', 'van')),
        parent_isil TEXT REFERENCES branches(isil),
        closed_weekdays TEXT NOT NULL DEFAULT '',
        version INTEGER NOT NULL DEFAULT 0
    ) STRICT""",
    """CREATE TABLE branch_closed_days (
        isil TEXT NOT NULL REFERENCES branches(isil),
        day TEXT NOT NULL,
        PRIMARY KEY (isil, day)
    ) STRICT, WITHOUT ROWID""",
    """CREATE TABLE patrons (
        id INTEGER PRIMARY KEY,
        card_number TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        patron_type TEXT NOT NULL,
        home_branch TEXT REFERENCES branches(isil),
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('active', 'lost_card', 'withdrawn')),
        expires_on TEXT,
        fines_owed_cents INTEGER NOT NULL DEFAULT 0 CHECK (fines_owed_cents >= 0),
        loan_count INTEGER NOT NULL DEFAULT 0 CHECK (loan_count >= 0),
        pin_hash TEXT,
        version INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT
    ) STRICT""",
    """CREATE TABLE patron_blocks (
        id INTEGER PRIMARY KEY,
        patron_id INTEGER NOT NULL REFERENCES patrons(id) ON DELETE CASCADE,
        reason TEXT NOT NULL,
        note TEXT,
        created_at TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX patron_blocks_patron ON patron_blocks(patron_id)",
    """CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        barcode TEXT NOT NULL UNIQUE,
        title TEXT,
        author TEXT,
        call_number TEXT,
        owning_branch TEXT REFERENCES branches(isil),
        current_branch TEXT REFERENCES branches(isil),
        loan_type TEXT NOT NULL DEFAULT 'normal',
        status TEXT NOT NULL DEFAULT 'available' CHECK (status IN (
            'available', 'on_loan', 'in_transit', 'on_hold_shelf', 'lost', 'missing',
            'withdrawn')),
        transit_to TEXT REFERENCES branches(isil),
        flags TEXT NOT NULL DEFAULT '',
        version INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT
    ) STRICT""",
    """CREATE TABLE loan_rules (
        patron_type TEXT NOT NULL,
        loan_type TEXT NOT NULL,
        loan_days INTEGER NOT NULL CHECK (loan_days >= 0),
        max_renewals INTEGER NOT NULL CHECK (max_renewals >= 0),
        max_loans INTEGER NOT NULL CHECK (max_loans >= 0),
        version INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (patron_type, loan_type)
    ) STRICT, WITHOUT ROWID""",
    """CREATE TABLE loans (
        id INTEGER PRIMARY KEY,
        item_id INTEGER NOT NULL REFERENCES items(id),
        patron_id INTEGER NOT NULL REFERENCES patrons(id),
        branch TEXT NOT NULL,
        loaned_at TEXT NOT NULL,
        due_date TEXT NOT NULL,
        renewals INTEGER NOT NULL DEFAULT 0,
        returned_at TEXT,
        return_branch TEXT,
        checkout_txn TEXT,
        checkin_txn TEXT,
        flags TEXT NOT NULL DEFAULT ''
    ) STRICT""",
    # The database itself guarantees that an item has at most one open loan.
    "CREATE UNIQUE INDEX loans_open_item ON loans(item_id) WHERE returned_at IS NULL",
    "CREATE INDEX loans_open_patron ON loans(patron_id) WHERE returned_at IS NULL",
    """CREATE TABLE holds (
        id INTEGER PRIMARY KEY,
        patron_id INTEGER NOT NULL REFERENCES patrons(id),
        item_id INTEGER NOT NULL REFERENCES items(id),
        pickup_branch TEXT NOT NULL REFERENCES branches(isil),
        status TEXT NOT NULL DEFAULT 'waiting' CHECK (status IN (
            'waiting', 'in_transit', 'ready', 'fulfilled', 'expired', 'cancelled')),
        locker_slot TEXT,
        placed_at TEXT NOT NULL,
        ready_at TEXT,
        pickup_expires_on TEXT,
        fulfilled_txn TEXT UNIQUE,
        version INTEGER NOT NULL DEFAULT 0
    ) STRICT""",
    """CREATE INDEX holds_item_active ON holds(item_id)
        WHERE status IN ('waiting', 'in_transit', 'ready')""",
    "CREATE INDEX holds_patron ON holds(patron_id)",
    """CREATE TABLE card_ranges (
        id INTEGER PRIMARY KEY,
        prefix TEXT NOT NULL,
        first_number INTEGER NOT NULL,
        last_number INTEGER NOT NULL,
        next_number INTEGER NOT NULL,
        leased_at TEXT NOT NULL,
        expires_on TEXT,
        CHECK (first_number <= next_number AND next_number <= last_number + 1)
    ) STRICT""",
    # Every page a checkout touches is another frame written and fsynced before the patron
    # is told, so the outbox is keyed by (device_id, seq) itself (no rowid, no second
    # index for that key), and txn ids on loans are evidence, not indexed.
    """CREATE TABLE outbox (
        device_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        txn_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        boot_id TEXT NOT NULL,
        mono_ns INTEGER NOT NULL,
        wall_ns INTEGER NOT NULL,
        clock_synced INTEGER NOT NULL CHECK (clock_synced IN (0, 1)),
        hlc INTEGER NOT NULL,
        payload TEXT NOT NULL,
        acked_at TEXT,
        PRIMARY KEY (device_id, seq)
    ) STRICT, WITHOUT ROWID""",
    "CREATE INDEX outbox_unacked ON outbox(device_id, seq) WHERE acked_at IS NULL",
    # The last seq of each device id this database has used, and the last hybrid logical
    # clock value, in one small row per device updated with each event.
    """CREATE TABLE outbox_counters (
        device_id TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        last_hlc INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID""",
    """CREATE TABLE local_state (
        key TEXT PRIMARY KEY,
        value ANY
    ) STRICT, WITHOUT ROWID""",
    """CREATE TABLE sync_state (
        feed TEXT PRIMARY KEY,
        cursor TEXT,
        updated_at TEXT
    ) STRICT, WITHOUT ROWID""",
    """CREATE TABLE daily_stats (
        day TEXT NOT NULL,
        branch TEXT NOT NULL,
        metric TEXT NOT NULL,
        value INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, branch, metric)
    ) STRICT, WITHOUT ROWID""",
]


def _m001_initial(db: sqlite_utils.Database) -> None:
    for statement in _INITIAL_SCHEMA:
        db.execute(statement)


_HUB_SYNC_SCHEMA = [
    # The hub's verdict on each of this device's events, as the change feed reports it;
    # `kiosk queue` lists the flagged ones (exception, rejected) for staff.
    """CREATE TABLE sync_verdicts (
        txn_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'exception', 'rejected')),
        code TEXT,
        message TEXT,
        corrected_time_ns INTEGER,
        version INTEGER NOT NULL DEFAULT 0,
        received_at TEXT NOT NULL
    ) STRICT, WITHOUT ROWID""",
    "CREATE INDEX sync_verdicts_flagged ON sync_verdicts(device_id, seq) WHERE outcome != 'ok'",
    # The latest clock anchor per boot: at boot-time monotonic `mono_ns` of boot `boot_id`
    # the hub's clock read `hub_time_ns`. Sent with pushes so the hub can place events of a
    # boot whose wall clock was wrong.
    """CREATE TABLE sync_anchors (
        boot_id TEXT PRIMARY KEY,
        mono_ns INTEGER NOT NULL,
        hub_time_ns INTEGER NOT NULL,
        rtt_ns INTEGER NOT NULL,
        recorded_at TEXT NOT NULL
    ) STRICT, WITHOUT ROWID""",
    # Rows of feeds whose cache table has no natural key or version column of its own
    # (loans, blocks, card ranges, calendars): the hub's key, the version held, and the
    # cache row it maps to.
    """CREATE TABLE sync_rows (
        feed TEXT NOT NULL,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        local_id INTEGER,
        PRIMARY KEY (feed, key)
    ) STRICT, WITHOUT ROWID""",
    "CREATE INDEX sync_rows_local ON sync_rows(feed, local_id)",
    # Changes held back because the row is touched by an event of ours the hub has not
    # stored yet (local pending wins); applied, version-guarded, once it has.
    """CREATE TABLE sync_deferred (
        feed TEXT NOT NULL,
        key TEXT NOT NULL,
        op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
        version INTEGER NOT NULL,
        data TEXT,
        PRIMARY KEY (feed, key)
    ) STRICT, WITHOUT ROWID""",
]


def _m002_hub_sync(db: sqlite_utils.Database) -> None:
    for statement in _HUB_SYNC_SCHEMA:
        db.execute(statement)


# The kiosk daemon's journal of security flags not yet confirmed. A row is written in the
# same transaction as the loan it belongs to (state 'lent': the tag must still be set to
# "on loan") and deleted once the tag reads back as written; a loan undone because its tag
# could not be secured keeps its row (state 'undone') until the tag reads "on the shelf"
# again. After a crash the rows left say which books may have left without a secured tag.
_FLAG_JOURNAL_SCHEMA = [
    """CREATE TABLE flag_pending (
        checkout_txn TEXT PRIMARY KEY,
        barcode TEXT NOT NULL,
        tag_uid TEXT,
        card TEXT,
        state TEXT NOT NULL DEFAULT 'lent' CHECK (state IN ('lent', 'undone')),
        created_at TEXT NOT NULL
    ) STRICT, WITHOUT ROWID""",
]


def _m003_flag_journal(db: sqlite_utils.Database) -> None:
    for statement in _FLAG_JOURNAL_SCHEMA:
        db.execute(statement)


# Staff of the county who sign in at a van's or a space's desk with a staff card and PIN
# (sync.staff). The hub sends them down; pin_hash is scrypt (sync.pins), never a PIN. The
# sign-in attempt record is kept in the database so a restart does not reset a lockout.
# staff_audit is append-only (the triggers refuse UPDATE and DELETE): who did what, when,
# with details as JSON that never hold a PIN or an ID number.
_STAFF_SCHEMA = [
    """CREATE TABLE staff (
        id INTEGER PRIMARY KEY,
        card_number TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('desk', 'van', 'admin')),
        pin_hash TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
        version INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT
    ) STRICT""",
    """CREATE TABLE staff_sign_in (
        staff_id INTEGER PRIMARY KEY REFERENCES staff(id) ON DELETE CASCADE,
        failures INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
        locked_until TEXT,
        last_failure_at TEXT
    ) STRICT""",
    """CREATE TABLE staff_audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        staff_id INTEGER,
        staff_card TEXT,
        action TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details)),
        txn_id TEXT
    ) STRICT""",
    """CREATE TRIGGER staff_audit_no_update BEFORE UPDATE ON staff_audit
        BEGIN SELECT RAISE(ABORT, 'staff_audit is append-only'); END""",
    """CREATE TRIGGER staff_audit_no_delete BEFORE DELETE ON staff_audit
        BEGIN SELECT RAISE(ABORT, 'staff_audit is append-only'); END""",
]


def _m_staff(db: sqlite_utils.Database) -> None:
    for statement in _STAFF_SCHEMA:
        db.execute(statement)


# Readers registered on the device (sync.registration). Personal data is stored only
# encrypted (sync.personal): the ID number and phone as "<key id>:<base64>", beside a masked
# form for screens and the county-wide duplicate-person hash (id_hash), which is indexed
# so a second registration of the same document is found. The hub's patrons table gets
# the same columns (the hub database is a kiosk cache too); the patron feed never sends them.
_REGISTRATION_COLUMNS = [
    "ALTER TABLE patrons ADD COLUMN id_type TEXT",
    "ALTER TABLE patrons ADD COLUMN id_number_enc TEXT",
    "ALTER TABLE patrons ADD COLUMN id_masked TEXT",
    "ALTER TABLE patrons ADD COLUMN id_hash TEXT",
    "ALTER TABLE patrons ADD COLUMN phone_enc TEXT",
    "ALTER TABLE patrons ADD COLUMN phone_masked TEXT",
    "ALTER TABLE patrons ADD COLUMN village TEXT",
    "ALTER TABLE patrons ADD COLUMN address_enc TEXT",
    "ALTER TABLE patrons ADD COLUMN guardian_name TEXT",
    "ALTER TABLE patrons ADD COLUMN guardian_relation TEXT",
    "ALTER TABLE patrons ADD COLUMN consent_at TEXT",
    "ALTER TABLE patrons ADD COLUMN registered_txn TEXT",
    "CREATE INDEX patrons_id_hash ON patrons(id_hash) WHERE id_hash IS NOT NULL",
]


def _m_registration(db: sqlite_utils.Database) -> None:
    for statement in _REGISTRATION_COLUMNS:
        db.execute(statement)


# Van stops (sync.stops): the stop staff chose is one row; each outbox event and each
# daily figure carries the stop current when it was written ('' = no stop: a fixed branch).
# daily_stats gains the stop in its key, so it is rebuilt (SQLite cannot alter a key).
_STOP_SCHEMA = [
    """CREATE TABLE van_stop (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        stop TEXT NOT NULL,
        chosen_at TEXT NOT NULL,
        staff_id INTEGER
    ) STRICT""",
    "ALTER TABLE outbox ADD COLUMN stop TEXT",
    # The UID of the card written for a reader registered here (sync.registration).
    "ALTER TABLE patrons ADD COLUMN card_uid TEXT",
    """CREATE TABLE daily_stats_new (
        day TEXT NOT NULL,
        branch TEXT NOT NULL,
        stop TEXT NOT NULL DEFAULT '',
        metric TEXT NOT NULL,
        value INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, branch, stop, metric)
    ) STRICT, WITHOUT ROWID""",
    """INSERT INTO daily_stats_new (day, branch, stop, metric, value)
        SELECT day, branch, '', metric, value FROM daily_stats""",
    "DROP TABLE daily_stats",
    "ALTER TABLE daily_stats_new RENAME TO daily_stats",
]


def _m_stops(db: sqlite_utils.Database) -> None:
    for statement in _STOP_SCHEMA:
        db.execute(statement)


# What the library system answered over SIP2 to each event replayed to it (sync.sip2.replay).
# A row is written as 'sending' and committed before the request goes out, and turned into
# its outcome (with the event's acknowledgement when SIP2 is the only sync) in one
# transaction once the answer is in: an event answered is never sent again, an event whose
# answer was lost is checked and sent again. 'refused' rows are exceptions for staff;
# 'waiting' rows (a new reader the library system has no SIP2 path to register) stay queued.
_SIP2_SCHEMA = [
    """CREATE TABLE sip2_outcomes (
        txn_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN
            ('sending', 'ok', 'refused', 'waiting', 'not_applicable')),
        code TEXT,
        message TEXT,
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        updated_at TEXT NOT NULL
    ) STRICT, WITHOUT ROWID""",
    "CREATE INDEX sip2_outcomes_open ON sip2_outcomes(state, device_id, seq)"
    " WHERE state IN ('sending', 'refused', 'waiting')",
]


def _m_sip2(db: sqlite_utils.Database) -> None:
    for statement in _SIP2_SCHEMA:
        db.execute(statement)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _m001_initial),
    Migration(2, "hub sync: verdicts, clock anchors, row versions", _m002_hub_sync),
    Migration(3, "kiosk daemon: journal of security flags not yet confirmed",
              _m003_flag_journal),
    Migration(4, "staff accounts, sign-in attempts and the append-only audit",
              _m_staff),
    Migration(5, "registration: readers' personal data, encrypted, and the person hash",
              _m_registration),
    Migration(6, "van stops on every event and daily figure; the UID of written cards",
              _m_stops),
    Migration(7, "SIP2: the library system's answer to each replayed event", _m_sip2),
)

@dataclass(frozen=True)
class Ledger:
    """Where a schema records its migrations: the kiosk cache in ``_migrations`` (and
    ``PRAGMA user_version``), the hub's own tables in ``_hub_migrations`` beside them."""

    table: str = "_migrations"
    user_version: bool = True
    what: str = "schema"

    @property
    def create(self) -> str:
        return (f"CREATE TABLE IF NOT EXISTS {self.table} (id INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT")


CACHE = Ledger()


def latest() -> int:
    return MIGRATIONS[-1].id


def applied(conn: sqlite3.Connection, ledger: Ledger = CACHE) -> list[int]:
    """Ids of migrations recorded in the database (empty for a new file)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (ledger.table,)
    ).fetchone()
    if not exists:
        return []
    return [row[0] for row in conn.execute(f"SELECT id FROM {ledger.table} ORDER BY id")]


def refuse_newer(
    conn: sqlite3.Connection, path: Path, plan: Sequence[Migration] = MIGRATIONS,
    ledger: Ledger = CACHE,
) -> list[int]:
    done = applied(conn, ledger)
    known = {m.id for m in plan}
    unknown = [i for i in done if i not in known]
    if unknown:
        raise errors.SchemaTooNew(
            f"{path}: {ledger.what} version {max(unknown)} is newer than this release knows "
            f"({plan[-1].id})",
            path=str(path), found=max(unknown), known=plan[-1].id,
        )
    return done


def require_current(
    conn: sqlite3.Connection, path: Path, plan: Sequence[Migration] = MIGRATIONS
) -> None:
    """Raise unless the database holds exactly the migrations of ``plan``."""
    done = refuse_newer(conn, path, plan)
    if not done:
        tables = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        ).fetchone()[0]
        raise errors.NotInitialised(
            f"{path}: not a kiosk database ({tables} foreign tables)", path=str(path)
        )
    if len(done) < len(plan):
        raise errors.SchemaOutdated(
            f"{path}: schema version {max(done)}, this release needs {plan[-1].id}",
            path=str(path), found=max(done), known=plan[-1].id,
        )


def pending(conn: sqlite3.Connection, plan: Sequence[Migration] = MIGRATIONS,
            ledger: Ledger = CACHE) -> list[Migration]:
    done = set(applied(conn, ledger))
    return [m for m in plan if m.id not in done]


def migrate(
    conn: sqlite3.Connection, path: Path, plan: Sequence[Migration] = MIGRATIONS,
    ledger: Ledger = CACHE,
) -> list[Migration]:
    """Apply every pending migration of ``plan``, each in its own transaction with its record.

    Returns the migrations applied (empty when the schema was current). A migration that
    fails leaves neither its changes nor its record; the ones before it stay applied.
    """
    refuse_newer(conn, path, plan, ledger)
    db = sqlite_utils.Database(conn, execute_plugins=False)
    done: list[Migration] = []
    for migration in pending(conn, plan, ledger):
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(ledger.create)
            migration.apply(db)
            conn.execute(
                f"INSERT INTO {ledger.table} (id, name, applied_at) VALUES (?, ?, ?)",
                (migration.id, migration.name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
            if ledger.user_version:
                conn.execute(f"PRAGMA user_version = {int(migration.id)}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        done.append(migration)
    return done
