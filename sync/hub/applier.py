"""Applying stored events after the push that stored them: which events are due, in what
order, and the background thread that applies them while the hub answers pushes.

A push only stores its events and acknowledges them (:meth:`SqliteHubStore.push`). Applying
them (re-running the rules, verdicts, exceptions, the change log) happens later, one chunk
per write transaction, by :class:`Applier`, or by a reader that catches up first
(:meth:`SqliteHubStore.apply_pending`). What callers may rely on:

- **Order.** Each device's events are applied in ``seq`` order, never past a gap. Across
  devices they are applied in the order they became applicable (the arrival of the push
  that closed the gap before them), as if each push had applied its own events at once.
- **Once.** The applied position (``hub_devices.applied_through_seq``) moves in the same
  transaction as the event's effects, under the store's write lock and ``BEGIN IMMEDIATE``,
  so an event is applied once whoever applies it: this thread, a reader catching up, or a
  ``kiosk hub`` command in another process.
- **Failures.** An event whose application raises is rolled back alone and stays stored;
  its device's later events wait behind it, other devices go on. It is tried again after
  the device's next push, or after the hub restarts.
- **Giving way.** The thread starts a chunk once pushes have paused for ``apply_settle_s``,
  or once it has waited ``apply_max_lag_s``; then it still lets a push in progress finish
  first (up to ``apply_settle_s``). Answering devices comes first; applying uses the time
  between pushes, and keeps up under constant load by taking turns with them.
- **Stopping.** :meth:`Applier.stop` returns once the chunk in progress has committed (or
  rolled back); what is left stays stored and is applied after the next start.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from sync import errors as cache_errors
from sync.hub.apply import EVENT_COLUMNS
from sync.hub.config import HubConfig

log = logging.getLogger("sync.hub")


def waiting(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """Devices with events stored and not yet applied: device id -> (applied_through_seq,
    stored_through_seq)."""
    return {device_id: (done, through) for device_id, done, through in conn.execute(
        "SELECT device_id, applied_through_seq, stored_through_seq FROM hub_devices"
        " WHERE applied_through_seq < stored_through_seq")}


def due(conn: sqlite3.Connection, limit: int, failed: Mapping[str, int],
        upto: Mapping[str, int] | None = None) -> list[tuple]:
    """Up to ``limit`` events to apply next, as rows of ``EVENT_COLUMNS``, in the order to
    apply them. Run inside the write transaction that applies them.

    Leaves out a device whose next event is the one that failed (``failed``: device id ->
    seq) and, when ``upto`` is given (device id -> seq), every device not in it and every
    event past its position there.
    """
    queues = []
    for device_id, (done, through) in waiting(conn).items():
        if failed.get(device_id) == done + 1:
            continue
        if upto is not None:
            through = min(through, upto.get(device_id, done))
        if through <= done:
            continue
        rows = conn.execute(
            f"SELECT received_at_ns, {EVENT_COLUMNS} FROM hub_events WHERE device_id = ?"
            " AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (device_id, done, through, limit)).fetchall()
        # An event became applicable when the last of the events up to it arrived.
        ready = itertools.accumulate((r[0] for r in rows), max)
        queues.append([((at, device_id, r[2]), r[1:]) for at, r in zip(ready, rows,
                                                                         strict=True)])
    # Keys are unique (device, seq), so the rows themselves are never compared.
    return [row for _key, row in itertools.islice(heapq.merge(*queues), limit)]


class Traffic:
    """Pushes in progress, and when the last one ended: what the applier gives way to."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._last_end = float("-inf")

    @contextmanager
    def push(self) -> Iterator[None]:
        """Wrap a whole push, waiting for the write lock included."""
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._last_end = time.monotonic()
                self._cond.notify_all()

    def wait_quiet(self, settle_s: float, deadline: float, stop: threading.Event) -> None:
        """Return once no push is in progress and none ended in the last ``settle_s``
        seconds, at the monotonic ``deadline``, or when ``stop`` is set (and :meth:`nudge`
        called), whichever is first."""
        with self._cond:
            while not stop.is_set():
                now = time.monotonic()
                if now >= deadline:
                    return
                wait = deadline - now
                if not self._active:
                    left = self._last_end + settle_s - now
                    if left <= 0:
                        return
                    wait = min(wait, left)
                self._cond.wait(wait)

    def nudge(self) -> None:
        """Wake :meth:`wait_quiet` so that it looks at its ``stop`` event again."""
        with self._cond:
            self._cond.notify_all()


class Applier:
    """The background thread that applies stored events, ``apply_chunk()`` at a time.

    ``apply_chunk`` applies at most one chunk of due events in one write transaction and
    returns how many were due in it (0: nothing left to do). The thread applies after
    :meth:`wake` (each push calls it), every ``apply_interval_s`` seconds anyway, and once
    at start (events left by the last run). An exception out of ``apply_chunk`` (a busy or
    full database, say) is logged and tried again at the next wake or interval.
    """

    def __init__(self, apply_chunk: Callable[[], int], traffic: Traffic, cfg: HubConfig,
                 *, name: str = "hub-applier") -> None:
        self._apply_chunk = apply_chunk
        self._traffic = traffic
        self._cfg = cfg
        self._name = name
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread; a second call while it runs does nothing."""
        if self.running:
            return
        self._stop.clear()
        self._wake.set()  # events the last run left are applied at once
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Ask for a pass soon (it still gives way to pushes); cheap, never blocks."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop after the chunk in progress; True once the thread has ended."""
        self._stop.set()
        self._wake.set()
        self._traffic.nudge()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the applier did not stop within %.0f s", timeout)
                return False
        self._thread = None
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._cfg.apply_interval_s)
            # Cleared before the pass: a push that wakes us during it is seen by it or
            # leaves the flag set for the next one.
            self._wake.clear()
            if not self._stop.is_set():
                self._drain()

    def _drain(self) -> None:
        cfg = self._cfg
        since = time.monotonic()
        while not self._stop.is_set():
            self._traffic.wait_quiet(cfg.apply_settle_s, since + cfg.apply_max_lag_s,
                                     self._stop)
            if time.monotonic() >= since + cfg.apply_max_lag_s:
                # Catching up under constant pushes: take turns, but let the push in
                # progress (if any) finish first.
                self._traffic.wait_quiet(0.0, time.monotonic() + cfg.apply_settle_s,
                                         self._stop)
            if self._stop.is_set():
                return
            try:
                if self._apply_chunk() == 0:
                    return
            except cache_errors.CacheError as exc:
                log.warning("applying stored events: %s; trying again later", exc)
                return
            except Exception:
                log.exception("applying stored events failed; trying again later")
                return
