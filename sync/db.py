"""Opening the offline cache: one SQLite file, WAL, synchronous=FULL, foreign keys on.

The hot path uses the standard ``sqlite3`` module with explicit ``BEGIN IMMEDIATE``
transactions (:meth:`Cache.transaction`); sqlite-utils (:attr:`Cache.db`) serves migrations,
bulk loads and admin commands on the same connection. Every ``sqlite3`` error that reaches a
caller is translated into a :mod:`sync.errors` class that names the file and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from sync import errors, migrations

BUSY_TIMEOUT_MS = 5000

# SQLite checkpoints the WAL into the database inside whichever commit pushes the log past
# `wal_autocheckpoint` pages (1,000 by default), so some patron's checkout pays for writing
# and fsyncing everyone's pages: measured, p99 checkout latency 3.8-4.7x a bare commit with
# the default, 1.9x without. The kiosk checkpoints while idle (Cache.checkpoint, between
# patron sessions); the automatic checkpoint stays as a safety net at ~40 MB of log for
# processes that never go idle.
WAL_AUTOCHECKPOINT_PAGES = 10_000


def _translate(exc: sqlite3.Error, path: Path) -> errors.CacheError:
    """Map a sqlite3 error to the cache error a person can act on."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    where = str(path)
    text = str(exc)
    if name in ("SQLITE_NOTADB",) or name.startswith("SQLITE_CORRUPT"):
        return errors.DatabaseCorrupt(f"{where}: {text}", path=where)
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return errors.DatabaseReadOnly(f"{where}: {text}", path=where)
    if name == "SQLITE_FULL" or "database or disk is full" in text:
        return errors.DiskFull(f"{where}: {text}", path=where)
    if name.startswith("SQLITE_BUSY") or "database is locked" in text:
        return errors.DatabaseBusy(f"{where}: {text}", path=where)
    if name.startswith("SQLITE_CANTOPEN"):
        if path.exists() and not _writable(path):
            return errors.DatabaseReadOnly(f"{where}: {text}", path=where)
        return errors.CacheError(f"{where}: {text}", path=where)
    if name.startswith("SQLITE_IOERR") and _disk_nearly_full(path):
        return errors.DiskFull(f"{where}: {text}", path=where)
    return errors.CacheError(f"{where}: {text}", path=where)


def _writable(path: Path) -> bool:
    # WAL mode writes next to the database (-wal, -shm), so the folder matters too.
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _disk_nearly_full(path: Path) -> bool:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


@contextlib.contextmanager
def translated(path: Path) -> Iterator[None]:
    """Run a block, turning sqlite3 and disk errors into :mod:`sync.errors` classes."""
    try:
        yield
    except sqlite3.Error as exc:
        raise _translate(exc, path) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise errors.DiskFull(f"{path}: {exc}", path=str(path)) from exc
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise errors.DatabaseReadOnly(f"{path}: {exc}", path=str(path)) from exc
        raise


class Cache:
    """An open kiosk cache.

    Callers may rely on: WAL journal, ``synchronous=FULL``, foreign keys enforced, and a
    schema exactly as this release's migrations define it (unless opened with
    ``check_schema=False`` for the migrate and check commands). ``close()`` is idempotent.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        # No sqlite-utils plugins: a plugin installed on the machine must not hook into the
        # connection that holds the patrons' loans.
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        self._closed = False

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        check_schema: bool = True,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        wal_autocheckpoint_pages: int = WAL_AUTOCHECKPOINT_PAGES,
    ) -> Cache:
        """Open (or with ``create=True`` create) the cache at ``path``.

        Raises :class:`~sync.errors.DatabaseMissing` when the file is absent and
        ``create`` is false, so a typo in a path never silently makes an empty cache.
        """
        path = Path(path)
        if not path.exists():
            if not create:
                raise errors.DatabaseMissing(f"{path}: no such file", path=str(path))
            if not path.parent.is_dir():
                raise errors.DatabaseMissing(
                    f"{path.parent}: folder does not exist", path=str(path.parent)
                )
        with translated(path):
            conn = sqlite3.connect(
                path, isolation_level=None, timeout=busy_timeout_ms / 1000,
                check_same_thread=False,
            )
        cache = cls(conn, path)
        try:
            with translated(path):
                # Reading the schema first makes a file that is not a database fail here,
                # before any pragma could write to it.
                conn.execute("PRAGMA schema_version").fetchone()
                if check_schema:
                    migrations.require_current(conn, path)
                else:
                    migrations.refuse_newer(conn, path)
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute(f"PRAGMA wal_autocheckpoint = {int(wal_autocheckpoint_pages)}")
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
        except BaseException:
            conn.close()
            raise
        return cache

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): all of it commits durably, or none.

        On return from the ``with`` block the commit is on disk (synchronous=FULL).
        """
        with translated(self.path):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees one consistent state."""
        with translated(self.path):
            self.conn.execute("BEGIN DEFERRED")
            try:
                yield self.conn
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")

    def checkpoint(self, truncate: bool = False) -> tuple[int, int]:
        """Copy the write-ahead log into the database file; call it while idle.

        PASSIVE by default (never waits for readers or writers); ``truncate`` also empties
        the log file, for the nightly maintenance. Returns (pages in the log, pages copied).
        """
        mode = "TRUNCATE" if truncate else "PASSIVE"
        with translated(self.path):
            _, log, copied = self.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return log, copied

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.conn.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Cache {self.path} {state}>"


@contextlib.contextmanager
def writing(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction of our own, or the caller's when one is open."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def create(path: str | os.PathLike[str]) -> Cache:
    """Create a new cache at ``path`` (or open an existing one) and bring its schema current."""
    cache = Cache.open(path, create=True, check_schema=False)
    try:
        with translated(cache.path):
            migrations.migrate(cache.conn, cache.path)
    except BaseException:
        cache.close()
        raise
    return cache
