"""One thread per device: it polls its device and runs the jobs the daemon hands it.

All blocking device I/O happens here, never on the event loop. A worker posts what it sees
as events (:mod:`kiosk.daemon.state`) through ``post``, which the daemon wires to
``loop.call_soon_threadsafe``. Jobs (:meth:`Worker.call`) run on the worker's own thread
between polls, so a security flag is written by the same thread that takes the inventory,
and a self-test pauses the polling of its device simply by being a job: nothing else talks
to the device while it runs.

Each worker records when it last came round its loop (:attr:`Worker.last_progress`); the
daemon feeds systemd's watchdog only while every worker has done so within its
``stall_after``. A device that is offline is not a stalled worker: the loop goes on and
the device's link reconnects it in the background.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from drivers.errors import DriverError
from hardware.build import Devices
from hardware.pad import read_book
from hardware.roles import (
    CardInField,
    CardReader,
    DeviceOffline,
    Door,
    HardwareError,
    Locker,
    ReceiptPrinter,
    TagReader,
)
from kiosk.config.settings import Settings
from kiosk.daemon.state import (
    CardRemoved,
    CardSeen,
    DoorAlarm,
    DoorChanged,
    EntryCardSeen,
    PadBook,
    PrinterStatusChanged,
    TagsChanged,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Post = Callable[[object], None]

# A card must be missing from this many polls in a row before it counts as taken away: one
# poll can miss a card that is being moved on the reader.
MISSES_BEFORE_GONE = 3
# Reading the number stored on a card is retried on this many polls before the card is
# taken for what its UID says (a card moved during authentication fails once).
CARD_READ_ATTEMPTS = 3
# A tag whose data cannot be read is tried on this many inventories before it is reported.
TAG_READ_ATTEMPTS = 3
# The loop comes round at least this often even with nothing to poll, to show progress.
IDLE_WAIT_S = 0.5
# Door sensors are debounced in the hardware layer; this only bounds how late a change is told.
DOOR_POLL_S = 0.1
_STOP = object()


class Worker:
    """A device's thread. Subclasses implement :meth:`poll` (called every
    ``poll_interval`` seconds; None: never). Errors of a poll are logged, never raised."""

    def __init__(self, name: str, post: Post, *, poll_interval: float | None,
                 stall_after: float) -> None:
        self.name = name
        self.post = post
        self.poll_interval = poll_interval
        self.stall_after = stall_after
        self.last_progress = time.monotonic()
        self.polls = 0
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._last_error = ""
        self._thread = threading.Thread(target=self._run, name=f"worker {name}", daemon=True)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the job or poll in progress; jobs still queued fail with
        ``CancelledError``. Idempotent."""
        self._stop.set()
        self._jobs.put(_STOP)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def healthy(self, now: float | None = None) -> bool:
        """The thread runs and came round its loop within ``stall_after`` seconds."""
        now = time.monotonic() if now is None else now
        return self._thread.is_alive() and now - self.last_progress < self.stall_after

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args)`` on this worker's thread, before its next poll."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._stop.is_set():
            future.cancel()
        else:
            self._jobs.put((future, fn, args))
        return future

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """:meth:`submit`, awaited from the event loop."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def poll(self) -> None:
        """Ask the device; post events for what changed."""

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        next_poll = time.monotonic()
        while not self._stop.is_set():
            now = self.last_progress = time.monotonic()
            wait = IDLE_WAIT_S if self.poll_interval is None else max(0.0, next_poll - now)
            try:
                job = self._jobs.get(timeout=min(wait, IDLE_WAIT_S))
            except queue.Empty:
                job = None
            if job is _STOP:
                break
            if job is not None:
                self._job(*job)
                continue
            if self.poll_interval is not None and time.monotonic() >= next_poll:
                self._poll_once()
                next_poll = time.monotonic() + self.poll_interval
        self._cancel_queued()

    def _job(self, future: concurrent.futures.Future, fn: Callable[..., Any],
             args: tuple[Any, ...]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args)
        except BaseException as exc:  # the caller gets it; the worker goes on
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _poll_once(self) -> None:
        try:
            self.poll()
            self.polls += 1
            self._last_error = ""
        except DeviceOffline:
            pass  # the link reports it and reconnects; nothing to add here
        except (HardwareError, DriverError, OSError) as exc:
            self._complain(logging.WARNING, "%s: %s", self.name, exc)
        except Exception:  # a bug in a poll must not end the worker
            self._complain(logging.ERROR, "%s: poll failed", self.name, exc_info=True)

    def _complain(self, level: int, fmt: str, *args: Any, exc_info: bool = False) -> None:
        text = fmt % args
        if text != self._last_error:  # the same failure every 100 ms is logged once
            self._last_error = text
            log.log(level, text, exc_info=exc_info)

    def _cancel_queued(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not _STOP:
                job[0].cancel()


class CardWorker(Worker):
    """Polls the card reader. Posts :class:`CardSeen` once when a card arrives (with the
    library-card number stored on it, else its UID) and :class:`CardRemoved` once when it
    has gone: a card left lying on the reader produces no further events."""

    def __init__(self, reader: CardReader, post: Post, *, poll_interval: float,
                 stall_after: float, name: str = "card_reader") -> None:
        super().__init__(name, post, poll_interval=poll_interval, stall_after=stall_after)
        self.reader = reader
        self.present: str | None = None
        self.card: CardInField | None = None  # the card of ``present`` (for writing it)
        self._misses = 0
        self._attempts: dict[str, int] = {}

    def poll(self) -> None:
        card = self.reader.poll()
        if card is None:
            self._misses += 1
            if self.present is not None and self._misses >= MISSES_BEFORE_GONE:
                gone, self.present, self.card = self.present, None, None
                self._attempts.clear()
                self.removed(gone)
            return
        self._misses = 0
        uid = card.uid_hex
        if uid == self.present:
            return
        try:
            number = self.reader.read_card_number(card)
        except (DriverError, HardwareError):
            tries = self._attempts[uid] = self._attempts.get(uid, 0) + 1
            if tries < CARD_READ_ATTEMPTS:
                return
            number = None
        self.present, self.card = uid, card
        self._attempts.pop(uid, None)
        self.seen(number or uid, uid)

    def seen(self, card: str, uid: str) -> None:
        self.post(CardSeen(card, uid))

    def removed(self, uid: str) -> None:
        self.post(CardRemoved(uid))


class EntranceCardWorker(CardWorker):
    """Polls the card reader outside the entrance (night entry), by the same rules as the
    kiosk's: posts :class:`EntryCardSeen` once per tap, nothing when the card leaves."""

    def __init__(self, reader: CardReader, post: Post, *, poll_interval: float,
                 stall_after: float) -> None:
        super().__init__(reader, post, poll_interval=poll_interval, stall_after=stall_after,
                         name="entrance_reader")

    def seen(self, card: str, uid: str) -> None:
        self.post(EntryCardSeen(card, uid))

    def removed(self, uid: str) -> None:
        pass


