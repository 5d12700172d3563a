"""Subcommands of ``kiosk``; see :mod:`kiosk.cli` for the protocol each module follows."""

from kiosk.commands import circ, config_cmd, db, demo, hub_cmd, queue, selftest, tag

COMMAND_MODULES = (db, circ, queue, config_cmd, demo, tag, selftest, hub_cmd)
