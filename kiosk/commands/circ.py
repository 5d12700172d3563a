"""``kiosk circ checkout|checkin|renew|pickup|batch``: staff circulation.

When the daemon runs they go through its control socket (the daemon owns the database);
otherwise, or with ``--db`` naming another database than the daemon's, they work on the
database directly. Either way the same rules decide and the output is the same. These
commands record circulation only: no tag is written (the pad's loans go through the daemon's
sessions, which set the security flags).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from kiosk import exitcodes
from kiosk.app import App
from kiosk.control_client import ControlClient, daemon_for
from kiosk.daemon.db import outcome_dict
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


class _Direct:
    """Circulation on the database itself (no daemon runs)."""

    def __init__(self, app: App) -> None:
        settings = app.settings()
        station = Station.DESK if app.args.desk else Station.KIOSK
        self.circ = Circulation(app.open_cache(), settings.identity(station), settings.policy(),
                                SystemClock(), online=False)

    def do(self, verb: str, card: str | None, barcode: str) -> dict[str, Any]:
        if verb == "checkout":
            return outcome_dict(self.circ.checkout(str(card), barcode))
        if verb == "checkin":
            return outcome_dict(self.circ.checkin(barcode))
        return outcome_dict(self.circ.renew(str(card), barcode))

    def pickup(self, card: str, hold: int) -> dict[str, Any]:
        return outcome_dict(self.circ.pickup(card, hold))

    def ready(self, card: str) -> list[dict[str, Any]]:
        return self.circ.ready_holds(card)

    def close(self) -> None:
        self.circ.cache.close()


class _ViaDaemon:
    """Circulation through the running daemon, which owns the database."""

    def __init__(self, client: ControlClient, desk: bool) -> None:
        self.client = client
        self.desk = desk

    def do(self, verb: str, card: str | None, barcode: str) -> dict[str, Any]:
        result = self.client.request("circ", verb=verb, card=card, items=[barcode],
                                     desk=self.desk)
        return result["outcomes"][0]

    def pickup(self, card: str, hold: int) -> dict[str, Any]:
        result = self.client.request("circ", verb="pickup", card=card, hold=hold,
                                     desk=self.desk)
        return result["outcomes"][0]

    def ready(self, card: str) -> list[dict[str, Any]]:
        return self.client.request("circ", verb="pickup", card=card, desk=self.desk)["ready"]

    def close(self) -> None:
        self.client.close()


def _backend(app: App) -> _Direct | _ViaDaemon:
    client = daemon_for(app)
    return _Direct(app) if client is None else _ViaDaemon(client, app.args.desk)


def describe(app: App, outcome: Outcome) -> str:
    """One line a person reads about one outcome (see :func:`describe_dict`)."""
    return describe_dict(app, outcome_dict(outcome))


def describe_dict(app: App, outcome: dict[str, Any]) -> str:
    """One line a person reads about one outcome (as :func:`outcome_dict` gives it): the
    decision, where the book goes, and what was recorded only provisionally."""
    params = outcome["params"]
    mark = app.mark(bool(outcome["allowed"]))
    parts = [f"{mark} {app.t(outcome['message_key'], **params)}"]
    route = outcome.get("route")
    if route is not None and outcome.get("changes_state", True):
        parts.append(app.t(f"circ.route.{route['kind']}", **params))
    if outcome.get("offer"):
        parts.append(app.t(f"circ.offer.{outcome['offer']}"))
    notes = [app.t(f"circ.flag.{f}") for f in sorted(outcome.get("flags") or [])]
    if notes:
        parts.append("(" + app.t("cli.list_separator").join(notes) + ")")
    return " ".join(parts)


def _report(app: App, outcomes: list[dict[str, Any]]) -> int:
    if app.json:
        app.emit_json([o | {"message": app.t(o["message_key"], **o["params"])}
                       for o in outcomes])
    else:
        for o in outcomes:
            app.line(describe_dict(app, o))
    return exitcodes.OK if all(o["allowed"] for o in outcomes) else exitcodes.REFUSED


def _each(app: App, verb: str) -> int:
    backend = _backend(app)
    try:
        card = getattr(app.args, "card", None)
        return _report(app, [backend.do(verb, card, barcode) for barcode in app.args.item])
    finally:
        backend.close()


def _checkout(app: App) -> int:
    return _each(app, "checkout")


def _checkin(app: App) -> int:
    return _each(app, "checkin")


def _renew(app: App) -> int:
    return _each(app, "renew")


def _pickup(app: App) -> int:
    backend = _backend(app)
    try:
        if app.args.hold is None:
            ready = backend.ready(app.args.card)
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
        return _report(app, [backend.pickup(app.args.card, app.args.hold)])
    finally:
        backend.close()


def _batch(app: App) -> int:
    """Read one request per line from stdin (``checkout CARD ITEM``, ``checkin ITEM``,
    ``renew CARD ITEM``) and print one JSON line per request once it is committed.

    A line is printed only after its transaction is durable, so whatever a caller has read
    from stdout survives a power cut. A malformed line gets an error line and the batch goes
    on; a database error ends the batch with exit code 4.
    """
    backend = _backend(app)
    refused = False
    try:
        for number, raw in enumerate(sys.stdin, start=1):
            words = raw.split()
            if not words or words[0].startswith("#"):
                continue
            try:
                outcome = _batch_one(backend, words)
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
            refused |= not outcome["allowed"]
            print(json.dumps({"line": number, **outcome}, ensure_ascii=False, default=str),
                  flush=True)
    finally:
        backend.close()
    return exitcodes.REFUSED if refused else exitcodes.OK


def _batch_one(backend: _Direct | _ViaDaemon, words: list[str]) -> dict[str, Any]:
    verb, args = words[0], words[1:]
    if verb == "checkout" and len(args) == 2:
        return backend.do("checkout", args[0], args[1])
    if verb == "checkin" and len(args) == 1:
        return backend.do("checkin", None, args[0])
    if verb == "renew" and len(args) == 2:
        return backend.do("renew", args[0], args[1])
    raise ValueError(verb)
