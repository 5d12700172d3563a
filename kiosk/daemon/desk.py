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
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from drivers.errors import DriverError
from hardware.roles import HardwareError
from kiosk import receipts
from kiosk.config.desk import DeskSettings
from kiosk.daemon import db
from kiosk.daemon.actions import Action
from kiosk.daemon.bus import EventBus
from kiosk.daemon.session import SessionMachine
from kiosk.daemon.state import CardSeen, OverrideLend, TypedBook
from kiosk.daemon.workers import CardWorker, PrinterWorker
from kiosk.messages import Catalogue
from sync import audit, personal, staff, stops
from sync.cardnumbers import CardNumbersExhausted
from sync.circulation import Identity
from sync.clock import read
from sync.errors import CacheError
from sync.registration import Application, Registered, Registrar, RegistrationRefused

log = logging.getLogger(__name__)

PIN_PROMPT_S = 60.0  # a staff PIN prompt left alone goes away
CARD_WRITE_S = 10.0  # the longest a card write (auth, write, read back) may take

FORM_FIELDS = ("name", "id_type", "id_number", "phone", "village", "address", "patron_type",
               "guardian_name", "guardian_relation")


class DeskError(Exception):
    """A desk request that cannot be done now; ``message_key``/``params`` for the screen,
    ``status`` the HTTP status the web server answers with."""

    def __init__(self, message_key: str, status: int = 409, **params: Any) -> None:
        super().__init__(message_key)
        self.message_key = message_key
        self.status = status
        self.params = params


def _is_staff_card(conn: Any, card: str) -> bool:
    return conn.execute("SELECT 1 FROM staff WHERE card_number = ?", (card,)).fetchone() \
        is not None


