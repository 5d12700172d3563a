"""``kiosk circ checkout|checkin|renew|pickup|batch``: staff circulation.

For now these work on the database directly; when the daemon runs they will go through its
control socket instead (the daemon owns the database).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from kiosk import exitcodes
from kiosk.app import App
from sync.circulation import Circulation, Outcome
from sync.clock import SystemClock
from sync.errors import CacheError
from sync.policy import Station


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    circ = sub.add_parser("circ", help=t("cli.help.circ"), description=t("cli.help.circ"))
    verbs = circ.add_subparsers(dest="verb", metavar="ACTION", title=t("cli.commands"))
    verbs.required = True

    def add(name: str, card: bool, item: bool) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=t(f"cli.help.{name}"), description=t(f"cli.help.{name}"),
                             epilog=t(f"cli.example.{name}"),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        if card:
            p.add_argument("--card", required=True, help=t("cli.opt.card"))
        if item:
            p.add_argument("--item", required=True, action="append", metavar="BARCODE",
                           help=t("cli.opt.item"))
        p.add_argument("--desk", action="store_true", help=t("cli.opt.desk"))
        p.add_argument("--json", action="store_true", help=t("cli.opt.json"))
        return p

    add("checkout", card=True, item=True).set_defaults(handler=_checkout)
    add("checkin", card=False, item=True).set_defaults(handler=_checkin)
    add("renew", card=True, item=True).set_defaults(handler=_renew)
    pickup = add("pickup", card=True, item=False)
    pickup.add_argument("--hold", type=int, metavar="ID", help=t("cli.opt.hold"))
    pickup.set_defaults(handler=_pickup)
    batch = verbs.add_parser("batch", help=t("cli.help.batch"), description=t("cli.help.batch"),
                             epilog=t("cli.example.batch"),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    batch.add_argument("--desk", action="store_true", help=t("cli.opt.desk"))
    batch.set_defaults(handler=_batch)


def _circulation(app: App) -> Circulation:
    settings = app.settings()
    station = Station.DESK if app.args.desk else Station.KIOSK
    return Circulation(app.open_cache(), settings.identity(station), settings.policy(),
                       SystemClock(), online=False)


def describe(app: App, outcome: Outcome) -> str:
    """One line a person reads about one outcome: the decision, where the book goes, and
    what was recorded only provisionally."""
    d = outcome.decision
    params = outcome.params()
    mark = "✔" if d.allowed else "✘"
    parts = [f"{mark} {app.t(d.message_key, **params)}"]
    if d.route is not None and d.changes_state:
        parts.append(app.t(f"circ.route.{d.route.kind}", **params))
    if d.offer is not None:
        parts.append(app.t(f"circ.offer.{d.offer}"))
    notes = [app.t(f"circ.flag.{f}") for f in sorted(d.flags)]
    if notes:
        parts.append("(" + app.t("cli.list_separator").join(notes) + ")")
    return " ".join(parts)


def _report(app: App, outcomes: list[Outcome]) -> int:
    if app.json:
        app.emit_json([o.as_dict() | {"message": app.t(o.decision.message_key, **o.params())}
                       for o in outcomes])
    else:
        for o in outcomes:
            app.line(describe(app, o))
    return exitcodes.OK if all(o.allowed for o in outcomes) else exitcodes.REFUSED


def _each(app: App, act: Callable[[Circulation, str], Outcome]) -> int:
    circ = _circulation(app)
    try:
        return _report(app, [act(circ, barcode) for barcode in app.args.item])
    finally:
        circ.cache.close()


def _checkout(app: App) -> int:
    return _each(app, lambda c, item: c.checkout(app.args.card, item))


def _checkin(app: App) -> int:
    return _each(app, lambda c, item: c.checkin(item))


def _renew(app: App) -> int:
    return _each(app, lambda c, item: c.renew(app.args.card, item))


def _pickup(app: App) -> int:
    circ = _circulation(app)
    try:
        if app.args.hold is None:
            ready = circ.ready_holds(app.args.card)
            if app.json:
                app.emit_json(ready)
            elif not ready:
                app.say("circ.pickup.none")
            else:
                for hold in ready:
                    app.say("circ.pickup.ready", hold_id=hold["hold_id"],
                            title=hold.get("title") or hold["barcode"],
                            locker=hold["locker_slot"] or "-",
                            expires=hold["pickup_expires_on"] or "-")
            return exitcodes.OK if ready else exitcodes.REFUSED
        return _report(app, [circ.pickup(app.args.card, app.args.hold)])
    finally:
        circ.cache.close()


def _batch(app: App) -> int:
    """Read one request per line from stdin (``checkout CARD ITEM``, ``checkin ITEM``,
    ``renew CARD ITEM``) and print one JSON line per request once it is committed.

    A line is printed only after its transaction is durable, so whatever a caller has read
    from stdout survives a power cut. A malformed line gets an error line and the batch goes
    on; a database error ends the batch with exit code 4.
    """
    circ = _circulation(app)
    refused = False
    try:
        for number, raw in enumerate(sys.stdin, start=1):
            words = raw.split()
            if not words or words[0].startswith("#"):
                continue
            try:
                outcome = _batch_one(circ, words)
            except ValueError:
                print(json.dumps({"line": number, "error": "bad_request",
                                  "message": app.t("circ.batch.bad_line", line=raw.strip())},
                                 ensure_ascii=False), flush=True)
                refused = True
                continue
            except CacheError as exc:
                print(json.dumps({"line": number, "error": exc.message_key,
                                  "message": app.t(exc.message_key, **exc.params)},
                                 ensure_ascii=False), flush=True)
                return exitcodes.DATA
            refused |= not outcome.allowed
            print(json.dumps({"line": number, **outcome.as_dict()}, ensure_ascii=False),
                  flush=True)
    finally:
        circ.cache.close()
    return exitcodes.REFUSED if refused else exitcodes.OK


def _batch_one(circ: Circulation, words: list[str]) -> Outcome:
    verb, args = words[0], words[1:]
    if verb == "checkout" and len(args) == 2:
        return circ.checkout(args[0], args[1])
    if verb == "checkin" and len(args) == 1:
        return circ.checkin(args[0])
    if verb == "renew" and len(args) == 2:
        return circ.renew(args[0], args[1])
    raise ValueError(verb)


