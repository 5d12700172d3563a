"""Subcommands of ``kiosk``; see :mod:`kiosk.cli` for the protocol each module follows."""

from kiosk.commands import circ, config_cmd, db, demo, hub_cmd, queue, selftest, sync_cmd, tag

COMMAND_MODULES = (db, circ, queue, sync_cmd, config_cmd, demo, tag, selftest, hub_cmd)
