"""``kiosk demo``: the sample county on a fresh database, walked through step by step.

At this stage the demo is the circulation command line on the small sample county: a
patron borrows, a refused card, a return that travels home, a reserved book in a locker,
and the queue waiting for the hub. It ends with commands to try by hand on the same
database. (The daemon, simulated hardware and the touchscreen join it in later releases.)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from kiosk import exitcodes
from kiosk.app import App
from kiosk.commands.circ import describe
from sync import db as cache_db
from sync import outbox, sample
from sync.circulation import Circulation
from sync.clock import SystemClock, read


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("demo", help=t("cli.help.demo"), description=t("cli.help.demo"),
                       epilog=t("cli.example.demo"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default="kiosk-data", metavar="DIR", help=t("cli.opt.demo_dir"))
    p.set_defaults(handler=_demo)


def _demo(app: App) -> int:
    folder = Path(app.args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo.db"
    for old in folder.glob("demo.db*"):
        old.unlink()
    with cache_db.create(path) as cache:
        info = sample.load(cache, "small")
        cases = info.edge_cases
        settings = app.settings()
        clock = SystemClock()
        identity = settings.identity()
        # The sample's dates are fixed; move them to today so its expired card is expired
        # and its reserved book still waits in the locker, whenever the demo runs.
        sample.move_to(cache, read(clock).local_date(identity.timezone))
        circ = Circulation(cache, identity, settings.policy(), clock)

        def step(key: str, **params: object) -> None:
            app.line()
            app.say(f"demo.step.{key}", **params)

        def show(outcome) -> None:
            app.line("  " + describe(app, outcome))

        app.say("demo.title", path=path, patrons=info.counts.get("patrons", 0),
                items=info.counts.get("items", 0))
        reader = cases["ok_patron"]
        step("borrow", card=reader)
        for key in ("available_item", "new_book_item", "other_branch_item"):
            show(circ.checkout(str(reader), str(cases[key])))
        step("refused", card=cases["expired_patron"])
        show(circ.checkout(str(cases["expired_patron"]), str(cases["children_item"])))
        step("not_for_loan")
        show(circ.checkout(str(reader), str(cases["reference_item"])))
        step("return_anywhere")
        show(circ.checkin(str(cases["other_branch_item"])))
        step("pickup", card=cases["ready_hold_patron"])
        for hold in circ.ready_holds(str(cases["ready_hold_patron"])):
            show(circ.pickup(str(cases["ready_hold_patron"]), int(hold["hold_id"])))
        depth = outbox.depth(cache.conn)
        step("queue", depth=depth)
    app.line()
    app.say("demo.try", db=path, card=reader, item=cases["available_item"],
            expired=cases["expired_patron"])
    return exitcodes.OK
