"""The staff audit: who did what, when, at this device.

Every staff action (a sign-in and its refusals, a sign-out, an override at the desk) is one
row of ``staff_audit``, written inside the transaction of the action itself, so the action
and its record commit together or not at all. The table is append-only: SQLite triggers
refuse every UPDATE and DELETE, whoever asks.

``details`` is a JSON object for people reading the audit later. It must never hold a
PIN, a PIN hash or an ID number: :func:`record` refuses such keys (at any depth) with
``ValueError`` rather than write them.

With a :class:`Forward`, each row also goes to the hub as an outbox event of kind
``staff_action`` in the same transaction::

    {"branch": ISIL, "audit_id": 12, "at": "2026-11-25T10:00:00+00:00",
     "staff_card": "9900000001", "action": "sign_in", "details": {...},
     "related_txn": "<txn_id of the loan it concerns>" | null}
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sync import outbox
from sync.clock import Clock, Reading, read

# Key names (compared in lower case, without "_" and "-") that never go into the audit.
_SECRET_KEYS = frozenset({"pin", "pinhash", "newpin", "oldpin", "idnumber", "idno",
                          "nationalid", "passport", "passportnumber", "password"})


@dataclass(frozen=True)
class Forward:
    """Send audit rows to the hub: the device's id and branch and the clock for events."""

    device_id: str
    branch: str
    clock: Clock


@dataclass(frozen=True)
class Entry:
    """One audit row as written."""

    id: int
    at: str
    staff_id: int | None
    staff_card: str | None
    action: str
    details: dict[str, Any]
    txn_id: str | None = None


def _check(details: Any, path: str = "details") -> None:
    if isinstance(details, Mapping):
        for key, value in details.items():
            name = str(key).lower().replace("_", "").replace("-", "")
            if name in _SECRET_KEYS:
                raise ValueError(f"{path}.{key}: a PIN or an ID number never goes into the"
                                 " audit")
            _check(value, f"{path}.{key}")
    elif isinstance(details, list | tuple):
        for i, value in enumerate(details):
            _check(value, f"{path}[{i}]")


def record(
    conn: sqlite3.Connection,
    *,
    action: str,
    at: datetime,
    staff_id: int | None,
    staff_card: str | None,
    details: Mapping[str, Any] | None = None,
    txn_id: str | None = None,
    forward: Forward | None = None,
    reading: Reading | None = None,
) -> Entry:
    """Append one audit row (and, with ``forward``, its ``staff_action`` event).

    Must run inside the caller's write transaction. ``txn_id`` names the outbox event the
    action concerns (the loan of an override). ``reading`` is the clock reading of that
    transaction when the caller has one; otherwise ``forward.clock`` is read.
    """
    if not conn.in_transaction:
        raise RuntimeError("audit.record must run inside the transaction of its action")
    body = dict(details or {})
    _check(body)
    text = json.dumps(body, ensure_ascii=False, sort_keys=True)
    when = at.isoformat(timespec="seconds")
    audit_id = conn.execute(
        "INSERT INTO staff_audit (at, staff_id, staff_card, action, details, txn_id)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (when, staff_id, staff_card, action, text, txn_id),
    ).fetchone()[0]
    if forward is not None:
        outbox.append(
            conn, device_id=forward.device_id, kind="staff_action",
            reading=reading or read(forward.clock),
            payload={"branch": forward.branch, "audit_id": audit_id, "at": when,
                     "staff_card": staff_card, "action": action, "details": body,
                     "related_txn": txn_id},
        )
    return Entry(audit_id, when, staff_id, staff_card, action, body, txn_id)


def entries(conn: sqlite3.Connection, *, staff_id: int | None = None,
            limit: int = 100) -> list[Entry]:
    """The latest audit rows, newest first (of one staff member with ``staff_id``)."""
    sql = "SELECT id, at, staff_id, staff_card, action, details, txn_id FROM staff_audit"
    args: tuple[Any, ...] = ()
    if staff_id is not None:
        sql += " WHERE staff_id = ?"
        args = (staff_id,)
    sql += f" ORDER BY id DESC LIMIT {int(limit)}"
    return [Entry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6])
            for r in conn.execute(sql, args)]
