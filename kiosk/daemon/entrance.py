"""Night entry: a card tapped on the reader outside the entrance of a 24-hour space.

The patron is looked up in the cache and held to the same test as for borrowing
(:func:`sync.rules.patron_problem`: unknown, lost, expired, blocked, fines over the limit).
A patron who passes gets the entrance door opened, as a job on the doors' worker; only
once the door sensor saw the door open is a visit counted in the daily statistics
(metric ``visits``). Anyone else finds the door shut, and the refusal is counted with its
reason (``refused.entry.<reason>``).

Entries do not go through the patron session at the kiosk inside, and they do not wait for
it: each tap is handled in a task of its own, one tap after the other, so a door that
takes its time to open never holds up a patron who is borrowing. Published events:

``entry``          the door opened: ``card`` (masked), ``message_key``, ``opened_after_s``,
                   ``was_open`` (the door was already open; the latch was released anyway)
``entry_refused``  the door stays shut: ``card``, ``reason``, ``message_key``
``entry_failed``   the patron may enter but the door did not open: ``card``,
                   ``message_key``, ``params`` (``detail`` for the technician)
"""

from __future__ import annotations

import asyncio
import logging

from drivers.errors import DriverError
from hardware.latch import DoorAlreadyOpen
from hardware.roles import Door, HardwareError
from kiosk.daemon import db
from kiosk.daemon.bus import EventBus
from kiosk.daemon.state import EntryCardSeen
from kiosk.daemon.steps import mask_card
from kiosk.daemon.workers import Worker
from sync.errors import CacheError
from sync.rules import Reason

log = logging.getLogger(__name__)

# The reasons rules.patron_problem gives; each has its text daemon.entry.<reason>.
ENTRY_REASONS = ("patron_unknown", "card_reported_lost", "patron_expired", "patron_blocked",
                 "fines_over_limit")


class Entrance:
    """Lets patrons in through ``door`` (opened on the ``doors`` worker). Without a door
    every tap is answered ``entry_failed`` (the config check warns about that set-up)."""

    def __init__(self, writer: db.Writer, bus: EventBus, doors: Worker | None,
                 door: Door | None) -> None:
        self.writer = writer
        self.bus = bus
        self.doors = doors
        self.door = door
        self.tasks: set[asyncio.Task[None]] = set()
        self._one_at_a_time = asyncio.Lock()

    def tapped(self, event: EntryCardSeen) -> None:
        """Handle a tap in a task of its own (from the loop's thread)."""
        task = asyncio.ensure_future(self._serialised(event))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serialised(self, event: EntryCardSeen) -> None:
        async with self._one_at_a_time:
            try:
                await self.admit(event.card)
            except Exception:  # one bad tap must not stop the next
                log.exception("night entry of a card failed")

    async def admit(self, card: str) -> str:
        """Decide, open the door, count; the event published (``entry``, ``entry_refused``
        or ``entry_failed``)."""
        masked = mask_card(card)
        try:
            problem = await self.writer.run(self.writer.entry_problem, card)
        except CacheError as exc:
            return self._failed(masked, exc.message_key, {k: str(v)
                                                          for k, v in exc.params.items()})
        if problem is not None:
            await self._count(problem)
            self.bus.publish("entry_refused", card=masked, reason=str(problem),
                             message_key=f"daemon.entry.{problem}")
            return "entry_refused"
        if self.doors is None or self.door is None:
            return self._failed(masked, "daemon.entry.door_failed", {"detail": "no door"})
        was_open = False
        opened_after = 0.0
        try:
            opened_after = (await self.doors.call(self.door.open)).opened_after_s
        except DoorAlreadyOpen:
            was_open = True  # the latch was released anyway: the patron can walk in
        except (HardwareError, DriverError, OSError) as exc:
            return self._failed(masked, "daemon.entry.door_failed", {"detail": str(exc)})
        await self._count(None)
        self.bus.publish("entry", card=masked, message_key="daemon.entry.welcome",
                         opened_after_s=round(opened_after, 3), was_open=was_open)
        return "entry"

    def _failed(self, masked: str | None, key: str, params: dict[str, str]) -> str:
        self.bus.publish("entry_failed", card=masked, message_key=key, params=params)
        return "entry_failed"

    async def _count(self, problem: Reason | None) -> None:
        try:
            await self.writer.run(self.writer.count_entry, problem)
        except CacheError:
            log.exception("an entry could not be counted")
