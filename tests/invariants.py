"""Invariants of a cache after any sequence of circulation, used by the property and crash
tests. Each returns a list of human-readable violations (empty when all hold)."""

from __future__ import annotations

import sqlite3


def violations(conn: sqlite3.Connection) -> list[str]:
    found: list[str] = []

    def rows(sql: str) -> list[tuple]:
        return conn.execute(sql).fetchall()

    for item_id, n in rows("SELECT item_id, count(*) FROM loans WHERE returned_at IS NULL"
                           " GROUP BY item_id HAVING count(*) > 1"):
        found.append(f"item {item_id} has {n} open loans")
    for card, count, actual in rows(
        "SELECT p.card_number, p.loan_count, count(l.id) FROM patrons p"
        " LEFT JOIN loans l ON l.patron_id = p.id AND l.returned_at IS NULL"
        " GROUP BY p.id HAVING p.loan_count != count(l.id)"
    ):
        found.append(f"patron {card}: loan_count {count} but {actual} open loans")
    for device, n, lo, hi in rows("SELECT device_id, count(*), min(seq), max(seq) FROM outbox"
                                  " GROUP BY device_id"):
        if (lo, hi) != (1, n):
            found.append(f"device {device}: {n} events with seq {lo}..{hi}")
    # Every state change has exactly one event, and no event exists without its change.
    for (txn,) in rows("SELECT checkout_txn FROM loans WHERE checkout_txn IS NOT NULL"
                       " EXCEPT SELECT txn_id FROM outbox WHERE kind IN ('checkout', 'pickup')"):
        found.append(f"loan {txn} has no checkout event")
    for (txn,) in rows("SELECT txn_id FROM outbox WHERE kind IN ('checkout', 'pickup')"
                       " EXCEPT SELECT checkout_txn FROM loans"):
        found.append(f"checkout event {txn} has no loan")
    for (txn,) in rows("SELECT checkin_txn FROM loans WHERE checkin_txn IS NOT NULL"
                       " EXCEPT SELECT txn_id FROM outbox WHERE kind IN ('checkin', 'pickup')"):
        found.append(f"closed loan {txn} has no checkin event")
    # Loans that came from the hub (no checkout_txn) carry renewals made elsewhere; these
    # tests renew only loans made here.
    renewals = rows("SELECT coalesce(sum(renewals), 0) FROM loans"
                    " WHERE checkout_txn IS NOT NULL")[0][0]
    renew_events = rows("SELECT count(*) FROM outbox WHERE kind = 'renew'")[0][0]
    if renewals != renew_events:
        found.append(f"{renewals} renewals recorded on loans but {renew_events} renew events")
    for barcode, status in rows(
        "SELECT i.barcode, i.status FROM loans l JOIN items i ON i.id = l.item_id"
        " WHERE l.returned_at IS NULL AND i.status != 'on_loan'"
    ):
        found.append(f"item {barcode} on loan but status {status}")
    return found
