"""``kiosk status [--json]``: what a technician wants to know first, with or without the
daemon running (the first line says which).

With the daemon: its state, each device online or not, the session in progress, the sync
link, the queue depth, the last sync and the flag journal. Without it: the same read from
the database. Exit codes: 0 the daemon runs, every device is online, no book waits in the
flag journal and no door is left open; 1 otherwise (not running, degraded, or something for
staff to check); 4 the database cannot be read (daemon not running).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from kiosk import __version__, exitcodes
from kiosk.app import App
from kiosk.control_client import daemon_for


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("status", help=t("cli.help.status"), description=t("cli.help.status"),
                       epilog=t("cli.example.status"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    p.set_defaults(handler=_status)


def gather(app: App) -> dict[str, Any]:
    """The status as a dict (``daemon`` is ``running`` or ``not_running``)."""
    client = daemon_for(app, db=False, say=False)
    if client is not None:
        with client:
            return client.request("status")
    settings = app.settings()
    out: dict[str, Any] = {
        "daemon": "not_running", "state": None, "version": __version__,
        "device_id": settings.device.id, "branch": settings.device.branch,
        "profile": settings.device.profile, "db": str(app.db_path()),
        "control_socket": str(settings.daemon.control_socket), "devices": {},
        "session": None,
    }
    from kiosk.daemon.db import store_report

    with app.open_cache() as cache, cache.snapshot() as conn:
        out.update(store_report(conn))
    return out


def _status(app: App) -> int:
    data = gather(app)
    running = data["daemon"] == "running"
    ok = (running and data["state"] == "ready" and not data["flag_pending"]
          and not data.get("door_alarms"))
    if app.json:
        app.emit_json(data)
        return exitcodes.OK if ok else exitcodes.REFUSED
    if running:
        app.say("daemon.status.running", state=app.t(f"daemon.state.{data['state']}"),
                pid=data["pid"], uptime=_duration(data["uptime_s"]), version=data["version"])
    else:
        app.say("daemon.status.not_running", socket=data["control_socket"],
                version=data["version"])
    app.say("daemon.status.identity", device=data["device_id"], branch=data["branch"],
            profile=data["profile"], db=data["db"])
    for name, device in data["devices"].items():
        mark = app.mark(bool(device["online"]))
        kind = app.t("daemon.status.simulated") if device["simulated"] else ""
        line = f"  {mark} {app.t(f'selftest.device.{name}')}: {device['where']} {kind}".rstrip()
        if device["detail"]:
            line += f" ({device['detail']})"
        app.line(line)
        if device.get("left_open"):
            app.line("    " + app.t("device.door_left_open", device=device["where"]))
        if name == "lockers":
            for slot in [n for n in data.get("door_alarms") or [] if n != "door"]:
                where = f"{device['where']} {slot}"
                app.line("    " + app.t("device.door_left_open", device=where))
    if running:
        for problem in data.get("printer_problems") or []:
            app.say("daemon.status.printer_problem", problem=problem)
        session = data["session"]
        if session is None:
            app.say("daemon.status.no_session")
        else:
            app.say("daemon.status.session", mode=app.t(f"daemon.mode.{session['mode']}"),
                    card=session["card"] or "-", books=session["books"])
        sync = data["sync"]
        if not sync["configured"]:
            app.say("daemon.status.sync_off")
        else:
            app.say("daemon.status.sync_online" if sync["online"]
                    else "daemon.status.sync_offline")
        sip2 = data.get("sip2") or {}
        if sip2.get("configured"):
            app.say("daemon.status.sip2_online" if sip2.get("online")
                    else "daemon.status.sip2_offline", where=sip2.get("where", "?"),
                    profile=sip2.get("profile", "?"))
        for name in data.get("unhealthy") or []:
            app.say("daemon.status.stalled", worker=name)
    app.say("daemon.status.queue", depth=data["queue_depth"])
    last = data["last_sync"]
    if last is None:
        app.say("daemon.status.never_synced")
    else:
        app.say("daemon.status.last_sync", at=last.get("at", "?"),
                result=app.t("daemon.status.sync_ok" if last.get("ok")
                             else "daemon.status.sync_failed"))
    pending = data["flag_pending"]
    if pending:
        app.say("daemon.status.pending_heading", count=len(pending))
        for row in pending:
            app.say(f"daemon.status.pending_{row['state']}", barcode=row["barcode"],
                    title=row.get("title") or "", card=row.get("card") or "-",
                    at=row["created_at"])
    return exitcodes.OK if ok else exitcodes.REFUSED


def _duration(seconds: float) -> str:
    s = int(seconds)
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
