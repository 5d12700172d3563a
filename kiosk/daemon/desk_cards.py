"""The staff desk's registration of readers: the form checked, the card written, the slip.

A mixin of :class:`kiosk.daemon.desk.Desk` (see there for the whole desk): staff fill the
form (:meth:`Registering.register`, every problem at once), then put a blank card on the
reader, before or after the form; the card number is written and read back inside the
registration's transaction (:meth:`sync.registration.Registrar.register` with ``issue``),
so a card that fails to write, or is taken away mid-write, is not issued and its number
stays unused. Then the card slip prints.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from drivers.errors import DriverError
from hardware.roles import HardwareError
from kiosk import receipts
from kiosk.daemon import db
from kiosk.daemon.state import CardSeen
from sync.cardnumbers import CardNumbersExhausted
from sync.errors import CacheError

if TYPE_CHECKING:
    from kiosk.daemon.bus import EventBus
    from kiosk.daemon.workers import CardWorker, PrinterWorker
    from kiosk.messages import Catalogue
    from sync import staff
    from sync.circulation import Identity
    from sync.registration import Application, Registered, Registrar

log = logging.getLogger(__name__)

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


class Registering:
    """Registering readers at the desk; the attributes below are the desk's own."""

    writer: db.Writer
    bus: EventBus
    cards: CardWorker
    printer: PrinterWorker | None
    identity: Identity
    t: Catalogue
    staff: staff.StaffSession | None
    page: str
    registration: dict[str, Any] | None
    registrar: Registrar | None
    registration_problem: str | None
    supply: dict[str, Any] | None
    _application: Application | None
    _blank: str | None
    _printing: set[asyncio.Task[None]]

    def require_staff(self) -> staff.StaffSession:
        raise NotImplementedError

    def publish(self) -> None:
        raise NotImplementedError

    def _touch(self) -> None:
        raise NotImplementedError

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
        from sync.registration import Application, RegistrationRefused

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
        from sync.registration import RegistrationRefused

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
        except Exception:  # a bug: the desk must still say the slip did not print
            log.exception("the card slip of a new reader was not printed")
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