class Desk:
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
        self.require_staff()
        card = card.strip()
        if not card or len(card) > 32 or not card.isalnum():
            raise DeskError("staff.desk.bad_card", status=422)
        self.page = "lend"
        self.publish()
        await self.run_steps(self.machine.feed(CardSeen(card, ""), time.monotonic()))

    async def typed_book(self, barcode: str) -> None:
        """A book's barcode typed in: lent to the card in session, else taken back."""
        self.require_staff()
        barcode = barcode.strip()
        if not barcode or len(barcode) > 32 or not barcode.isalnum():
            raise DeskError("staff.desk.bad_barcode", status=422)
        self.page = "lend"
        self.publish()
        await self.run_steps(self.machine.feed(TypedBook(barcode), time.monotonic()))

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

    # -- registering a reader ----------------------------------------------------------------

    async def _refresh_supply(self) -> None:
        if self.registrar is None:
            return
        try:
            supply = await self.writer.run(self.registrar.supply)
        except CacheError:
            log.exception("card numbers left could not be read")
            return
        self.supply = supply.as_dict()

    async def register(self, form: Mapping[str, Any]) -> dict[str, Any]:
        """Check the form; when it is right, wait for a blank card (the answer says so)."""
        self.require_staff()
        if self.registrar is None:
            raise DeskError(self.registration_problem or "registration.disabled")
        values = {name: str(form.get(name) or "").strip() for name in FORM_FIELDS}
        app = Application(
            name=values["name"], id_type=values["id_type"], id_number=values["id_number"],
            village=values["village"], patron_type=values["patron_type"] or "adult",
            phone=values["phone"] or None, address=values["address"] or None,
            guardian_name=values["guardian_name"],
            guardian_relation=values["guardian_relation"], consent=form.get("consent") is True)
        self.page = "register"
        try:
            supply = await self.writer.run(self.registrar.check, app)
        except RegistrationRefused as exc:
            self.registration = {"state": "form",
                                 "problems": [p.as_dict() for p in exc.problems]}
            self.publish()
            return {"ok": False, "problems": self.registration["problems"]}
        except CardNumbersExhausted as exc:
            self.supply = exc.supply.as_dict()
            self.registration = {"state": "form", "problems": [], "message": {
                "key": exc.message_key, "params": exc.params}}
            self.publish()
            raise DeskError(exc.message_key, status=409) from None
        self.supply = supply.as_dict()
        self._application = app
        self.registration = {"state": "waiting_card", "problems": [], "name": app.name,
                             "message": {"key": "staff.desk.card.place", "params": {}}}
        self.publish()
        blank, self._blank = self._blank, None
        if blank is not None and self.cards.present == blank:
            await self._write_card(CardSeen(blank, blank))
            return {"ok": True, "state": str(self.registration["state"])}
        return {"ok": True, "state": "waiting_card"}

    def cancel_registration(self) -> None:
        self.require_staff()
        self.registration, self._application, self.page = None, None, "home"
        self.publish()

    async def _write_card(self, event: CardSeen) -> None:
        reg, app, registrar = self.registration, self._application, self.registrar
        assert reg is not None and app is not None and registrar is not None
        self._touch()
        if event.card != event.uid:
            reg.update(state="failed", message={"key": "staff.desk.card.not_blank",
                                                "params": {}})
            self.publish()
            return
        card = self.cards.card
        if card is None or card.uid_hex != event.uid:
            reg.update(state="failed", message={"key": "staff.desk.card.removed", "params": {}})
            self.publish()
            return
        reg.update(state="writing", message={"key": "staff.desk.card.writing", "params": {}})
        self.publish()

        def issue(number: str) -> str:
            # On the writer's thread, inside the registration's transaction: the card
            # worker writes and reads back; any failure rolls the registration back.
            done = self.cards.submit(self.cards.reader.write_card_number, card, number)
            done.result(timeout=CARD_WRITE_S)
            return card.uid_hex

        try:
            who = self.staff
            registered = await self.writer.run(
                lambda: registrar.register(app, issue=issue, by=who))
        except RegistrationRefused as exc:
            self.registration = {"state": "form",
                                 "problems": [p.as_dict() for p in exc.problems]}
            self.publish()
            return
        except CardNumbersExhausted as exc:
            self.supply = exc.supply.as_dict()
            reg.update(state="failed", message={"key": exc.message_key, "params": exc.params})
            self.publish()
            return
        except (DriverError, HardwareError, OSError, TimeoutError) as exc:
            key = getattr(exc, "message_key", "staff.desk.card.write_failed")
            log.warning("writing a new card failed: %s", exc)
            reg.update(state="failed", message={
                "key": "staff.desk.card.write_failed",
                "params": {"detail": key}})
            self.publish()
            return
        except CacheError as exc:
            reg.update(state="failed", message={"key": exc.message_key,
                                                "params": dict(exc.params)})
            self.publish()
            return
        self._application = None
        self.supply = registered.supply.as_dict()
        self.registration = {
            "state": "issued", "problems": [], "message": None,
            "issued": {"card_number": registered.card_number, "name": registered.name,
                       "patron_type": registered.patron_type,
                       "expires_on": registered.expires_on.isoformat(),
                       "id_masked": registered.id_masked, "card_uid": card.uid_hex,
                       "slip": "printing" if self.printer is not None else "no_printer"}}
        self.bus.publish("card_issued", card=receipts.mask_card(registered.card_number))
        self.publish()
        if self.printer is not None:
            task = asyncio.ensure_future(self._print_slip(registered))
            self._printing.add(task)
            task.add_done_callback(self._printing.discard)

    async def _print_slip(self, registered: Registered) -> None:
        assert self.printer is not None
        try:
            document = await self.writer.run(self.writer.read, self._slip, registered)
            await self.printer.call(self.printer.printer.print_receipt, document)
            state = "printed"
        except (HardwareError, DriverError, OSError, CacheError) as exc:
            log.warning("the card slip of a new reader was not printed: %s", exc)
            state = "failed"
        reg = self.registration
        if reg is not None and reg.get("issued", {}).get("card_number") == \
                registered.card_number:
            reg["issued"]["slip"] = state
            self.publish()

    def _slip(self, conn: Any, registered: Registered) -> list[object]:
        library, branch = db.receipt_names(conn, self.identity.branch)
        rule = conn.execute(
            "SELECT max_loans, loan_days FROM loan_rules WHERE patron_type IN (?, '*')"
            " AND loan_type IN ('normal', '*') ORDER BY patron_type = '*', loan_type = '*'"
            " LIMIT 1", (registered.patron_type,)).fetchone() or (0, 0)
        header = receipts.ReceiptHeader(
            library=library, branch=branch, device_id=self.identity.device_id,
            when=datetime.now(self.identity.timezone), patron_name=None, card_number=None,
            offline=False)
        return receipts.new_card_receipt(
            self.t, header, name=registered.name, card_number=registered.card_number,
            patron_type=self.t.text(f"registration.patron_types.{registered.patron_type}"),
            expires_on=registered.expires_on.isoformat(), max_loans=rule[0],
            loan_days=rule[1])
