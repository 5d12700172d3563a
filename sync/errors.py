"""Errors of the library data side (cache, rules, outbox).

Every error carries a ``message_key`` and ``params`` so the kiosk can show it to a person
through the message catalogue; ``str(error)`` is an English sentence for logs. Leaf classes
also inherit the matching built-in exception, so callers that only know Python's own
hierarchy (``except OSError``) still catch them.
"""

from __future__ import annotations


class CacheError(Exception):
    """Root of every error raised by the offline cache."""

    message_key = "db.error"

    def __init__(self, detail: str, **params: object) -> None:
        super().__init__(detail)
        self.params = {"detail": detail, **params}


class DatabaseMissing(CacheError, FileNotFoundError):
    """The database file does not exist; nothing was created."""

    message_key = "db.missing"


class DatabaseCorrupt(CacheError, ValueError):
    """The file is not a SQLite database, or SQLite reports it malformed."""

    message_key = "db.corrupt"


class SchemaTooNew(CacheError, RuntimeError):
    """The database was migrated by a newer release; this one must not write to it."""

    message_key = "db.schema_too_new"


class DatabaseReadOnly(CacheError, PermissionError):
    """The database (or its folder, which holds the WAL) cannot be written."""

    message_key = "db.read_only"


class DiskFull(CacheError, OSError):
    """The disk holding the database is full; the failed change was rolled back."""

    message_key = "db.disk_full"


class DatabaseBusy(CacheError, TimeoutError):
    """Another process held the write lock for longer than the busy timeout."""

    message_key = "db.busy"


class BackupExists(CacheError, FileExistsError):
    """A backup target already exists; backups never overwrite."""

    message_key = "db.backup_exists"


class NotInitialised(CacheError, LookupError):
    """The file is a SQLite database but not a kiosk cache (no migrations applied)."""

    message_key = "db.not_initialised"


class SchemaOutdated(CacheError, RuntimeError):
    """The database needs migrations this release knows; run `kiosk db migrate`."""

    message_key = "db.schema_outdated"


class DatabaseExists(CacheError, FileExistsError):
    """``db init`` found a database already at the path; it is left as it is."""

    message_key = "db.exists"
