"""``kiosk demo``: the sample county with its reference hub and a simulated kiosk.

``kiosk demo`` starts the reference hub on loopback with the small sample county and runs the
kiosk daemon on simulated hardware beside it (device ``sim-01`` at the 24-hour reading
space, database in ``--dir``). Once the kiosk has taken its first snapshot from the hub it
prints what to try (``kiosk sim card ...``, ``kiosk sim place ...`` in another terminal) and
then shows what happens at the pad, until Ctrl-C. See :mod:`kiosk.commands.demo_daemon`.

``kiosk demo --walkthrough`` is the scripted tour on the command line: the kiosk lends,
refuses, takes back and hands out a reserved book with its own circulation, syncs, and
shows what the hub stored and flagged.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Callable
from datetime import date
from pathlib import Path

from kiosk import exitcodes
from kiosk.app import App
from kiosk.commands.circ import describe
from kiosk.commands.sync_cmd import _print as print_sync
from sync import db as cache_db
from sync import outbox, sample
from sync.circulation import Circulation, Outcome
from sync.client import HubClient
from sync.clock import SystemClock, read
from sync.syncer import Syncer, SyncOptions


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("demo", help=t("cli.help.demo"), description=t("cli.help.demo"),
                       epilog=t("cli.example.demo"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default="kiosk-data", metavar="DIR", help=t("cli.opt.demo_dir"))
    p.add_argument("--walkthrough", action="store_true", help=t("cli.opt.walkthrough"))
    p.set_defaults(handler=_demo)


def fresh(folder: Path, name: str) -> Path:
    """``folder/name``, with any old file of that name (and its -wal, -shm) removed."""
    for old in folder.glob(f"{name}*"):
        old.unlink()
    return folder / name


def hub_db(path: Path, today: date) -> None:
    """The county's hub database: the small sample county, its dates moved to today."""
    from sync.hub.store import SqliteHubStore

    SqliteHubStore.open(path).close()
    with cache_db.Cache.open(path) as cache:
        sample.load(cache, "small")
        sample.move_to(cache, today)


def _demo(app: App) -> int:
    if not app.args.walkthrough:
        from kiosk.commands.demo_daemon import run_daemon_demo

        return run_daemon_demo(app)
    return _walkthrough(app)


def _walkthrough(app: App) -> int:
    from sync.hub.testing import HubServer

    folder = Path(app.args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    settings = app.settings()
    identity = settings.identity()
    clock = SystemClock()
    today = read(clock).local_date(identity.timezone)
    hub_path = fresh(folder, "hub.db")
    path = fresh(folder, "demo.db")
    hub_db(hub_path, today)
    token = secrets.token_urlsafe(24)
    cases = sample.EDGE_CASES
    with HubServer(hub_path, devices={identity.device_id: token}) as hub, \
            cache_db.create(path) as cache, \
            HubClient(hub.url, identity.device_id, token, clock=clock) as client:
        syncer = Syncer(cache, client, options=SyncOptions(attempts=3, retry_max_s=2))
        first = syncer.run_once()
        app.say("demo.title", path=path, hub=hub.url, rows=first.snapshot_rows)
        circ = Circulation(cache, identity, settings.policy(), clock)

        def step(key: str, **params: object) -> None:
            app.line()
            app.say(f"demo.step.{key}", **params)

        def show(outcome: Outcome) -> None:
            app.line("  " + describe(app, outcome))

        reader = str(cases["ok_patron"])
        step("borrow", card=reader)
        for key in ("available_item", "new_book_item", "other_branch_item"):
            show(circ.checkout(reader, str(cases[key])))
        step("refused", card=cases["expired_patron"])
        show(circ.checkout(str(cases["expired_patron"]), str(cases["children_item"])))
        step("not_for_loan")
        show(circ.checkout(reader, str(cases["reference_item"])))
        step("return_anywhere")
        show(circ.checkin(str(cases["other_branch_item"])))
        step("pickup", card=cases["ready_hold_patron"])
        for hold in circ.ready_holds(str(cases["ready_hold_patron"])):
            show(circ.pickup(str(cases["ready_hold_patron"]), int(hold["hold_id"])))
        step("queue", depth=outbox.depth(cache.conn))
        step("sync", hub=hub.url)
        report = syncer.run_once()
        print_sync(app, report)
    app.line()
    app.say("demo.try", db=path, card=reader, item=cases["available_item"],
            expired=cases["expired_patron"], hub_db=hub_path)
    return exitcodes.OK if report.ok else exitcodes.REFUSED
