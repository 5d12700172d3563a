"""``kiosk logs``: the recent journal lines of the kiosk's services (journalctl does the
work; this only knows which units to ask for), so a technician need not remember the unit
names. ``--follow`` keeps printing new lines until Ctrl-C; ``--json`` prints the journal's
own JSON, one entry per line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
from collections.abc import Callable

from kiosk import exitcodes
from kiosk.app import App
from kiosk.config import ConfigInvalid
from kiosk.control_client import note_daemon

UNITS = {"daemon": "library-kiosk.service", "screen": "library-kiosk-ui.service",
         "maintenance": "library-kiosk-maintenance.service"}


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("logs", help=t("cli.help.logs"), description=t("cli.help.logs"),
                       epilog=t("cli.example.logs"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--lines", type=int, default=100, metavar="N",
                   help=t("cli.opt.logs_lines"))
    p.add_argument("--unit", choices=sorted(UNITS), action="append",
                   help=t("cli.opt.logs_unit"))
    p.add_argument("--follow", "-f", action="store_true", help=t("cli.opt.logs_follow"))
    p.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    p.set_defaults(handler=_logs)


def command(app: App) -> list[str] | None:
    """The journalctl command line for ``app.args`` (None when there is no journalctl)."""
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return None
    argv = [journalctl, "--no-pager", "-n", str(max(1, app.args.lines)),
            "-o", "json" if app.json else "short-iso"]
    for name in app.args.unit or ["daemon"]:
        argv += ["-u", UNITS[name]]
    if app.args.follow:
        argv.append("--follow")
    return argv


def _logs(app: App) -> int:
    # The logs are wanted most when the config is broken: then only whether the daemon
    # runs is left unsaid.
    with contextlib.suppress(ConfigInvalid):
        note_daemon(app)
    argv = command(app)
    if argv is None:
        app.warn("cli.logs.no_journal")
        return exitcodes.REFUSED
    app.out.flush()
    app.err.flush()
    os.execv(argv[0], argv)  # journalctl's own exit code and Ctrl-C handling
    return exitcodes.REFUSED  # not reached
