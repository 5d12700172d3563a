"""``kiosk queue``: events waiting for the hub's acknowledgement, and the events the hub
flagged (its verdict was ``exception`` or ``rejected``), with their codes, for staff."""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kiosk import exitcodes
from kiosk.app import App
from sync import outbox


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("queue", help=t("cli.help.queue"), description=t("cli.help.queue"),
                       epilog=t("cli.example.queue"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=50, metavar="N", help=t("cli.opt.limit"))
    p.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    p.set_defaults(handler=_queue)


def flagged(conn: sqlite3.Connection, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """(how many, the first ``limit``) events the hub flagged, oldest first, with what the
    outbox still knows of them."""
    total = conn.execute("SELECT count(*) FROM sync_verdicts WHERE outcome != 'ok'").fetchone()[0]
    rows = conn.execute(
        "SELECT v.device_id, v.seq, v.txn_id, v.outcome, v.code, v.message,"
        " v.corrected_time_ns, o.kind, o.wall_ns, o.payload FROM sync_verdicts v"
        " LEFT JOIN outbox o ON o.txn_id = v.txn_id WHERE v.outcome != 'ok'"
        " ORDER BY v.device_id, v.seq LIMIT ?", (limit,)).fetchall()
    out = []
    for device, seq, txn, outcome, code, message, corrected, kind, wall_ns, payload in rows:
        p = json.loads(payload) if payload else {}
        out.append({"device_id": device, "seq": seq, "txn_id": txn, "outcome": outcome,
                    "code": code, "message": message, "corrected_time_ns": corrected,
                    "kind": kind, "wall_ns": wall_ns, "card": p.get("card"),
                    "item": p.get("item")})
    return total, out


def _queue(app: App) -> int:
    with app.open_cache() as cache, cache.snapshot() as conn:
        total = outbox.depth(conn)
        events = outbox.unacknowledged(conn, limit=app.args.limit)
        flagged_total, flags = flagged(conn, app.args.limit)
    if app.json:
        app.emit_json({"depth": total, "events": [e.as_dict() for e in events],
                       "flagged_total": flagged_total, "flagged": flags})
        return exitcodes.OK
    tz = app.settings().identity().timezone

    def when(wall_ns: int | None) -> str:
        if wall_ns is None:
            return "-" * 19
        return datetime.fromtimestamp(wall_ns / 1e9, tz).strftime("%Y-%m-%d %H:%M:%S")

    if not total:
        app.say("queue.empty")
    else:
        for e in events:
            flags_text = ",".join(e.payload.get("flags") or [])
            app.line(f"{e.seq:>8}  {when(e.wall_ns)}  {e.kind:<9} "
                     f"{e.payload.get('card') or '-':<14} {e.payload.get('item') or '-':<16} "
                     f"{flags_text}")
        app.say("queue.summary", shown=len(events), total=total)
    if not flagged_total:
        app.say("sync.queue.flagged_none")
        return exitcodes.OK
    app.line()
    app.say("sync.queue.flagged_heading")
    for f in flags:
        app.line(f"{f['seq']:>8}  {when(f['wall_ns'])}  {f['kind'] or '-':<9} "
                 f"{f['card'] or '-':<14} {f['item'] or '-':<16} {f['outcome']:<9} "
                 f"{f['code'] or '-'}  {f['message'] or ''}".rstrip())
    app.say("sync.queue.flagged_summary", count=flagged_total)
    return exitcodes.OK
