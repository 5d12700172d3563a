"""``kiosk db init|migrate|check|backup|rebuild``: the technician's database commands.

``rebuild`` makes a new cache from the county hub while carrying over everything that exists
only on this device (:mod:`sync.rebuild`). Exit codes: 0 rebuilt and synced; 1 refused
because the daemon runs, the hub's data could not be downloaded (both: nothing changed), or
rebuilt but transactions still wait for the hub or some were lost with the damage; 3 no hub
configured; 4 no database, or no transaction queue could be read from it (nothing changed).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk import exitcodes
from kiosk.app import App
from kiosk.control_client import note_daemon
from sync import db as cache_db
from sync import errors, feeds, maintenance, migrations, outbox, rebuild


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("db", help=t("cli.help.db"), description=t("cli.help.db"))
    verbs = p.add_subparsers(dest="verb", metavar="ACTION", title=t("cli.commands"))
    verbs.required = True

    def add(name: str) -> argparse.ArgumentParser:
        q = verbs.add_parser(name, help=t(f"cli.help.db_{name}"),
                             description=t(f"cli.help.db_{name}"),
                             epilog=t(f"cli.example.db_{name}"),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        q.add_argument("--json", action="store_true", help=t("cli.opt.json"))
        return q

    init = add("init")
    init.add_argument("--sample", choices=("small", "county"), help=t("cli.opt.sample"))
    init.set_defaults(handler=_init)
    add("migrate").set_defaults(handler=_migrate)
    check = add("check")
    check.add_argument("--full", action="store_true", help=t("cli.opt.full"))
    check.set_defaults(handler=_check)
    backup = add("backup")
    backup.add_argument("file", metavar="FILE", help=t("cli.opt.backup_file"))
    backup.set_defaults(handler=_backup)
    again = add("rebuild")
    again.add_argument("--force", action="store_true", help=t("cli.opt.rebuild_force"))
    again.add_argument("--accept-loss", action="store_true",
                       help=t("cli.opt.rebuild_accept_loss"))
    again.set_defaults(handler=_rebuild)


def _init(app: App) -> int:
    path = app.db_path()
    if path.exists() and path.stat().st_size > 0:
        raise errors.DatabaseExists(f"{path}: already exists", path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with cache_db.create(path) as cache:
        result: dict[str, object] = {"path": str(path), "schema": migrations.latest()}
        if app.args.sample:
            from sync import sample

            def progress(table: str, done: int, total: int) -> None:
                if not app.json and sys.stderr.isatty():
                    print(f"\r{table}: {done:,} / {total:,}\033[K", end="", file=sys.stderr,
                          flush=True)

            info = sample.load(cache, app.args.sample, progress=progress)
            if not app.json and sys.stderr.isatty():
                print(file=sys.stderr)
            result["sample"] = app.args.sample
            result["counts"] = dict(info.counts)
            result["edge_cases"] = dict(info.edge_cases)
    if app.json:
        app.emit_json(result)
    else:
        app.say("db.init.done", path=path, schema=result["schema"])
        if app.args.sample:
            counts = result["counts"]
            assert isinstance(counts, dict)
            app.say("db.init.sample_loaded", sample=app.args.sample,
                    counts=", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return exitcodes.OK


def _migrate(app: App) -> int:
    with app.open_cache(check_schema=False) as cache, cache_db.translated(cache.path):
        applied = migrations.migrate(cache.conn, cache.path)
    if app.json:
        app.emit_json({"applied": [{"id": m.id, "name": m.name} for m in applied],
                       "schema": migrations.latest()})
    elif applied:
        for m in applied:
            app.say("db.migrate.applied", id=m.id, name=m.name)
    else:
        app.say("db.migrate.current", schema=migrations.latest())
    return exitcodes.OK


def _check(app: App) -> int:
    note_daemon(app)
    with app.open_cache(check_schema=False) as cache:
        report = maintenance.check(cache, full=app.args.full)
    if app.json:
        app.emit_json(report.as_dict())
    elif report.ok:
        app.say("db.check.ok", path=app.db_path())
    else:
        for kind in ("integrity", "foreign_keys", "invariants"):
            for problem in getattr(report, kind):
                app.say(f"db.check.{kind}", problem=problem)
    return exitcodes.OK if report.ok else exitcodes.REFUSED


def _backup(app: App) -> int:
    note_daemon(app)  # an online backup: the daemon may go on writing meanwhile
    with app.open_cache(check_schema=False) as cache:
        target = maintenance.backup(cache, app.args.file)
    size = target.stat().st_size
    if app.json:
        app.emit_json({"backup": str(target), "bytes": size})
    else:
        app.say("db.backup.done", path=target, size=f"{size / 1e6:.1f} MB")
    return exitcodes.OK


def _rebuild(app: App) -> int:
    from kiosk.commands import sync_cmd
    from kiosk.control_client import daemon_for
    from sync.client import HubNotConfigured
    from sync.syncer import Syncer

    path = app.db_path()
    if not path.is_file():
        raise errors.DatabaseMissing(f"{path}: no such file", path=str(path))
    result: dict[str, Any] = {"ok": False, "db": str(path), "replaced": False,
                              "daemon": "not_running"}
    client = daemon_for(app, say=False)
    if client is not None:
        client.close()
        result["daemon"] = "running"
        if not app.args.force:
            result["error"] = {"code": "daemon_running"}
            return _rebuild_end(app, result, "db.rebuild.daemon_running", exitcodes.REFUSED)
        app.warn("db.rebuild.forced")
    settings = app.settings()
    try:
        hub = sync_cmd.client_for(settings.hub, settings.device.id)
    except HubNotConfigured as exc:
        result["error"] = {"code": exc.code, "detail": str(exc)}
        if not app.json:
            app.warn(exc.message_key, **exc.params)
        return _rebuild_end(app, result, None, exitcodes.CONFIG)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.rebuild-", dir=path.parent))
    try:
        with hub:
            found = rebuild.salvage(path, work)
            result["salvage"] = found.as_dict()
            if not app.json:
                _print_salvage(app, found)
            if not found.outbox_found and not app.args.accept_loss:
                result["error"] = {"code": "no_outbox"}
                return _rebuild_end(app, result, "db.rebuild.no_outbox", exitcodes.DATA,
                                    path=path)
            new = work / "new.db"
            with cache_db.create(new) as cache:
                rebuild.carry_over(cache, found)
                report = Syncer(cache, hub, options=sync_cmd.options(
                    settings.hub, attempts=sync_cmd.CLI_ATTEMPTS,
                    retry_max_s=sync_cmd.CLI_RETRY_MAX_S)).run_once()
                result["sync"] = report.as_dict()
                with cache.snapshot() as conn:
                    downloaded = feeds.cursor(conn) is not None
                if not downloaded:
                    result["error"] = result["sync"]["error"]
                    if not app.json and report.error is not None:
                        app.warn(report.error.message_key, **report.error.params)
                    return _rebuild_end(app, result, "db.rebuild.hub_failed",
                                        exitcodes.REFUSED, path=path)
                result["card_ranges_moved"] = rebuild.settle(cache, found, settings.device.id)
                check = maintenance.check(cache)
                result["check"] = check.as_dict()
                with cache.snapshot() as conn:
                    pending = outbox.depth(conn)
                cache.checkpoint(truncate=True)
        kept = rebuild.kept_name(path, datetime.now())
        rebuild.swap(new, path, kept)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.update(replaced=True, kept=str(kept), pending=pending)
    # The rebuild is done when the hub's data is in, every carried event is acknowledged and
    # the new file checks out; other parts of the sync (figures, heartbeat) may fail alone.
    result["ok"] = check.ok and not pending and not found.gaps()
    if not app.json:
        if report.error is not None:
            app.warn(report.error.message_key, **report.error.params)
        for kind in ("integrity", "foreign_keys", "invariants"):
            for problem in getattr(check, kind):
                app.warn("db.rebuild.check_failed", problem=problem)
        app.say("db.rebuild.done", path=path, kept=kept)
        app.say("sync.cli.queue", depth=pending)
        if pending:
            app.warn("db.rebuild.pending", count=pending)
    return _rebuild_end(app, result, None, exitcodes.OK if result["ok"] else exitcodes.REFUSED)


def _rebuild_end(app: App, result: dict[str, Any], key: str | None, code: int,
                 **params: object) -> int:
    if app.json:
        app.emit_json(result)
    elif key is not None:
        app.warn(key, **params)
    return code


def _print_salvage(app: App, found: rebuild.Salvage) -> None:
    app.say("db.rebuild.read", path=found.source,
            method=app.t(f"db.rebuild.method_{found.method}"), integrity=found.integrity)
    if found.events:
        app.say("db.rebuild.heading")
        tz = app.settings().identity().timezone
        for e in found.events:
            when = datetime.fromtimestamp(e.wall_ns / 1e9, tz).strftime("%Y-%m-%d %H:%M:%S")
            app.line(f"{e.seq:>8}  {when}  {e.kind:<17} {e.payload.get('card') or '-':<14} "
                     f"{e.payload.get('item') or '-'}".rstrip())
    else:
        app.say("db.rebuild.none")
    for device, (seq, _hlc) in sorted(found.final_counters().items()):
        app.say("db.rebuild.counters", device=device, seq=seq)
    if found.patrons:
        app.say("db.rebuild.registrations",
                cards=", ".join(p["card_number"] for p in found.patrons))
    if found.audit:
        app.say("db.rebuild.audit", count=len(found.audit))
    for gap in found.gaps():
        app.warn("db.rebuild.gap", gap=gap)
    for problem in found.problems:
        app.warn("db.rebuild.problem", problem=problem)
