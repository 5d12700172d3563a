"""The ``kiosk`` command: one entry point, a subcommand per job (DESIGN.md section 7).

Each module in :mod:`kiosk.commands` exposes ``register(subparsers, t)``, which adds its
subcommands and sets ``handler`` on them; a handler takes an :class:`~kiosk.app.App` and
returns an exit code from :mod:`kiosk.exitcodes`. Help texts come from the catalogue, so the
``--lang`` option is read before the parser is built.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kiosk import __version__, exitcodes
from kiosk.app import App
from kiosk.commands import COMMAND_MODULES
from kiosk.config import ConfigInvalid
from kiosk.control_client import DaemonError
from kiosk.messages import Catalogue, choose_language
from sync.errors import CacheError


def _early_language(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    return None


def build_parser(catalogue: Catalogue) -> argparse.ArgumentParser:
    t = catalogue.text
    parser = argparse.ArgumentParser(
        prog="kiosk", description=t("cli.description"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"library-kiosk {__version__}")
    parser.add_argument("--config", metavar="FILE", help=t("cli.opt.config"))
    parser.add_argument("--db", metavar="FILE", help=t("cli.opt.db"))
    parser.add_argument("--lang", metavar="LANG", help=t("cli.opt.lang"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title=t("cli.commands"))
    sub.required = True
    for module in COMMAND_MODULES:
        module.register(sub, t)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        catalogue = Catalogue(choose_language(_early_language(argv)))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return exitcodes.USAGE
    parser = build_parser(catalogue)
    args = parser.parse_args(argv)
    app = App(args, catalogue)
    try:
        return int(args.handler(app))
    except ConfigInvalid as exc:
        for line in exc.report(app.t):
            print(line, file=app.err)
        return exitcodes.CONFIG
    except CacheError as exc:
        app.warn(exc.message_key, **exc.params)
        return exitcodes.DATA
    except DaemonError as exc:
        params = dict(exc.params)
        device = f"selftest.device.{params.get('device')}"
        if catalogue.has(device):  # the daemon names a device by its role; say it in words
            params["device"] = catalogue.text(device)
        app.warn(exc.message_key, **params)
        return exc.exit_code
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED
    except BrokenPipeError:
        return exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
