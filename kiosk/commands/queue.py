"""``kiosk queue``: events waiting for the hub's acknowledgement, and the events the hub
flagged (its verdict was ``exception`` or ``rejected``), with their codes, for staff."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kiosk import exitcodes
from kiosk.app import App
from kiosk.control_client import daemon_for
from kiosk.daemon.db import flagged, queue_report
from sync import outbox

__all__ = ["flagged", "gather", "register"]


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("queue", help=t("cli.help.queue"), description=t("cli.help.queue"),
                       epilog=t("cli.example.queue"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=50, metavar="N", help=t("cli.opt.limit"))
    p.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    p.set_defaults(handler=_queue)


def gather(app: App) -> dict[str, Any]:
    """What ``kiosk queue --json`` prints, from the daemon when it runs (it owns the
    database), else from the database itself."""
    client = daemon_for(app)
    if client is not None:
        with client:
            return client.request("queue", limit=app.args.limit)
    with app.open_cache() as cache, cache.snapshot() as conn:
        return queue_report(conn, app.args.limit)


def _queue(app: App) -> int:
    report = gather(app)
    if app.json:
        app.emit_json(report)
        return exitcodes.OK
    total, flagged_total, flags = report["depth"], report["flagged_total"], report["flagged"]
    events = [outbox.Event(**e) for e in report["events"]]
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
    _sip2_waiting(app, report.get("sip2_waiting") or [])
    hub_flags = [f for f in flags if f.get("source") != "sip2"]
    sip2_flags = [f for f in flags if f.get("source") == "sip2"]
    if not flagged_total:
        app.say("sync.queue.flagged_none")
        return exitcodes.OK

    def show(rows: list[dict[str, Any]]) -> None:
        for f in rows:
            app.line(f"{f['seq']:>8}  {when(f['wall_ns'])}  {f['kind'] or '-':<9} "
                     f"{f['card'] or '-':<14} {f['item'] or '-':<16} {f['outcome']:<9} "
                     f"{f['code'] or '-'}  {f['message'] or ''}".rstrip())

    if hub_flags:
        app.line()
        app.say("sync.queue.flagged_heading")
        show(hub_flags)
    if sip2_flags:
        app.line()
        app.say("sync.queue.sip2_flagged_heading")
        show(sip2_flags)
    app.say("sync.queue.flagged_summary", count=flagged_total)
    return exitcodes.OK


def _sip2_waiting(app: App, rows: list[dict[str, Any]]) -> None:
    """Events waiting for the library system, each with why and what to do."""
    if not rows:
        return
    app.line()
    app.say("sync.queue.sip2_waiting_heading")
    for w in rows:
        key = ("sync.queue.sip2_no_registration_path" if w["code"] == "no_registration_path"
               else "sync.queue.sip2_card_not_registered")
        app.line(f"{w['seq']:>8}  {w['kind']:<17} {w['item'] or '':<16} "
                 + app.t(key, system=w["system"] or "-", card=w["card"] or "-"))
