"""``kiosk config check FILE`` and ``kiosk config show``: the technician's view of the config.

``check`` lists every problem of a file at once (``FILE:LINE: key: message``) and exits 1
when there is any; ``show`` prints the settings the kiosk would run with, secrets masked,
and exits 3 when the file given with the global ``--config`` cannot be used.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from kiosk import config, exitcodes
from kiosk.app import App
from kiosk.config import sections, show
from kiosk.config.problems import describe, format_problem
from kiosk.control_client import note_daemon


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    group = sub.add_parser("config", help=t("config.help.group"),
                           description=t("config.help.group"))
    commands = group.add_subparsers(dest="config_command", metavar="COMMAND")
    commands.required = True

    check = commands.add_parser("check", help=t("config.help.check"),
                                description=t("config.help.check"),
                                epilog=t("config.example.check"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("file", metavar="FILE", help=t("config.help.file"))
    check.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    check.set_defaults(handler=_check)

    show_ = commands.add_parser("show", help=t("config.help.show"),
                                description=t("config.help.show"),
                                epilog=t("config.example.show"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    show_.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    show_.set_defaults(handler=_show)


def _check(app: App) -> int:
    file = app.args.file
    problems = config.check(Path(file))
    if app.json:
        app.emit_json({
            "file": file,
            "ok": not problems,
            "problems": [
                {"line": p.line, "key": p.key, "message_key": p.message_key,
                 "params": dict(p.params), "message": describe(p, app.t)}
                for p in problems
            ],
        })
    elif problems:
        for problem in problems:
            app.line(format_problem(problem, app.t))
        app.say("config.check.summary", count=len(problems))
    else:
        app.say("config.check.ok", file=file)
    return exitcodes.REFUSED if problems else exitcodes.OK


def _show(app: App) -> int:
    file = getattr(app.args, "config", None)
    # Looked up at call time, so a section declared later (or in a test) is shown too.
    schema = sections.SCHEMA
    resolved = config.resolve_file(Path(file), schema) if file else config.resolve_defaults(schema)
    if resolved.problems:
        for line in config.ConfigInvalid(file or "", resolved.problems).report(app.t):
            print(line, file=app.err)
        return exitcodes.CONFIG
    note_daemon(app)  # the file as it is now; a running daemon uses what it read at its start
    if app.json:
        app.emit_json({
            "file": file,
            "profile": resolved.profile,
            "settings": show.render_json(schema, resolved),
            "defaults": show.defaulted(schema, resolved),
        })
        return exitcodes.OK
    heading = app.t("config.show.source", file=file) if file else app.t("config.show.no_file")
    app.line(f"# {heading}")
    app.line()
    for line in show.render_text(schema, resolved, app.t):
        app.line(line)
    return exitcodes.OK

