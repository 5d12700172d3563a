"""The control socket's commands (see :mod:`kiosk.daemon.control` for the protocol).

``hello``      version, pid, database, state: what a client checks first
``status``     state, devices, session, sync, queue depth, the flag journal, workers
``selftest``   ``{"devices": [...], "latches": false}``: each device tested on its own
               worker (its polling paused meanwhile); the reports of
               :mod:`hardware.selftest`. Latches are released only with ``latches: true``
``sync``       sync with the hub now and answer with the report (``no_hub`` without one)
``queue``      ``{"limit": N}``: what ``kiosk queue --json`` shows
``circ``       ``{"verb": "checkout"|"checkin"|"renew"|"pickup", "card", "items", "hold",
               "desk"}``: staff circulation on the daemon's writer (database only: no tag
               is written, as with ``kiosk circ`` without a daemon)
``stats``      ``{"since": "YYYY-MM-DD"}``: what ``kiosk stats --json`` shows
``pending``    the flag journal
``session``    ``{"action": "finish"|"lend"|"return"|"pickup", "hold"}``: the screen's
               buttons; ``pickup`` collects hold ``hold`` of the card holder from its locker
``sim``        act on the simulated devices (see :mod:`kiosk.daemon.simctl`)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kiosk import __version__
from kiosk.daemon import db
from kiosk.daemon.control import ControlError
from kiosk.daemon.selftests import DEVICES, WORKER_OF, check_device
from kiosk.daemon.simctl import SimError
from kiosk.daemon.state import Finish, Mode, Pickup, SetMode
from kiosk.daemon.steps import mask_card
from sync import stats as daily_stats
from sync.client import HubNotConfigured
from sync.errors import CacheError
from sync.policy import Station

if TYPE_CHECKING:
    from kiosk.daemon.app import Daemon

SYNC_WAIT_S = 300.0


def control_commands(daemon: Daemon) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
    """The handlers of ``daemon``'s control socket, by command name."""

    async def hello(args: dict[str, Any]) -> dict[str, Any]:
        return {"version": __version__, "pid": daemon.pid, "db": str(daemon.db_path),
                "state": str(daemon.state)}

    async def status(args: dict[str, Any]) -> dict[str, Any]:
        writer = _writer(daemon)
        store = await _db(writer.run(writer.read, db.store_report))
        session = daemon.machine.session
        now_workers = {name: {"healthy": w.healthy(), "polls": w.polls}
                       for name, w in daemon.workers.items()}
        return {
            "daemon": "running", "state": str(daemon.state), "version": __version__,
            "pid": daemon.pid, "started_at": daemon.started_at,
            "uptime_s": round(daemon.uptime(), 1), "device_id": daemon.identity.device_id,
            "branch": daemon.identity.branch, "profile": daemon.settings.device.profile,
            "db": str(daemon.db_path), "control_socket": str(daemon.settings.daemon.control_socket),
            "devices": daemon.device_status(), "printer_problems": list(daemon.printer_problems),
            "pad_checked": daemon.pad_checked,
            "session": None if session is None else {
                **session.summary(), "card": mask_card(session.card)},
            "sync": {"configured": daemon.sync is not None, "online": daemon.hub_online(),
                     "last_report": daemon.last_report},
            "sip2": daemon.sip2.status() if daemon.sip2 is not None else {"configured": False},
            "workers": now_workers, "unhealthy": daemon.unhealthy(),
            "door_alarms": _door_alarms(daemon),
            "ui": daemon.web.status() if daemon.web is not None else {"enabled": False},
            **store,
        }

    async def selftest(args: dict[str, Any]) -> dict[str, Any]:
        wanted = args.get("devices") or list(DEVICES)
        if not isinstance(wanted, list) or any(name not in DEVICES for name in wanted):
            raise ControlError("bad_arguments", "daemon.control.bad_arguments",
                               detail=f"devices are {', '.join(DEVICES)}")
        latches = args.get("latches", False)
        if not isinstance(latches, bool):
            raise ControlError("bad_arguments", "daemon.control.bad_arguments",
                               detail="latches is true or false")
        assert daemon.devices is not None
        reports = []
        for name in dict.fromkeys(wanted):
            worker = daemon.workers.get(WORKER_OF[name])
            if worker is None:
                continue  # the kiosk has no such device (a van has no lockers)
            report = await worker.call(check_device, daemon.devices, name, latches)
            if report is not None:
                reports.append(report.as_dict())
        return {"ok": all(r["ok"] for r in reports), "devices": reports}

    async def sync(args: dict[str, Any]) -> dict[str, Any]:
        if daemon.sync is None:
            exc = HubNotConfigured("no [hub] url in the config", code="no_hub",
                                   retryable=False)
            raise ControlError("no_hub", exc.message_key, **exc.params)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        daemon.sync_waiters.append(waiter)
        daemon.sync.request_sync()
        timeout = float(args.get("timeout") or SYNC_WAIT_S)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise ControlError("sync_timeout", "daemon.control.sync_timeout",
                               seconds=int(timeout)) from None

    async def queue(args: dict[str, Any]) -> dict[str, Any]:
        writer = _writer(daemon)
        return await _db(writer.run(writer.read, db.queue_report, _int(args, "limit", 50)))

    async def circ(args: dict[str, Any]) -> Any:
        return await _circulate(daemon, args)

    async def stats(args: dict[str, Any]) -> dict[str, Any]:
        writer = _writer(daemon)
        by = args.get("by") or "day"
        if by not in ("day", "stop"):
            raise ControlError("bad_arguments", "daemon.control.bad_arguments",
                               detail="by is day or stop")
        return await _db(writer.run(writer.read, lambda conn, since: daily_stats.report(
            conn, since, by=by, tz=daemon.identity.timezone), _text(args, "since")))

    async def pending(args: dict[str, Any]) -> list[dict[str, Any]]:
        writer = _writer(daemon)
        return await _db(writer.run(writer.read, db.pending_flags))

    async def session(args: dict[str, Any]) -> dict[str, Any]:
        action = args.get("action")
        if action == "finish":
            daemon.put(Finish())
        elif action in ("lend", "return"):
            daemon.put(SetMode(Mode(action)))
        elif action == "pickup":
            hold = args.get("hold")
            if isinstance(hold, bool) or not isinstance(hold, int):
                raise ControlError("bad_arguments", "daemon.control.bad_arguments",
                                   detail="hold is a hold number")
            current = daemon.machine.session
            if current is None or current.card is None:
                raise ControlError("no_card_session", "daemon.control.no_card_session")
            daemon.put(Pickup(hold))
            return {"done": action, "hold": hold}
        else:
            raise ControlError("bad_arguments", "daemon.control.bad_arguments",
                               detail="session actions: finish, lend, return, pickup")
        return {"done": action}

    async def sim(args: dict[str, Any]) -> dict[str, Any]:
        assert daemon.simctl is not None
        try:
            return await daemon.simctl.handle(args)
        except SimError as exc:
            raise ControlError(exc.code, exc.message_key, **exc.params) from None

    return {"hello": hello, "status": status, "selftest": selftest, "sync": sync,
            "queue": queue, "stats": stats, "circ": circ, "pending": pending,
            "session": session, "sim": sim}


