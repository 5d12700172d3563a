"""``kiosk db init|migrate|check|backup``: the technician's database commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from kiosk import exitcodes
from kiosk.app import App
from sync import db as cache_db
from sync import errors, maintenance, migrations


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
    with app.open_cache(check_schema=False) as cache:
        target = maintenance.backup(cache, app.args.file)
    size = target.stat().st_size
    if app.json:
        app.emit_json({"backup": str(target), "bytes": size})
    else:
        app.say("db.backup.done", path=target, size=f"{size / 1e6:.1f} MB")
    return exitcodes.OK
