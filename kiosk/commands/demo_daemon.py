"""``kiosk demo``: the reference hub and the kiosk daemon on simulated hardware, in the
foreground until Ctrl-C.

The hub (on 127.0.0.1, a free port) serves the small sample county with its dates moved to
today; the kiosk (device ``sim-01``) starts with an empty database in ``--dir`` and takes its
first snapshot from the hub through the daemon's own sync worker. Then the demo prints what
to try in another terminal (``kiosk sim card ...``, ``kiosk sim place ...``: the control
socket is the simulated profile's default, so no option is needed) and narrates what happens
at the pad. Only the ``sim`` profile may be used: a demo must never drive real doors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import sys
from pathlib import Path
from typing import Any

from kiosk import exitcodes
from kiosk.app import App
from kiosk.commands.demo import fresh, hub_db
from kiosk.commands.run import setup_logging
from kiosk.config.settings import DatabaseSettings, Settings
from sync import personal, sample, sample_data
from sync.clock import SystemClock, read

FIRST_SYNC_WAIT_S = 120.0
# What the narration shows of each event: (catalogue key, sign); None: not shown.
SHOWN = {"lent": "✔", "returned": "✔", "not_lent": "✘", "not_returned": "✘",
         "hand_to_staff": "⚠", "unreadable": "⚠", "warning": "…"}


def run_daemon_demo(app: App) -> int:
    from kiosk.daemon.app import Daemon
    from kiosk.daemon.control import AlreadyRunning
    from sync.hub.testing import HubServer

    settings = app.settings()
    if settings.device.profile != "sim":
        app.warn("demo.daemon.sim_only", profile=settings.device.profile)
        return exitcodes.CONFIG
    setup_logging("WARNING")
    folder = Path(app.args.dir).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    identity = settings.identity()
    hub_path, db_path = fresh(folder, "hub.db"), fresh(folder, "demo.db")
    hub_db(hub_path, read(SystemClock()).local_date(identity.timezone))
    token = secrets.token_urlsafe(24)
    token_file = folder / "hub-token"
    token_file.write_text(token + "\n", encoding="ascii")
    token_file.chmod(0o600)
    with HubServer(hub_path, devices={identity.device_id: token}) as hub:
        # The van desk works in the demo: the sample van's stops, and registering readers
        # with a personal-data key file of the demo's own.
        key_file = fresh(folder, "personal-data.key")
        personal.create_key_file(key_file)
        desk = dataclasses.replace(settings.desk, registration=True, key_file=key_file,
                                   stops=settings.desk.stops or sample_data.VAN_STOPS)
        settings = dataclasses.replace(
            settings, database=DatabaseSettings(db_path), desk=desk,
            hub=dataclasses.replace(settings.hub, url=hub.url, token_file=token_file))
        daemon = Daemon(settings, db_path=db_path, create_db=True)
        try:
            return asyncio.run(_serve(app, daemon, settings, hub.url))
        except AlreadyRunning:
            app.warn("daemon.run.already_running", socket=settings.daemon.control_socket)
            return exitcodes.REFUSED


async def _serve(app: App, daemon: Any, settings: Settings, hub_url: str) -> int:
    events = daemon.bus.subscribe()
    narrator = asyncio.ensure_future(_narrate(app, daemon, settings, hub_url, events))
    try:
        return await daemon.main()
    finally:
        narrator.cancel()
        app.say("demo.daemon.stopped")


async def _narrate(app: App, daemon: Any, settings: Settings, hub_url: str,
                   events: asyncio.Queue) -> None:
    await daemon.wait_ready()
    app.say("demo.daemon.starting", hub=hub_url, db=daemon.db_path)
    _flush(app)
    deadline = asyncio.get_running_loop().time() + FIRST_SYNC_WAIT_S
    while True:
        left = deadline - asyncio.get_running_loop().time()
        try:
            event = await asyncio.wait_for(events.get(), max(left, 0.01))
        except TimeoutError:
            break
        if event is None:
            return
        if event["event"] == "sync":
            break
    _try_this(app, daemon, settings)
    while (event := await events.get()) is not None:
        line = _describe(app, daemon, event)
        if line:
            app.line(line)
            _flush(app)


def _try_this(app: App, daemon: Any, settings: Settings) -> None:
    cases = sample.EDGE_CASES
    # The command as it was typed (scripts/demo runs .venv/bin/kiosk), else plain "kiosk".
    typed = sys.argv[0] if Path(sys.argv[0]).name == "kiosk" else "kiosk"
    kiosk = typed + (f" --config {app.args.config}" if app.args.config else "")
    report = daemon.last_report or {}
    app.say("demo.daemon.try", kiosk=kiosk, card=cases["ok_patron"],
            expired=cases["expired_patron"], item=cases["available_item"],
            item2=cases["available_item_2"], reference=cases["reference_item"],
            on_loan=cases["on_loan_item"], rows=report.get("snapshot_rows", 0),
            receipts=settings.daemon.runtime_path / "receipts")
    if daemon.devices is not None and daemon.devices.lockers is not None:
        app.say("demo.daemon.try_doors", kiosk=kiosk, hold_card=cases["ready_hold_patron"],
                hold=cases["ready_hold"], card=cases["ok_patron"])
    if settings.desk.enabled:
        staff_card = sample_data.STAFF[0][0]
        pin = sample_data.DEMO_STAFF_PINS[staff_card]
        app.say("demo.daemon.try_desk", kiosk=kiosk, staff_card=staff_card, pin=pin,
                stops="、".join(settings.desk.stops) or "-")
    web = getattr(daemon, "web", None)
    if web is not None and web.url:
        app.say("demo.daemon.screen", url=web.url)
    _flush(app)


def _describe(app: App, daemon: Any, event: dict[str, Any]) -> str | None:
    kind = event["event"]
    if kind in SHOWN:
        text = app.t(event["message_key"], **event.get("params") or {})
        notes = [app.t(n, **event.get("params") or {}) for n in event.get("notes") or []]
        return f"  {SHOWN[kind]} " + " ".join([text, *notes])
    if kind == "session_started":
        return app.t("demo.event.session_started", mode=app.t(f"daemon.mode.{event['mode']}"),
                     card=event["card"] or "-")
    if kind == "session_ended":
        return app.t("demo.event.session_ended", reason=app.t(f"demo.reason.{event['reason']}"))
    if kind == "receipt_printed":
        jobs = daemon.devices.sims.printer.jobs if daemon.devices.sims.printer else []
        png = jobs[-1].png if jobs else None
        return app.t("demo.event.receipt_printed", png=png or "-")
    if kind == "receipt_failed":
        return "  ⚠ " + app.t(event["message_key"], **event.get("params") or {})
    if kind == "device":
        key = "demo.event.device_online" if event["online"] else "demo.event.device_offline"
        return app.t(key, device=app.t(f"selftest.device.{event['device']}"))
    return None


def _flush(app: App) -> None:
    app.out.flush()
