"""Settling the flag journal at start, for the books lying on the pad.

A journal row (see :mod:`kiosk.daemon.db`) left by a crash means the patron was never told
the outcome: a ``lent`` row's loan was committed but not reported, an ``undone`` row's tag
may still say "on loan". Rows that circulation has overtaken since (the loan was returned,
the book lent again) are dropped first. For each book still on the pad the daemon then
finishes the job the safe way: a ``lent`` loan is undone (a return is committed) and its tag
set to "on the shelf"; an ``undone`` one gets its shelf flag. Rows whose book is not on the
pad stay, and ``kiosk status`` lists them for staff.
"""

from __future__ import annotations

import logging

from drivers.errors import DriverError
from hardware.roles import HardwareError
from hardware.security import SecurityPolicy, set_flag
from kiosk.daemon import db
from kiosk.daemon.bus import EventBus
from kiosk.daemon.workers import TagWorker
from sync.errors import CacheError

log = logging.getLogger(__name__)


async def reconcile(writer: db.Writer, tags: TagWorker, bus: EventBus, on_pad: set[str],
                    security: SecurityPolicy) -> int:
    """Settle the journal rows of the tags ``on_pad`` (UIDs in hex); how many were settled."""
    try:
        await writer.run(writer.forget_stale)
        rows = await writer.run(writer.read, db.pending_flags)
    except CacheError:
        log.exception("flag journal unreadable")
        return 0
    settled = 0
    for row in rows:
        uid = row["tag_uid"]
        if not uid or uid not in on_pad:
            continue
        txn, barcode = row["checkout_txn"], row["barcode"]
        try:
            if row["state"] == "lent":
                await writer.run(writer.undo, barcode, txn)
                bus.publish("loan_undone", barcode=barcode, uid=uid, txn_id=txn,
                            reason="not_confirmed_before_restart")
            await tags.call(set_flag, tags.reader, bytes.fromhex(uid), False, security)
            await writer.run(writer.shelf_confirmed, txn)
        except (CacheError, HardwareError, DriverError, OSError) as exc:
            log.warning("flag journal: %s (%s) left for staff: %s", barcode, txn, exc)
            continue
        settled += 1
        bus.publish("flag_settled", barcode=barcode, uid=uid, txn_id=txn)
    return settled
