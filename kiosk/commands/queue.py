"""``kiosk queue``: events waiting for the hub's acknowledgement."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime

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


def _queue(app: App) -> int:
    with app.open_cache() as cache, cache.snapshot() as conn:
        total = outbox.depth(conn)
        events = outbox.unacknowledged(conn, limit=app.args.limit)
    if app.json:
        app.emit_json({"depth": total, "events": [e.as_dict() for e in events]})
        return exitcodes.OK
    if not total:
        app.say("queue.empty")
        return exitcodes.OK
    tz = app.settings().identity().timezone
    for e in events:
        when = datetime.fromtimestamp(e.wall_ns / 1e9, tz).strftime("%Y-%m-%d %H:%M:%S")
        flags = ",".join(e.payload.get("flags") or [])
        app.line(f"{e.seq:>8}  {when}  {e.kind:<9} {e.payload.get('card') or '-':<14} "
                 f"{e.payload.get('item') or '-':<16} {flags}")
    app.say("queue.summary", shown=len(events), total=total)
    return exitcodes.OK
