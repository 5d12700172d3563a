"""The PIN step of a card session: whether a PIN is asked, and how many wrong ones a card
may have before it is locked out for a while.

``[daemon] pin``: ``off`` (never asked), ``if_set`` (asked of patrons who have a PIN) or
``always`` (a patron without a PIN cannot lend at the kiosk and is sent to staff). After
``pin_attempts`` wrong PINs in a row the card is locked out for ``pin_lockout_min``
minutes, whichever session or screen the tries came from; a right PIN clears the count.
The count lives in the daemon's memory: a restart clears it (systemd's start limit keeps
restarts rare), and the PIN hash itself never leaves the cache (see :mod:`sync.pins`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kiosk.daemon import db
from kiosk.daemon.actions import AskPin, PinChecked, VerifyPin
from kiosk.daemon.db import Writer
from sync import pins
from sync.errors import CacheError

log = logging.getLogger(__name__)

PIN_POLICIES = ("off", "if_set", "always")


@dataclass
class PinTries:
    attempts: int = 3
    lockout_s: float = 900.0
    clock: Callable[[], float] = time.monotonic
    _wrong: dict[str, int] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)

    def locked_for(self, card: str) -> int:
        """Minutes (rounded up) the card is still locked out for; 0 when it is not."""
        until = self._locked_until.get(card)
        if until is None:
            return 0
        left = until - self.clock()
        if left <= 0:
            del self._locked_until[card]
            return 0
        return max(1, math.ceil(left / 60))

    def wrong(self, card: str) -> int:
        """Count a wrong PIN; the tries left (0: now locked out)."""
        count = self._wrong.get(card, 0) + 1
        if count >= self.attempts:
            self._wrong.pop(card, None)
            self._locked_until[card] = self.clock() + self.lockout_s
            return 0
        self._wrong[card] = count
        return self.attempts - count

    def right(self, card: str) -> None:
        self._wrong.pop(card, None)


class PinStep:
    """Carries out :class:`AskPin` and :class:`VerifyPin` for the session machine: reads the
    card holder's PIN hash through the daemon's writer and checks it off the event loop."""

    def __init__(self, writer: Writer, policy: str, tries: PinTries) -> None:
        if policy not in PIN_POLICIES:
            raise ValueError(f"pin policy is one of {PIN_POLICIES}, not {policy!r}")
        self.writer = writer
        self.policy = policy
        self.tries = tries

    async def ask(self, action: AskPin) -> PinChecked:
        stored = await self._stored(action.session, action.card)
        if isinstance(stored, PinChecked):
            return stored
        if stored is None:
            if self.policy == "always":
                return PinChecked(action.session, False, message_key="daemon.pin.none",
                                  locked=True)
            return PinChecked(action.session, True, needed=False)
        return PinChecked(action.session, False, message_key="daemon.pin.enter",
                          params={"attempts": self.tries.attempts})

    async def verify(self, action: VerifyPin) -> PinChecked:
        stored = await self._stored(action.session, action.card)
        if isinstance(stored, PinChecked):
            return stored
        if stored is None:  # the PIN was removed at the hub meanwhile
            return await self.ask(AskPin(action.session, action.card))
        try:
            right = await asyncio.to_thread(pins.verify_pin, action.pin, stored)
        except pins.BadPinHash:
            log.warning("the PIN hash of a card is unreadable; the patron is sent to staff")
            return PinChecked(action.session, False, message_key="daemon.pin.unreadable",
                              locked=True)
        if right:
            self.tries.right(action.card)
            return PinChecked(action.session, True)
        left = self.tries.wrong(action.card)
        if left == 0:
            return PinChecked(action.session, False, message_key="daemon.pin.locked",
                              params={"minutes": self.tries.locked_for(action.card)},
                              locked=True, locked_now=True)
        return PinChecked(action.session, False, message_key="daemon.pin.wrong",
                          params={"left": left})

    def _locked(self, session: int, card: str) -> PinChecked | None:
        if self.policy == "off":
            return PinChecked(session, True, needed=False)
        minutes = self.tries.locked_for(card)
        if minutes:
            return PinChecked(session, False, message_key="daemon.pin.locked",
                              params={"minutes": minutes}, locked=True)
        return None

    async def _stored(self, session: int, card: str) -> str | PinChecked | None:
        """The card's PIN hash (None: it has none), or the answer already: no PIN asked
        (policy off), locked out, or the cache could not be read."""
        locked = self._locked(session, card)
        if locked is not None:
            return locked
        try:
            return await self.writer.run(self.writer.read, db.pin_hash, card)
        except CacheError as exc:
            return PinChecked(session, False, message_key=exc.message_key,
                              params=dict(exc.params), locked=True)