class TagWorker(Worker):
    """Takes an inventory of the pad and reads each new tag's ISO 28560 data once. Posts
    :class:`TagsChanged` with every book on the pad whenever a tag arrives or leaves; the
    first inventory after start is posted with ``initial=True`` even when the pad is empty.
    While the reader is offline nothing is posted: what lies on the pad is unknown, and the
    inventory after it is back is compared with the one before."""

    def __init__(self, reader: TagReader, post: Post, *, poll_interval: float,
                 stall_after: float) -> None:
        super().__init__("tag_reader", post, poll_interval=poll_interval,
                         stall_after=stall_after)
        self.reader = reader
        self.known: dict[str, PadBook] = {}
        self._failures: dict[str, int] = {}
        self._initial = True

    def poll(self) -> None:
        tags = self.reader.inventory()
        current = {tag.uid_hex: tag for tag in tags}
        changed = False
        for uid in list(self.known):
            if uid not in current:
                del self.known[uid]
                changed = True
        for uid in list(self._failures):
            if uid not in current:
                del self._failures[uid]
        for uid, tag in current.items():
            known = self.known.get(uid)
            if known is not None and (known.barcode is not None
                                      or self._failures.get(uid, 0) >= TAG_READ_ATTEMPTS):
                continue
            book = read_book(self.reader, tag)
            if book.item is not None:
                self.known[uid] = PadBook(uid, book.item.primary_item_id)
                self._failures.pop(uid, None)
                changed = True
                continue
            tries = self._failures[uid] = self._failures.get(uid, 0) + 1
            if uid not in self.known and (tries >= TAG_READ_ATTEMPTS or self._initial):
                self.known[uid] = PadBook(uid, error="daemon.book.unreadable")
                changed = True
        if changed or self._initial:
            order = [uid for uid in current if uid in self.known]
            self.post(TagsChanged(tuple(self.known[uid] for uid in order), self._initial))
            self._initial = False


