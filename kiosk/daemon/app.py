"""The kiosk daemon (``kiosk run``): one asyncio process that owns the devices, the cache
and the sync, drivable over the control socket, supervised by systemd.

Start: open (and migrate) the cache -> build and probe the devices -> start one worker per
device and the sync worker (when ``[hub] url`` is set) -> listen on the control socket ->
READY (or DEGRADED when a device is offline; it keeps being reconnected) and ``READY=1``.
Stop (SIGTERM, SIGINT or :meth:`Daemon.request_stop`): ``STOPPING=1``, every latch locked at
once (a pulse in progress ends), no new work, the event in progress finished and the session
ended, workers and syncer stopped, every device to its safe state and closed
(:meth:`hardware.build.Devices.close`), the cache checkpointed and closed; each step in its
own ``try`` so one failure never skips the next.

Everything the daemon does for patrons goes through one queue of events consumed by one
task: the session machine (:mod:`kiosk.daemon.session`) decides, the steps
(:mod:`kiosk.daemon.steps`) act. The control commands are in :mod:`kiosk.daemon.commands`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drivers.errors import DriverError
from hardware.build import Devices, build
from hardware.roles import HardwareError
from kiosk import __version__
from kiosk.config.settings import Settings
from kiosk.daemon import db, health
from kiosk.daemon.bus import EventBus
from kiosk.daemon.control import AlreadyRunning, ControlServer, answers
from kiosk.daemon.desk import Desk
from kiosk.daemon.notify import Notifier
from kiosk.daemon.pin import PinStep, PinTries
from kiosk.daemon.session import SessionMachine
from kiosk.daemon.simctl import SimControl
from kiosk.daemon.state import (
    CardRemoved,
    CardSeen,
    DaemonState,
    DeviceChanged,
    DoorAlarm,
    DoorChanged,
    EntryCardSeen,
    PrinterStatusChanged,
    SyncStateChanged,
    TagsChanged,
    Tick,
)
from kiosk.daemon.steps import Steps, mask_card
from kiosk.daemon.workers import (
    CardWorker,
    DoorWorker,
    PrinterWorker,
    TagWorker,
    Worker,
    make_workers,
    post_to,
)
from kiosk.messages import Catalogue
from sync.clock import SystemClock

log = logging.getLogger(__name__)

TICK_S = 0.25
DEVICE_WAIT_S = 2.0  # how long start waits for each device before it goes on without it
STOP_WAIT_S = 10.0  # for the event in progress when a stop is asked


# Card numbers leased from the hub at a time when those of a registering device run low.
CARD_RANGE_SIZE = 1000


class Daemon:
    """The daemon of ``settings``. ``db_path`` overrides ``[database] path``; ``environ``
    (the process environment by default) is where ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC``
    are read. Run it with ``asyncio.run(daemon.main())``.

    Callers may rely on: :attr:`state`; :attr:`bus` (every published event); after
    :meth:`start`, :attr:`devices` (with their simulators in ``devices.sims``),
    :attr:`writer` and :attr:`workers`.
    """

    def __init__(self, settings: Settings, *, db_path: Path | None = None,
                 environ: Mapping[str, str] | None = None, create_db: bool | None = None) -> None:
        self.settings = settings
        self.db_path = db_path or settings.database.path
        self.create_db = settings.device.profile == "sim" if create_db is None else create_db
        self.identity = settings.identity()
        self.notifier = Notifier(environ)
        self.bus = EventBus()
        self.state = DaemonState.STARTING
        self.started_mono = time.monotonic()
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        d = settings.daemon
        self.machine = SessionMachine(d.session_timeout_s, d.session_warning_s,
                                      ask_pin=d.pin != "off")
        self.catalogue = Catalogue(settings.device.language)
        self.devices: Devices | None = None
        self.writer: db.Writer | None = None
        self.workers: dict[str, Worker] = {}
        self.sync: Any = None  # a SyncWorker when [hub] url is set
        self.sip2: Any = None  # a Sip2Worker when [sip2] enabled (kiosk.daemon.sip2worker)
        self.web: Any = None  # the touchscreen's server (kiosk.web) when [ui] enabled
        self.control: ControlServer | None = None
        self.steps: Steps | None = None
        self.simctl: SimControl | None = None
        self.entrance: Any = None  # kiosk.daemon.entrance.Entrance, with an entrance reader
        self.desk: Desk | None = None  # the staff desk (kiosk.daemon.desk)
        self.printer_problems: tuple[str, ...] = ()
        self.last_report: dict[str, Any] | None = None
        self.sync_waiters: list[asyncio.Future[dict[str, Any]]] = []
        self._inputs: asyncio.Queue[object] = asyncio.Queue()
        self._stop = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._tick_pending = False
        self._ready = asyncio.Event()
        self.pad_checked = False  # the first inventory was taken and the journal settled

    # -- life ----------------------------------------------------------------------------------

    async def main(self, *, signals: bool = True) -> int:
        """Start, serve until asked to stop, stop. Returns the process exit code."""
        loop = asyncio.get_running_loop()
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            await self._stop.wait()
        finally:
            await self.stop()
            if signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        return 0

    def request_stop(self) -> None:
        """Ask the daemon to stop (safe from the loop's thread; signal handlers use it)."""
        self._stop.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        d = self.settings.daemon
        self.notifier.status("starting")
        if await answers(d.control_socket):
            raise AlreadyRunning(f"{d.control_socket}: another kiosk daemon is running")
        runtime = d.runtime_path
        runtime.mkdir(parents=True, exist_ok=True, mode=0o750)
        owner = runtime.stat().st_uid
        if owner not in (os.getuid(), 0):
            # Someone else made the folder first (in /tmp, say): the simulators' ptys and the
            # control socket must not live in a folder a stranger controls.
            raise PermissionError(f"{runtime} belongs to uid {owner}, not to this user")
        self.writer = db.Writer(self.db_path, self.identity, self.settings.policy(),
                                SystemClock(), create=self.create_db, online=self.hub_online)
        await self.writer.run(self.writer.open)
        post = post_to(loop, self._put)
        listener = _threadsafe(loop, self._link_changed)
        self.devices = await asyncio.to_thread(build, self.settings.hardware, runtime,
                                               on_change=listener, wait=DEVICE_WAIT_S)
        self._start_workers(post)
        assert self.desk is not None
        await self.desk.start()
        self._start_sync(loop)
        cards = self.workers["card_reader"]
        assert isinstance(cards, CardWorker)
        self.simctl = SimControl(self.devices, cards, self.writer, self.settings.hardware.security,
                                 entrance=self.workers.get("entrance_reader"))
        from kiosk.daemon.commands import control_commands

        self.control = ControlServer(d.control_socket, control_commands(self), self.bus.watch)
        await self.control.start()
        if self.settings.ui.enabled:
            from kiosk.web.server import WebUI

            self.web = WebUI(self, self.settings.ui)
            await self.web.start()
        self._tasks = [asyncio.ensure_future(coro) for coro in
                       (self._consume(), self._ticker(), self._watchdog())]
        self._update_state()
        self.notifier.ready(self._status_text())
        self._ready.set()
        log.info("kiosk daemon %s ready: %s", __version__, self._status_text())

    def _start_workers(self, post: Any) -> None:
        assert self.devices is not None and self.writer is not None
        d = self.settings.daemon
        self.workers = make_workers(self.devices, self.settings, post)
        tags, printer = self.workers["tag_reader"], self.workers.get("printer")
        doors = self.workers.get("doors")
        assert isinstance(tags, TagWorker)
        self.steps = Steps(self.machine, self.writer, tags,
                           printer if isinstance(printer, PrinterWorker) else None, self.bus,
                           identity=self.identity, security=self.settings.hardware.security,
                           receipt_language=self.catalogue, online=self.hub_online,
                           doors=doors if isinstance(doors, DoorWorker) else None,
                           pin=PinStep(self.writer, d.pin,
                                       PinTries(d.pin_attempts, d.pin_lockout_min * 60.0)))
        cards = self.workers["card_reader"]
        assert isinstance(cards, CardWorker)
        self.desk = Desk(self.settings.desk, writer=self.writer, bus=self.bus, cards=cards,
                         printer=printer if isinstance(printer, PrinterWorker) else None,
                         machine=self.machine, run_steps=self.steps.run,
                         identity=self.identity, slip_language=self.catalogue)
        self.steps.staff = self.desk.signed_in
        if "entrance_reader" in self.workers:
            from kiosk.daemon.entrance import Entrance

            self.entrance = Entrance(self.writer, self.bus, doors, self.devices.door)
        for worker in self.workers.values():
            worker.start()

    def _start_sync(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.settings.sip2.enabled:
            from kiosk.daemon.sip2worker import start_sip2

            self.sip2 = start_sip2(self.settings, self.db_path)
            if self.sip2 is not None and self.steps is not None:
                from kiosk.daemon.ils import OnlineIls

                self.steps.ils = OnlineIls(self.sip2, acknowledge=not self.settings.hub.enabled,
                                           wait_s=self.settings.sip2.timeout_ms / 1000,
                                           learn=self.settings.sip2.learn_patrons,
                                           block_on_lockout=self.settings.sip2
                                           .block_on_pin_lockout)
        if not self.settings.hub.enabled:
            return
        from kiosk.daemon.syncworker import SyncWorker

        self.sync = SyncWorker.open(
            self.settings.hub, self.identity.device_id, self.db_path,
            on_report=_threadsafe(loop, self._sync_report), status=self._heartbeat,
            stall_after=float(self.settings.daemon.worker_stall_s),
            card_range_size=CARD_RANGE_SIZE if self.settings.desk.registration else 0,
            timezone=self.identity.timezone)
        self.sync.start()

    async def stop(self) -> None:
        """Stop everything, each step on its own; idempotent."""
        if self.state in (DaemonState.STOPPING, DaemonState.STOPPED):
            return
        self._set_state(DaemonState.STOPPING)
        self.notifier.stopping()
        self._stopping = True
        for name, step in (("actuators", self._actuators_safe),
                           ("control socket", self._close_control),
                           ("touchscreen", self._stop_web),
                           ("session", self._end_session),
                           ("receipts", self._drain_receipts),
                           ("workers", self._stop_workers),
                           ("sync", self._stop_sync),
                           ("devices", self._close_devices),
                           ("database", self._close_writer)):
            try:
                await step()
            except Exception:
                log.exception("shutdown: %s failed", name)
        for task in self._tasks:
            task.cancel()
        self._set_state(DaemonState.STOPPED)
        self.bus.close()
        self.notifier.close()

    async def _actuators_safe(self) -> None:
        """Latches released (locked) before anything else: a pulse in progress ends now."""
        if self.devices is not None:
            for actuator in (self.devices.door, self.devices.lockers):
                if actuator is not None:
                    await asyncio.to_thread(actuator.close)

    async def _stop_web(self) -> None:
        if self.web is not None:
            await self.web.stop()

    async def _close_control(self) -> None:
        if self.control is not None:
            await self.control.close()

    async def _end_session(self) -> None:
        consumer = self._tasks[0] if self._tasks else None
        if consumer is not None:
            self._inputs.put_nowait(None)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(consumer), STOP_WAIT_S)
        if self.steps is not None:
            await self.steps.run(self.machine.end("shutdown"))

    async def _drain_receipts(self) -> None:
        if self.steps is not None:
            await self.steps.drain(5.0)

    async def _stop_workers(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(w.stop, 2.0) for w in self.workers.values()))

    async def _stop_sync(self) -> None:
        if self.sync is not None:
            await asyncio.to_thread(self.sync.stop)
        if self.steps is not None and self.steps.ils is not None:
            await asyncio.to_thread(self.steps.ils.close)
        if self.sip2 is not None:
            await asyncio.to_thread(self.sip2.stop)

    async def _close_devices(self) -> None:
        if self.devices is not None:
            await asyncio.to_thread(self.devices.close)

    async def _close_writer(self) -> None:
        if self.writer is not None:
            await asyncio.to_thread(self.writer.shutdown)

    # -- the event queue -----------------------------------------------------------------------

    def _put(self, event: object) -> None:
        if not self._stopping:
            self._inputs.put_nowait(event)

    def put(self, event: object) -> None:
        """Hand an event to the session machine (from the loop's thread)."""
        self._put(event)

    async def _consume(self) -> None:
        while (event := await self._inputs.get()) is not None:
            if self._stopping:
                return
            try:
                await self._handle(event)
            except Exception:  # one bad event must not stop the kiosk
                log.exception("handling %s failed", event)

    async def _handle(self, event: object) -> None:
        assert self.steps is not None
        if isinstance(event, Tick):
            self._tick_pending = False
            if self.desk is not None:
                await self.desk.tick()
        elif isinstance(event, DeviceChanged):
            self.bus.publish("device", device=event.device, online=event.online,
                             detail=event.detail)
            self._update_state()
            self._beat()
            if event.device == "tag_reader" and event.online:
                await self._reconcile(await self._tags_on_pad())
            return
        elif isinstance(event, PrinterStatusChanged):
            self.printer_problems = event.problems
            self.bus.publish("printer", problems=list(event.problems))
            self._beat()
            return
        elif isinstance(event, DoorChanged):
            self.bus.publish("door", name=event.name, open=event.is_open)
            return
        elif isinstance(event, DoorAlarm):
            if event.left_open:
                self.bus.publish("door_alarm", name=event.name,
                                 message_key="device.door_left_open", params={"device": event.name})
            else:
                self.bus.publish("door_alarm_cleared", name=event.name)
            self._beat()
            return
        elif isinstance(event, EntryCardSeen):
            self.bus.publish("entry_card_seen", card=mask_card(event.card))
            if self.entrance is not None:
                self.entrance.tapped(event)
            return
        elif isinstance(event, SyncStateChanged):
            self.bus.publish("sync", ok=event.ok, queue_depth=event.queue_depth,
                             error=event.error)
            return
        elif isinstance(event, CardSeen):
            self.bus.publish("card_seen", card=mask_card(event.card))
            if self.desk is not None and await self.desk.card_seen(event):
                return
        elif isinstance(event, CardRemoved):
            self.bus.publish("card_removed")
        elif isinstance(event, TagsChanged):
            self.bus.publish("tags", books=len(event.books), initial=event.initial,
                             barcodes=[b.barcode for b in event.books])
            if event.initial:
                await self._reconcile({b.uid for b in event.books})
                self.pad_checked = True
        await self.steps.run(self.machine.feed(event, time.monotonic()))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            desk = self.desk is not None and self.desk.active
            if not self._tick_pending and (self.machine.session is not None or desk):
                self._tick_pending = True
                self._put(Tick())

    async def _tags_on_pad(self) -> set[str]:
        """The UIDs on the pad now, from an inventory on the tag worker (empty if it fails)."""
        tags = self.workers["tag_reader"]
        assert isinstance(tags, TagWorker)
        try:
            return await tags.call(lambda: {t.uid_hex for t in tags.reader.inventory()})
        except (HardwareError, DriverError, OSError):
            return set()

    async def _reconcile(self, on_pad: set[str]) -> None:
        """Settle the flag journal for the books on the pad (at start, and whenever the tag
        reader comes back): see :mod:`kiosk.daemon.reconcile`."""
        from kiosk.daemon.reconcile import reconcile

        tags = self.workers["tag_reader"]
        assert self.writer is not None and isinstance(tags, TagWorker)
        if on_pad:
            await reconcile(self.writer, tags, self.bus, on_pad,
                            self.settings.hardware.security)

    # -- state, devices, sync, watchdog -----------------------------------------------------

    def _link_changed(self, name: str, online: bool, detail: str) -> None:
        role = health.role_of(self.devices, name)
        if role is not None:
            self._put(DeviceChanged(role, online, detail))

    def device_status(self) -> dict[str, dict[str, Any]]:
        """Each device: online, where, simulated, and why not online."""
        return health.device_status(self.devices)

    def offline_devices(self) -> list[str]:
        return [name for name, d in self.device_status().items() if not d["online"]]

    def _update_state(self) -> None:
        if self.state in (DaemonState.STOPPING, DaemonState.STOPPED):
            return
        self._set_state(DaemonState.DEGRADED if self.offline_devices() else DaemonState.READY)

    def _set_state(self, state: DaemonState) -> None:
        if state is self.state:
            return
        self.state = state
        serving = state in (DaemonState.READY, DaemonState.DEGRADED)
        self.bus.publish("state", state=str(state),
                         offline=self.offline_devices() if serving else [])
        if state not in (DaemonState.STARTING, DaemonState.STOPPING):
            self.notifier.status(self._status_text())
        self._beat()

    def _status_text(self) -> str:
        offline = self.offline_devices()
        text = str(self.state)
        return f"{text}: offline {', '.join(offline)}" if offline else text

    def hub_online(self) -> bool:
        """Whether the sync worker last reached the hub (offline limits apply otherwise)."""
        return bool(self.sync is not None and self.sync.online)

    def _heartbeat(self) -> dict[str, Any]:
        """The daemon's part of the heartbeat (docs/hub-api.yaml ``Heartbeat``): its state,
        each device online or not and why, the printer's paper, and the open alerts (door
        left open, paper out, device offline). Called on the sync thread: reads only plain
        attributes (each replaced whole by its owner, never changed in place)."""
        devices = self.device_status()
        printer = self.workers.get("printer")
        doors = self.workers.get("doors")
        problems = self.printer_problems
        alerts = [{"code": "device_offline", "device": name, "detail": str(d["detail"] or "")}
                  for name, d in devices.items() if not d["online"]]
        left_open = set(doors.alarms) if isinstance(doors, DoorWorker) else set()
        if devices.get("door", {}).get("left_open"):
            left_open.add("door")
        alerts += [{"code": "door_left_open", "device": name} for name in sorted(left_open)]
        if "paper_out" in problems:
            alerts.append({"code": "paper_out", "device": "printer"})
        body: dict[str, Any] = {
            "state": str(self.state), "branch": self.identity.branch, "alerts": alerts,
            "devices": {name: {"online": bool(d["online"]), "detail": str(d["detail"] or "")}
                        for name, d in devices.items()}}
        if isinstance(printer, PrinterWorker):
            paper = "out" if "paper_out" in problems else getattr(printer, "paper", "unknown")
            body["printer"] = {"paper": paper, "problems": list(problems)}
        return body

    def _beat(self) -> None:
        """A state or an alert changed: the hub hears it now, not at the next sync."""
        if self.sync is not None:
            self.sync.request_heartbeat()

    def _sync_report(self, report: Any) -> None:
        data = report.as_dict()
        if report.error is not None:
            data["error"]["params"] = {k: str(v) for k, v in report.error.params.items()}
        self.last_report = data
        self._put(SyncStateChanged(report.ok, report.queue_depth,
                                   None if report.error is None else report.error.code))
        waiters, self.sync_waiters = self.sync_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(data)

    def unhealthy(self, now: float | None = None) -> list[str]:
        """Names of the workers that have not made progress in time (empty: all healthy)."""
        bad = health.unhealthy(self.workers, self.sync, self.writer,
                               float(self.settings.daemon.worker_stall_s), now)
        return bad + (["sip2"] if self.sip2 is not None and not self.sip2.healthy(now) else [])

    async def _watchdog(self) -> None:
        if self.settings.daemon.watchdog:
            await health.feed_watchdog(self.notifier, self.unhealthy, self._status_text)

    def uptime(self) -> float:
        return time.monotonic() - self.started_mono

    @property
    def pid(self) -> int:
        return os.getpid()


def _threadsafe(loop: asyncio.AbstractEventLoop, fn: Any) -> Any:
    """``fn`` called on ``loop``'s thread, from any thread; dropped once the loop closed."""

    def call(*args: Any) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, *args)

    return call
