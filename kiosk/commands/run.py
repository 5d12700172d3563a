"""``kiosk run``: the daemon, in the foreground (systemd runs it as a ``Type=notify``
service; see docs/daemon.md). Logs go to stderr, which the journal keeps.

Exit codes: 0 stopped by SIGTERM or SIGINT; 1 another daemon already answers on the control
socket, or a device could not be set up; 3 the config is invalid; 4 the database cannot be
used.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Callable

from kiosk import exitcodes
from kiosk.app import App


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("run", help=t("cli.help.run"), description=t("cli.help.run"),
                       epilog=t("cli.example.run"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log-level", default=os.environ.get("KIOSK_LOG_LEVEL", "INFO"),
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"), help=t("cli.opt.log_level"))
    p.set_defaults(handler=_run)


def setup_logging(level: str) -> None:
    """Plain lines on stderr: the journal adds the time and the unit."""
    logging.basicConfig(level=getattr(logging, level),
                        format="%(levelname)s %(name)s: %(message)s")


def _run(app: App) -> int:
    from drivers.errors import DriverError
    from hardware.roles import HardwareError
    from kiosk.daemon.app import Daemon
    from kiosk.daemon.control import AlreadyRunning
    from sync.errors import CacheError

    setup_logging(app.args.log_level)
    settings = app.settings()
    daemon = Daemon(settings, db_path=app.db_path())
    try:
        return asyncio.run(daemon.main())
    except AlreadyRunning:
        app.warn("daemon.run.already_running", socket=settings.daemon.control_socket)
        return exitcodes.REFUSED
    except CacheError:
        raise  # the command's own handling: the database's message, exit code 4
    except (HardwareError, DriverError, OSError, ValueError) as exc:
        logging.getLogger("kiosk.daemon").exception("start failed")
        app.warn("daemon.run.start_failed", detail=str(exc))
        return exitcodes.REFUSED