def _door_alarms(daemon: Daemon) -> list[str]:
    """The doors left open now (``door``, or locker slots)."""
    doors = daemon.workers.get("doors")
    return sorted(getattr(doors, "alarms", ()))


def _writer(daemon: Daemon) -> db.Writer:
    if daemon.writer is None:
        raise ControlError("starting", "daemon.control.starting")
    return daemon.writer


async def _db(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except CacheError as exc:
        raise ControlError("database", exc.message_key, **exc.params) from None


def _int(args: dict[str, Any], name: str, default: int) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ControlError("bad_arguments", "daemon.control.bad_arguments",
                           detail=f"{name} must be a whole number")
    return value


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise ControlError("bad_arguments", "daemon.control.bad_arguments",
                           detail=f"{name} is required")
    return value


async def _circulate(daemon: Daemon, args: dict[str, Any]) -> Any:
    writer = _writer(daemon)
    verb = args.get("verb")
    station = Station.DESK if args.get("desk") else Station.KIOSK
    items = args.get("items") or []
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ControlError("bad_arguments", "daemon.control.bad_arguments",
                           detail="items is a list of barcodes")
    if verb == "pickup":
        card = _text(args, "card")
        hold = args.get("hold")
        if hold is None:
            return {"ready": await _db(writer.run(writer.ready_holds, card))}
        if isinstance(hold, bool) or not isinstance(hold, int):
            raise ControlError("bad_arguments", "daemon.control.bad_arguments",
                               detail="hold is a hold number")
        outcome = await _db(writer.run(writer.pickup, card, hold, station))
        return {"outcomes": [db.outcome_dict(outcome)]}
    if verb not in ("checkout", "checkin", "renew") or not items:
        raise ControlError("bad_arguments", "daemon.control.bad_arguments",
                           detail="verb is checkout, checkin, renew or pickup, with items")
    outcomes = []
    for barcode in items:
        if verb == "checkin":
            outcome = await _db(writer.run(writer.checkin, barcode, station))
        else:
            call = writer.checkout if verb == "checkout" else writer.renew
            outcome = await _db(writer.run(call, _text(args, "card"), barcode, station))
        outcomes.append(db.outcome_dict(outcome))
    return {"outcomes": outcomes}