class PrinterWorker(Worker):
    """Reads the printer's status every ``poll_interval`` and posts
    :class:`PrinterStatusChanged` when its problems change; prints receipts as jobs."""

    def __init__(self, printer: ReceiptPrinter, post: Post, *, poll_interval: float,
                 stall_after: float) -> None:
        super().__init__("printer", post, poll_interval=poll_interval, stall_after=stall_after)
        self.printer = printer
        self.problems: tuple[str, ...] | None = None
        # The roll as last read: ok, low (near-end sensor), out, or unknown (no answer);
        # a plain attribute, read by the heartbeat on the sync thread.
        self.paper = "unknown"

    def poll(self) -> None:
        try:
            status = self.printer.status()
        except DeviceOffline:
            self.problems = None  # posted again once it is back
            self.paper = "unknown"
            raise
        problems = tuple(status.problems)
        self.paper = "out" if status.paper_out else "low" if status.paper_near_end else "ok"
        if problems != self.problems:
            self.problems = problems
            self.post(PrinterStatusChanged(problems))


class DoorWorker(Worker):
    """Watches the entrance door's and the locker slots' sensors (posting
    :class:`DoorChanged`) and opens them as jobs (a latch pulse waits for the door).

    Posts :class:`DoorAlarm` when a door has been left open: the entrance door as its own
    ``left_open`` says (``[door] left_open_after_s``), a locker slot once its sensor has
    said "open" for ``locker_left_open_s`` without a break; and again when it closes.
    :attr:`alarms` holds the doors in alarm now (read by ``kiosk status``)."""

    def __init__(self, post: Post, *, lockers: Locker | None, door: Door | None,
                 poll_interval: float, stall_after: float,
                 locker_left_open_s: float = 60.0) -> None:
        super().__init__("doors", post, poll_interval=poll_interval, stall_after=stall_after)
        self.lockers = lockers
        self.door = door
        self.locker_left_open_s = locker_left_open_s
        self.state: dict[str, bool] = {}
        self.alarms: frozenset[str] = frozenset()
        self._opened_at: dict[str, float] = {}

    def poll(self) -> None:
        seen: dict[str, bool] = {}
        if self.door is not None:
            seen["door"] = self.door.is_open()
        if self.lockers is not None:
            for slot in self.lockers.slots:
                seen[slot] = self.lockers.is_open(slot)
        now = time.monotonic()
        for name, is_open in seen.items():
            if self.state.get(name, False) != is_open:
                self.post(DoorChanged(name, is_open))
            if not is_open:
                self._opened_at.pop(name, None)
            else:
                self._opened_at.setdefault(name, now)
        self.state = seen
        alarms = {name for name, since in self._opened_at.items()
                  if name != "door" and now - since >= self.locker_left_open_s}
        if self.door is not None and self.door.left_open:
            alarms.add("door")
        for name in sorted(alarms - self.alarms):
            self.post(DoorAlarm(name, True))
        for name in sorted(self.alarms - alarms):
            self.post(DoorAlarm(name, False))
        self.alarms = frozenset(alarms)


def make_workers(devices: Devices, settings: Settings, post: Post) -> dict[str, Worker]:
    """One worker per device of ``devices`` (not started), by name: ``card_reader``,
    ``tag_reader``, ``printer``, ``doors`` (lockers and entrance door together) and
    ``entrance_reader``. The printer's and the doors' workers may block for their own
    longest wait (a receipt, a door's open timeout), so their stall limit is at least that
    plus 5 s."""
    d, hw = settings.daemon, settings.hardware
    stall = float(d.worker_stall_s)
    workers: dict[str, Worker] = {
        "card_reader": CardWorker(devices.card_reader, post, poll_interval=d.card_poll_ms / 1000,
                                  stall_after=stall),
        "tag_reader": TagWorker(devices.tag_reader, post, poll_interval=d.tag_poll_ms / 1000,
                                stall_after=stall),
    }
    if devices.printer is not None:
        workers["printer"] = PrinterWorker(
            devices.printer, post, poll_interval=d.printer_poll_ms / 1000,
            stall_after=max(stall, hw.printer.print_timeout_ms / 1000 + 5))
    if devices.lockers is not None or devices.door is not None:
        longest = max([s.open_timeout_ms / 1000 for s in (hw.lockers, hw.door) if s] or [0])
        workers["doors"] = DoorWorker(
            post, lockers=devices.lockers, door=devices.door, poll_interval=DOOR_POLL_S,
            stall_after=max(stall, longest + 5),
            locker_left_open_s=hw.lockers.left_open_after_s if hw.lockers else 60.0)
    if devices.entrance_reader is not None:
        workers["entrance_reader"] = EntranceCardWorker(
            devices.entrance_reader, post, poll_interval=d.card_poll_ms / 1000,
            stall_after=stall)
    return workers


def post_to(loop: asyncio.AbstractEventLoop, put: Callable[[object], None]) -> Post:
    """A ``post`` for workers: hand the event to ``put`` on ``loop``'s thread. Events posted
    while the loop is closing are dropped."""

    def post(event: object) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(put, event)

    return post
