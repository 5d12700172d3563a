"""Subcommands of ``kiosk``; see :mod:`kiosk.cli` for the protocol each module follows."""

from kiosk.commands import (
    circ,
    config_cmd,
    db,
    demo,
    hub_cmd,
    keys,
    logs,
    queue,
    run,
    selftest,
    sim,
    stats,
    status,
    sync_cmd,
    tag,
)

COMMAND_MODULES = (run, status, db, circ, queue, stats, sync_cmd, config_cmd, demo, tag, selftest,
                   sim, logs, hub_cmd, keys)
