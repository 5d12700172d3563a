"""The staff desk: staff sign-in at the kiosk, van stops, registering readers, writing cards.

A book van (or any service point with staff) uses the kiosk's own card reader, pad and screen
as its desk. Tapping a **staff card** (a card whose number is in the ``staff`` table) ends any
patron session and asks for the staff PIN on the screen; wrong PINs count towards a lockout
kept in the database (:func:`sync.staff.sign_in`). Signed in, staff:

- lend and take back for a patron by tapping the patron's card (or typing its number) and
  placing books on the pad (or typing the barcode of a book whose tag cannot be read: it is
  lent or returned without writing its tag, and staff are told so): the patron session
  machine does the work, as at the kiosk, but at :attr:`~sync.policy.Station.DESK`,
  audited with the staff member's name, and with no patron PIN (staff vouch for the card
  holder). A refused loan may be lent anyway with a reason
  (:class:`~kiosk.daemon.state.OverrideLend`, recorded as an override);
- choose the current van stop from ``[desk] stops`` (:mod:`sync.stops`);
- register a reader (``[desk] registration``): the form is checked first
  (:meth:`sync.registration.Registrar.check`), then staff put a blank card on the reader;
  the card number is written and read back inside the registration's transaction, so a
  card that fails to write (or is taken away mid-write) is not issued and its number is not
  used; then the card slip prints.

Staff sign out with a button, by tapping another staff card, after ``idle_min`` without a
touch, or ``absolute_h`` after signing in. Nothing of this is reachable while no staff
member is signed in: every desk request checks :attr:`Desk.staff` first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kiosk import receipts
from kiosk.config.desk import DeskSettings
from kiosk.daemon import db
from kiosk.daemon.actions import Action
from kiosk.daemon.bus import EventBus
from kiosk.daemon.desk_cards import DeskError, Registering
from kiosk.daemon.session import SessionMachine
from kiosk.daemon.state import CardSeen, OverrideLend, TypedBook
from kiosk.daemon.workers import CardWorker, PrinterWorker
from kiosk.messages import Catalogue
from sync import audit, staff, stops
from sync.circulation import Identity
from sync.clock import read
from sync.errors import CacheError

if TYPE_CHECKING:
    from sync.registration import Application, Registrar

log = logging.getLogger(__name__)

PIN_PROMPT_S = 60.0  # a staff PIN prompt left alone goes away



def _is_staff_card(conn: Any, card: str) -> bool:
    return conn.execute("SELECT 1 FROM staff WHERE card_number = ?", (card,)).fetchone() \
        is not None


class Desk(Registering):
    """The staff desk of one daemon. ``end_patron_session`` ends the patron session (its
    actions carried out); ``run_steps`` carries out the machine's actions."""

    def __init__(self, settings: DeskSettings, *, writer: db.Writer, bus: EventBus,
                 cards: CardWorker, printer: PrinterWorker | None, machine: SessionMachine,
                 run_steps: Callable[[list[Action]], Awaitable[None]], identity: Identity,
                 slip_language: Catalogue) -> None:
        self.settings = settings
        self.writer = writer
        self.bus = bus
        self.cards = cards
        self.printer = printer
        self.machine = machine
        self.run_steps = run_steps
        self.identity = identity
        self.t = slip_language
        self.limits = staff.Limits(
            attempts=settings.pin_attempts, lockout=timedelta(minutes=settings.pin_lockout_min),
            idle=timedelta(minutes=settings.idle_min),
            absolute=timedelta(hours=settings.absolute_h))
        self.staff: staff.StaffSession | None = None
        self.asking: str | None = None  # a staff card waiting for its PIN
        self._asked_at = 0.0
        self.message: dict[str, Any] | None = None
        self.page = "home"
        self.stop: str | None = None
        self.registration: dict[str, Any] | None = None
        self._application: Application | None = None
        self.registrar: Registrar | None = None
        self.registration_problem: str | None = None  # why registering is unavailable
        self.supply: dict[str, Any] | None = None
        self._printing: set[asyncio.Task[None]] = set()
        self._blank: str | None = None  # a blank card lying on the reader, on the form page

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        # Only a registering desk needs the personal-data keys (and the cryptography
        # library, ~10 MB a kiosk without registration does not carry).
        from sync import personal
        from sync.registration import Registrar

        self.stop = await self.writer.run(self.writer.read, stops.current)
        if not self.settings.registration:
            return
        try:
            keys = await asyncio.to_thread(personal.load_keys, self.settings.key_file)
        except personal.PersonalDataError as exc:
            self.registration_problem = "registration.keys_unavailable"
            log.error("registering readers is off: %s", exc)
            return
        cache = self.writer.cache
        assert cache is not None
        self.registrar = Registrar(cache, self.identity, keys, self.writer.clock)

    @property
    def active(self) -> bool:
        """Staff are signed in, or a staff card is waiting for its PIN."""
        return self.staff is not None or self.asking is not None

    def signed_in(self) -> staff.StaffSession | None:
        """The staff member signed in, while the session is valid."""
        session = self.staff
        if session is None or not session.valid_at(self._now_ns()):
            return None
        return session

    def _now_ns(self) -> int:
        return read(self.writer.clock).monotonic_ns

    def _touch(self) -> None:
        if self.staff is not None:
            self.staff = self.staff.touched(self._now_ns())

    def _forward(self) -> audit.Forward:
        return audit.Forward(self.identity.device_id, self.identity.branch, self.writer.clock)

    # -- what the screen shows ------------------------------------------------------------

    def view(self) -> dict[str, Any] | None:
        if not self.active:
            return None
        person = None if self.staff is None else {"name": self.staff.name,
                                                  "role": self.staff.role}
        return {
            "state": "signed_in" if self.staff is not None else "pin",
            "card": receipts.mask_card(self.staff.card_number if self.staff else
                                       self.asking or ""),
            "staff": person, "message": self.message, "page": self.page,
            "stops": list(self.settings.stops), "stop": self.stop,
            "registration_enabled": self.registrar is not None,
            "registration_problem": self.registration_problem,
            "supply": self.supply, "registration": self.registration,
            "blank_card": self._blank is not None and self.cards.present == self._blank,
            "idle_s": self.limits.idle.total_seconds(),
        }

    def publish(self) -> None:
        self.bus.publish("desk", desk=self.view())

    # -- cards on the reader --------------------------------------------------------------

    async def card_seen(self, event: CardSeen) -> bool:
        """Whether the desk took this card (else it starts a patron session as usual)."""
        if not self.settings.enabled:
            return False
        reg = self.registration
        if self.staff is not None and reg is not None and reg["state"] in ("waiting_card",
                                                                             "failed"):
            await self._write_card(event)
            return True
        if self.staff is not None and self.page == "register" and event.card == event.uid:
            # A blank card put down before the form is done: it waits to be written.
            self._touch()
            self._blank = event.uid
            self.publish()
            return True
        try:
            is_staff = await self.writer.run(self.writer.read, _is_staff_card, event.card)
        except CacheError:
            log.exception("the staff table could not be read")
            return False
        if is_staff:
            if self.staff is not None and self.staff.card_number == event.card:
                self._touch()
                return True
            if self.staff is not None:
                await self.sign_out(staff.SignOutReason.SIGNED_OUT)
            await self.run_steps(self.machine.end("staff_card"))
            self.asking, self._asked_at, self.message = event.card, time.monotonic(), None
            self.publish()
            return True
        if self.asking is not None and self.staff is None:
            self.asking, self.message = None, None  # a patron came instead: let them
            self.publish()
            return False
        if self.staff is not None:
            self._touch()
            self.page = "lend"
            self.publish()
        return False

    # -- signing in and out ---------------------------------------------------------------

    async def enter_pin(self, pin: str) -> dict[str, Any]:
        card = self.asking
        if card is None or self.staff is not None:
            raise DeskError("staff.desk.no_pin_asked")
        result = await self.writer.run(self._sign_in, card, pin)
        if isinstance(result, staff.StaffSession):
            self.staff, self.asking, self.message, self.page = result, None, None, "home"
            await self._refresh_supply()
            self.publish()
            return {"ok": True, "name": result.name}
        self.message = {"key": result.message_key, "params": dict(result.params)}
        self._asked_at = time.monotonic()
        self.publish()
        return {"ok": False, "message_key": result.message_key, "params": dict(result.params)}

    def _sign_in(self, card: str, pin: str) -> staff.StaffSession | staff.SignInRefused:
        cache = self.writer.cache
        assert cache is not None
        return staff.sign_in(cache.conn, card, pin, datetime.now(UTC),
                             now_ns=self._now_ns(), limits=self.limits,
                             forward=self._forward())

    def cancel_pin(self) -> None:
        if self.staff is None and self.asking is not None:
            self.asking, self.message = None, None
            self.publish()

    async def sign_out(self, reason: staff.SignOutReason = staff.SignOutReason.SIGNED_OUT
                       ) -> None:
        session = self.staff
        if session is None:
            return
        self.staff, self.page, self.registration, self._application = None, "home", None, None
        self.message = None
        await self.run_steps(self.machine.end("staff_signed_out"))
        try:
            await self.writer.run(self._record_sign_out, session, reason)
        except CacheError:
            log.exception("the sign-out of staff card %s was not recorded",
                          receipts.mask_card(session.card_number))
        self.bus.publish("staff_signed_out", reason=str(reason))
        self.publish()

    def _record_sign_out(self, session: staff.StaffSession, reason: staff.SignOutReason
                         ) -> None:
        cache = self.writer.cache
        assert cache is not None
        staff.sign_out(cache.conn, session, datetime.now(UTC), reason, forward=self._forward())

    async def tick(self) -> None:
        """Automatic sign-out, and a forgotten PIN prompt going away."""
        if self.staff is not None:
            reason = self.staff.ended(self._now_ns())
            if reason is not None:
                await self.sign_out(reason)
        elif self.asking is not None and time.monotonic() - self._asked_at > PIN_PROMPT_S:
            self.cancel_pin()

    def require_staff(self) -> staff.StaffSession:
        """The signed-in staff member (touched), or :class:`DeskError` (403)."""
        session = self.signed_in()
        if session is None:
            raise DeskError("staff.desk.not_signed_in", status=403)
        self._touch()
        assert self.staff is not None
        return self.staff

    # -- desk requests ---------------------------------------------------------------------

    def show(self, page: str) -> None:
        self.require_staff()
        if page not in ("home", "register", "lend"):
            raise DeskError("staff.desk.bad_request", status=400)
        if page == "register" and self.registrar is None:
            raise DeskError(self.registration_problem or "registration.disabled")
        self.page = page
        if page == "register" and (self.registration is None
                                   or self.registration["state"] == "issued"):
            self.registration, self._application = {"state": "form", "problems": []}, None
        self.publish()

    async def choose_stop(self, stop: str | None) -> None:
        who = self.require_staff()
        try:
            await self.writer.run(self._choose_stop, stop, who)
        except stops.UnknownStop:
            raise DeskError("staff.desk.unknown_stop", status=422, stop=stop) from None
        self.stop = stop
        self.publish()

    def _choose_stop(self, stop: str | None, who: staff.StaffSession) -> None:
        cache = self.writer.cache
        assert cache is not None
        stops.choose(cache.conn, stop, known=self.settings.stops, at=datetime.now(UTC),
                     staff_id=who.staff_id, staff_card=who.card_number,
                     forward=self._forward())

    async def patron(self, card: str) -> None:
        """A patron card number typed at the desk: as if the card was tapped."""
        card = self._typed(card, "staff.desk.bad_card")
        await self.run_steps(self.machine.feed(CardSeen(card, ""), time.monotonic()))

    async def typed_book(self, barcode: str) -> None:
        """A book's barcode typed in: lent to the card in session, else taken back."""
        barcode = self._typed(barcode, "staff.desk.bad_barcode")
        await self.run_steps(self.machine.feed(TypedBook(barcode), time.monotonic()))

    def _typed(self, value: str, problem: str) -> str:
        """A number typed at the desk (letters and digits, 1 to 32), the lending page
        shown for it; :class:`DeskError` ``problem`` (422) otherwise."""
        self.require_staff()
        value = value.strip()
        if not value or len(value) > 32 or not value.isalnum():
            raise DeskError(problem, status=422)
        self.page = "lend"
        self.publish()
        return value

    async def override(self, barcode: str, reason: str) -> None:
        self.require_staff()
        reason = reason.strip()
        if not reason or len(reason) > staff.MAX_OVERRIDE_REASON:
            raise DeskError("staff.override.no_reason", status=422,
                            limit=staff.MAX_OVERRIDE_REASON)
        actions = self.machine.feed(OverrideLend(barcode, reason), time.monotonic())
        if not actions:
            raise DeskError("staff.desk.nothing_to_override", status=409)
        await self.run_steps(actions)
