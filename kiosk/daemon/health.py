"""The daemon's health as systemd and the technician see it: which devices are online, which
workers are making progress, and the watchdog that is fed only while all of them do.

A worker is stalled when it has not come round its loop in time (a driver stuck in I/O); a
device that is merely offline is not a stalled worker, it is being reconnected. The sync
worker is stalled only inside one HTTP request that outlasts its timeouts (waiting between
syncs, or for days for the network, is healthy), the database writer only inside one call
that takes longer than ``worker_stall_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from hardware.build import Devices
from kiosk.daemon.notify import Notifier

log = logging.getLogger(__name__)

LINKED_ROLES = ("tag_reader", "card_reader", "printer", "entrance_reader")


def role_of(devices: Devices | None, link_name: str) -> str | None:
    """The role (``tag_reader``...) of the device whose link is called ``link_name``."""
    if devices is None:
        return None
    for role in LINKED_ROLES:
        device = getattr(devices, role)
        if device is not None and device.name == link_name:
            return role
    return None


def device_status(devices: Devices | None) -> dict[str, dict[str, Any]]:
    """Each device of ``devices``: ``online``, ``where``, ``simulated``, ``detail`` (the link's
    last error while offline); the entrance door also ``left_open`` (its alarm)."""
    out: dict[str, dict[str, Any]] = {}
    if devices is None:
        return out
    sims = devices.sims
    for role, sim in zip(LINKED_ROLES, (sims.tag_pad, sims.card_chip, sims.printer,
                                        sims.entrance_chip), strict=True):
        device = getattr(devices, role)
        if device is None:
            continue
        link = getattr(device, "link", None)
        online = link.online if link is not None else True
        out[role] = {"online": online, "where": getattr(device, "url", device.name),
                     "simulated": sim is not None,
                     "detail": "" if online or link is None else link.last_error}
    if devices.lockers is not None:
        out["lockers"] = {"online": True, "where": devices.lockers.name,
                          "simulated": sims.locker_doors is not None, "detail": ""}
    if devices.door is not None:
        out["door"] = {"online": True, "where": devices.door.name,
                       "simulated": sims.entrance is not None, "detail": "",
                       "left_open": devices.door.left_open}
    return out


def unhealthy(workers: dict[str, Any], sync: Any, writer: Any, writer_stall: float,
              now: float | None = None) -> list[str]:
    """Names of the workers that have not made progress in time (empty: all healthy)."""
    now = time.monotonic() if now is None else now
    bad = [name for name, worker in workers.items() if not worker.healthy(now)]
    if sync is not None and not sync.healthy(now):
        bad.append("sync")
    if writer is not None and not writer.healthy(now, writer_stall):
        bad.append("database")
    return bad


async def feed_watchdog(notifier: Notifier, stalled: Callable[[], list[str]],
                        status: Callable[[], str]) -> None:
    """Send ``WATCHDOG=1`` at half systemd's interval while ``stalled()`` is empty; say in
    ``STATUS=`` which worker stalled, and when all are well again. Returns at once when
    systemd set no watchdog for this process."""
    interval = notifier.watchdog_interval
    if interval is None:
        return
    reported: tuple[str, ...] = ()
    while True:
        now_stalled = tuple(stalled())
        if not now_stalled:
            notifier.watchdog()
        if now_stalled != reported:
            reported = now_stalled
            if now_stalled:
                log.error("watchdog not fed: stalled %s", ", ".join(now_stalled))
                notifier.status(f"stalled: {', '.join(now_stalled)}")
            else:
                notifier.status(status())
        await asyncio.sleep(interval / 2)
