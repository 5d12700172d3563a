"""``kiosk sim ...``: act on the simulated devices of a running daemon (``kiosk demo``, or
``kiosk run`` with the ``sim`` profile), through its control socket.

    kiosk sim card UID | --card NUMBER | remove      a card on the reader (or taken away)
    kiosk sim entry-card UID | --card NUMBER | remove   the same at the entrance (night entry)
    kiosk sim place BARCODE...                     books on the pad
    kiosk sim remove BARCODE... | --all            books off the pad
    kiosk sim door open|close|jam|clear [--name N]  the entrance door (or locker slot N)
    kiosk sim printer paper-out|paper-in|cover-open|cover-closed|unplug|replug
    kiosk sim reader unplug|replug                 the tag reader's cable
    kiosk sim reader fault NAME [--count N]        a fault in the next tag commands
    kiosk sim pickup HOLD_ID                       collect a ready hold from its locker
    kiosk sim finish                               the screen's "finish" button
    kiosk sim show                                 what the simulated world looks like

Exit codes: 0 done; 1 no daemon runs, or the device is not simulated, or the request was
refused (the message says why); 2 wrong arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from kiosk import exitcodes
from kiosk.app import App
from kiosk.control_client import daemon_for
from kiosk.daemon.simverbs import DOOR_ACTIONS, PRINTER_VERBS, READER_ACTIONS
from kiosk.daemon.simverbs import READER_FAULTS as FAULTS


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    sim = sub.add_parser("sim", help=t("cli.help.sim"), description=t("cli.help.sim"))
    verbs = sim.add_subparsers(dest="verb", metavar="ACTION", title=t("cli.commands"))
    verbs.required = True

    def add(name: str, handler: Callable[[App], int]) -> argparse.ArgumentParser:
        key = name.replace("-", "_")
        p = verbs.add_parser(name, help=t(f"cli.help.sim_{key}"),
                             description=t(f"cli.help.sim_{key}"),
                             epilog=t(f"cli.example.sim_{key}"),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--json", action="store_true", help=t("cli.opt.json"))
        p.set_defaults(handler=handler)
        return p

    card = add("card", _card)
    card.add_argument("uid", nargs="?", metavar="UID|remove", help=t("cli.opt.sim_uid"))
    card.add_argument("--card", dest="number", metavar="NUMBER", help=t("cli.opt.sim_card"))
    entry = add("entry-card", _entry_card)
    entry.add_argument("uid", nargs="?", metavar="UID|remove", help=t("cli.opt.sim_uid"))
    entry.add_argument("--card", dest="number", metavar="NUMBER", help=t("cli.opt.sim_card"))
    add("place", _place).add_argument("barcodes", nargs="+", metavar="BARCODE",
                                      help=t("cli.opt.sim_barcodes"))
    remove = add("remove", _remove)
    remove.add_argument("barcodes", nargs="*", metavar="BARCODE", help=t("cli.opt.sim_barcodes"))
    remove.add_argument("--all", action="store_true", help=t("cli.opt.sim_all"))
    door = add("door", _door)
    door.add_argument("action", choices=DOOR_ACTIONS, help=t("cli.opt.sim_action"))
    door.add_argument("--name", default="door", metavar="NAME", help=t("cli.opt.sim_door_name"))
    add("printer", _printer).add_argument("action", choices=PRINTER_VERBS,
                                          help=t("cli.opt.sim_action"))
    reader = add("reader", _reader)
    reader.add_argument("action", choices=READER_ACTIONS, help=t("cli.opt.sim_action"))
    reader.add_argument("fault", nargs="?", choices=FAULTS, help=t("cli.opt.sim_fault"))
    reader.add_argument("--count", type=int, default=1, metavar="N", help=t("cli.opt.sim_count"))
    add("pickup", _pickup).add_argument("hold", type=int, metavar="HOLD_ID",
                                        help=t("cli.opt.sim_hold"))
    add("finish", _finish)
    add("show", _show)


def _ask(app: App, cmd: str, **args: Any) -> Any:
    """The daemon's answer; None (after saying why) when no daemon runs."""
    client = daemon_for(app, db=False)
    if client is None:
        app.warn("daemon.sim.not_running", socket=app.settings().daemon.control_socket)
        return None
    with client:
        return client.request(cmd, **args)


def _done(app: App, result: Any, key: str, **params: Any) -> int:
    if result is None:
        return exitcodes.REFUSED
    if app.json:
        app.emit_json(result)
    else:
        app.say(key, **params)
    return exitcodes.OK


def _card(app: App, device: str = "card", placed: str = "daemon.sim.card_placed") -> int:
    uid, number = app.args.uid, app.args.number
    if uid == "remove":
        result = _ask(app, "sim", device=device, action="remove")
        return _done(app, result, "daemon.sim.card_removed")
    if (uid is None) == (number is None):
        app.warn("daemon.sim.card_usage")
        return exitcodes.USAGE
    result = _ask(app, "sim", device=device, action="place", uid=uid, card_number=number)
    return _done(app, result, placed, card=number or (result or {}).get("uid", uid))


def _entry_card(app: App) -> int:
    return _card(app, "entrance_card", "daemon.sim.entry_card_placed")


def _place(app: App) -> int:
    result = _ask(app, "sim", device="place", barcodes=app.args.barcodes)
    return _done(app, result, "daemon.sim.placed", count=len(app.args.barcodes),
                 barcodes=" ".join(app.args.barcodes))


def _remove(app: App) -> int:
    if not app.args.all and not app.args.barcodes:
        app.warn("daemon.sim.remove_usage")
        return exitcodes.USAGE
    result = _ask(app, "sim", device="remove", barcodes=app.args.barcodes, all=app.args.all)
    removed = [r["barcode"] or r["uid"] for r in (result or {}).get("removed", [])]
    return _done(app, result, "daemon.sim.removed", count=len(removed),
                 barcodes=" ".join(removed))


def _door(app: App) -> int:
    result = _ask(app, "sim", device="door", action=app.args.action, name=app.args.name)
    return _done(app, result, f"daemon.sim.door_{app.args.action}", name=app.args.name)


def _printer(app: App) -> int:
    result = _ask(app, "sim", device="printer", action=app.args.action)
    return _done(app, result, "daemon.sim.printer", action=app.args.action)


def _reader(app: App) -> int:
    if app.args.action == "fault" and app.args.fault is None:
        app.warn("daemon.sim.fault_usage", faults=", ".join(FAULTS))
        return exitcodes.USAGE
    result = _ask(app, "sim", device="reader", action=app.args.action, fault=app.args.fault,
                  count=app.args.count)
    return _done(app, result, "daemon.sim.reader", action=app.args.action,
                 fault=app.args.fault or "")


def _pickup(app: App) -> int:
    result = _ask(app, "session", action="pickup", hold=app.args.hold)
    return _done(app, result, "daemon.sim.pickup", hold_id=app.args.hold)


def _finish(app: App) -> int:
    result = _ask(app, "session", action="finish")
    return _done(app, result, "daemon.sim.finished")


def _show(app: App) -> int:
    result = _ask(app, "sim", device="show")
    if result is None:
        return exitcodes.REFUSED
    app.emit_json(result)
    return exitcodes.OK
