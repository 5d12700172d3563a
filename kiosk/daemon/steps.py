"""Carrying out the session machine's actions: the database through the one writer, the
security flags on the tag reader's worker, lockers on the doors' worker, receipts on the
printer's worker.

:meth:`Steps.run` runs the actions in order, depth first: each step's result goes back into
the machine at once and the actions it calls for run before the next one in the list, so a
book is lent, flagged and reported before the next book is started. No step raises: a
device or database failure becomes a result the machine knows what to do with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import datetime
from functools import partial
from typing import Any

from drivers.errors import DriverError
from hardware.latch import DoorAlreadyOpen, LatchBusy
from hardware.roles import DoorNotOpened, HardwareError
from hardware.security import SecurityPolicy, set_flag
from kiosk import receipts
from kiosk.daemon import db
from kiosk.daemon.actions import (
    Action,
    AskPin,
    EndSession,
    FlagFailed,
    FlagSet,
    HoldsFound,
    Lend,
    LoanCommitted,
    LoanRefused,
    LoanUndone,
    Notify,
    OpenLocker,
    PickedUp,
    PickupFailed,
    PinChecked,
    ReadyHold,
    ReceiptPlan,
    Result,
    Return,
    ReturnCommitted,
    ReturnRefused,
    SetFlag,
    StartSession,
    StepFailed,
    UndoLoan,
    VerifyPin,
)
from kiosk.daemon.bus import EventBus
from kiosk.daemon.ils import NOT_ASKED, OnlineIls
from kiosk.daemon.pin import PinStep, PinTries
from kiosk.daemon.session import TYPED, SessionMachine
from kiosk.daemon.workers import DoorWorker, PrinterWorker, TagWorker
from kiosk.messages import Catalogue
from sync import stats as daily_stats
from sync.circulation import Identity
from sync.errors import CacheError
from sync.policy import Station
from sync.staff import OverrideNotAllowed, StaffSession

log = logging.getLogger(__name__)


def mask_card(card: str | None) -> str | None:
    return None if card is None else receipts.mask_card(card)


def _error_params(exc: Exception) -> tuple[str, dict[str, Any]]:
    key = getattr(exc, "message_key", "device.error")
    params = {k: str(v) for k, v in getattr(exc, "params", {}).items()}
    return key, params


class Steps:
    """The daemon's hands. ``online()`` says whether the hub is reachable (for the
    receipt's "recorded offline" line); ``doors`` is the worker of the lockers (None: the
    kiosk has none, and a pickup says so)."""

    def __init__(self, machine: SessionMachine, writer: db.Writer, tags: TagWorker,
                 printer: PrinterWorker | None, bus: EventBus, *, identity: Identity,
                 security: SecurityPolicy, receipt_language: Catalogue,
                 online: Callable[[], bool] = lambda: False,
                 doors: DoorWorker | None = None, pin: PinStep | None = None,
                 staff: Callable[[], StaffSession | None] = lambda: None) -> None:
        self.machine = machine
        self.staff = staff  # the staff member signed in at the desk, if any
        self.pin = pin or PinStep(writer, "off", PinTries())
        self.writer = writer
        self.tags = tags
        self.doors = doors
        self.printer = printer
        self.bus = bus
        self.identity = identity
        self.security = security
        self.t = receipt_language
        self.online = online
        self.ils: OnlineIls | None = None  # the library system, asked first (SIP2)
        # Work that outlives the step that started it (receipts printing, SIP2 lookups):
        # kept here so it is not collected early, and waited for when the daemon stops.
        self.background: set[asyncio.Task[Any]] = set()

    async def run(self, actions: list[Action]) -> None:
        todo = deque(actions)
        while todo:
            action = todo.popleft()
            try:
                result = await self._do(action)
            except Exception:  # a bug in a step must not stop the kiosk; the log says which
                log.exception("step %s failed", action)
                continue
            if result is not None:
                todo.extendleft(reversed(self.machine.feed(result, time.monotonic())))

    async def _do(self, action: Action) -> Result | None:
        if isinstance(action, StartSession):
            if action.card is not None and self.ils is not None and self.ils.learns:
                # SIP2 is this kiosk's only link: its cache learns readers as they come.
                self._in_background(self._learn(action.card))
            holds = await self._ready_holds(action.card) if action.card is not None else ()
            self.bus.publish("session_started", session=action.session, mode=str(action.mode),
                             card=mask_card(action.card), holds=[h.as_dict() for h in holds])
            return HoldsFound(action.session, holds) if action.card is not None else None
        if isinstance(action, Lend):
            return await self._lend(action)
        if isinstance(action, SetFlag):
            return await self._flag(action)
        if isinstance(action, UndoLoan):
            return await self._undo(action)
        if isinstance(action, Return):
            return await self._return(action)
        if isinstance(action, OpenLocker):
            return await self._open_locker(action)
        if isinstance(action, AskPin):
            if self.staff() is not None:  # at the desk, staff vouch for the card holder
                return PinChecked(action.session, True, needed=False)
            return await self.pin.ask(action)
        if isinstance(action, VerifyPin):
            checked = await self.pin.verify(action)
            if checked.locked_now and self.ils is not None and self.ils.blocks_on_lockout:
                # [sip2] block_on_pin_lockout: the library system blocks the card too.
                self._in_background(self.ils.block_patron(
                    action.card, self.t.text("sip2.blocked_pin_lockout"),
                    Catalogue("en").text("sip2.blocked_pin_lockout")))
            return checked
        if isinstance(action, Notify):
            pickup = {"hold_id": action.hold_id, "slot": action.slot}
            self.bus.publish(action.what, session=action.session, uid=action.uid,
                             barcode=action.barcode, txn_id=action.txn_id,
                             message_key=action.message_key, params=action.params,
                             notes=list(action.notes),
                             **({} if action.hold_id is None else pickup))
            return None
        if isinstance(action, EndSession):
            self._end(action)
            return None
        raise TypeError(f"no step for {action!r}")

    def _reader_online(self) -> bool:
        link = getattr(self.tags.reader, "link", None)
        return link is None or link.online

    async def _lend(self, action: Lend) -> Result:
        typed = action.uid.startswith(TYPED)
        if not typed and not self._reader_online():
            return StepFailed(action.uid, action.barcode, "daemon.book.reader_offline")
        ask = self.ils is not None and action.override_reason is None
        answer = await self.ils.checkout(action.card, action.barcode) if ask else NOT_ASKED
        if answer.refused:
            return LoanRefused(action.uid, action.barcode, answer.title or action.barcode,
                               answer.message_key, answer.params(action.barcode))
        try:
            outcome = await self.writer.run(partial(
                self.writer.lend, action.card, action.barcode, action.uid, by=self.staff(),
                override_reason=action.override_reason, journal=not typed,
                ils=answer.decision, ils_unknown=answer.lost))
        except CacheError as exc:
            if answer.decision is not None and self.ils is not None:
                # Lent there, not recorded here: take it back there too.
                await self.ils.checkin(action.barcode)
            return StepFailed(action.uid, action.barcode, exc.message_key, dict(exc.params))
        except OverrideNotAllowed as exc:
            return LoanRefused(action.uid, action.barcode, action.barcode, exc.message_key,
                               {k: str(v) for k, v in exc.params.items()})
        if answer.lost and self.ils is not None:
            self.ils.settle_later()
        params = outcome.params()
        if not outcome.allowed:
            return LoanRefused(action.uid, action.barcode, params["title"],
                               outcome.decision.message_key, params)
        txn = next(e.txn_id for e in outcome.events if e.kind == "checkout")
        self.bus.publish("loan_committed", session=action.session, barcode=action.barcode,
                         uid=action.uid, txn_id=txn)
        return LoanCommitted(action.uid, action.barcode, txn, params["title"],
                             params["due_date"])

    async def _flag(self, action: SetFlag) -> Result:
        uid = bytes.fromhex(action.uid)
        try:
            await self.tags.call(set_flag, self.tags.reader, uid, action.on_loan, self.security)
        except (HardwareError, DriverError, OSError) as exc:
            key, params = _error_params(exc)
            return FlagFailed(action.uid, action.on_loan, key, params)
        if action.txn_id is not None:
            confirm = self.writer.flag_confirmed if action.on_loan else self.writer.shelf_confirmed
            try:
                await self.writer.run(confirm, action.txn_id)
            except CacheError:
                # The tag is right; the journal row stays and is listed until checked.
                log.exception("flag of %s set, but its journal row could not be cleared",
                              action.barcode)
        return FlagSet(action.uid, action.on_loan)

    async def _undo(self, action: UndoLoan) -> Result:
        try:
            outcome = await self.writer.run(self.writer.undo, action.barcode, action.txn_id)
        except CacheError:
            log.exception("loan %s of %s could not be undone", action.txn_id, action.barcode)
            return LoanUndone(action.uid, False)
        self.bus.publish("loan_undone", session=action.session, barcode=action.barcode,
                         uid=action.uid, txn_id=action.txn_id)
        return LoanUndone(action.uid, outcome.decision.changes_state)

    async def _learn(self, card: str) -> None:
        assert self.ils is not None
        status = await self.ils.patron_status(card)
        if status is None:
            return
        try:
            changed = await self.writer.run(self.writer.learn_patron, card, status)
        except CacheError:
            log.exception("what the library system said of a card was not kept")
            return
        if changed:
            self.bus.publish("patron_learned", card=mask_card(card), changed=changed)

    async def renew(self, card: str, barcode: str) -> tuple[bool, str, dict[str, Any]]:
        """Renew a loan for the touchscreen: (renewed, message key, its params). With the
        library system online it is asked first (renewal 29); its refusal is the answer,
        and a lost reply is "try again later" (a renewal sent twice renews twice), with
        nothing recorded here. Raises :class:`CacheError`."""
        answer = await self.ils.renew(card, barcode) if self.ils is not None else NOT_ASKED
        if answer.refused:
            return False, answer.message_key, answer.params(barcode)
        if answer.lost:
            return False, "sip2.renew_unknown", {"barcode": barcode}
        outcome = await self.writer.run(partial(self.writer.renew, card, barcode,
                                                Station.KIOSK, ils=answer.decision))
        params = {k: str(v) for k, v in outcome.params().items()}
        return outcome.allowed, outcome.decision.message_key, params

    async def _return(self, action: Return) -> Result:
        if not action.uid.startswith(TYPED) and not self._reader_online():
            return StepFailed(action.uid, action.barcode, "daemon.book.reader_offline")
        answer = await self.ils.checkin(action.barcode) if self.ils is not None else NOT_ASKED
        if answer.refused:
            return ReturnRefused(action.uid, action.barcode, answer.title or action.barcode,
                                 answer.message_key, answer.params(action.barcode))
        try:
            outcome = await self.writer.run(partial(
                self.writer.give_back, action.barcode, by=self.staff(), ils=answer.decision,
                ils_unknown=answer.lost))
        except CacheError as exc:
            return StepFailed(action.uid, action.barcode, exc.message_key, dict(exc.params))
        if answer.lost and self.ils is not None:
            self.ils.settle_later()
        d, params = outcome.decision, outcome.params()
        if not d.changes_state:
            return ReturnRefused(action.uid, action.barcode, params["title"], d.message_key,
                                 params)
        notes = []
        if d.route is not None:
            notes.append(f"circ.route.{d.route.kind}")
        txn = next((e.txn_id for e in outcome.events if e.kind == "checkin"), None)
        return ReturnCommitted(action.uid, action.barcode, params["title"], txn, tuple(notes),
                               params)

    # -- holds: ready at the start of a session, collected from a locker --------------------

    async def _ready_holds(self, card: str) -> tuple[ReadyHold, ...]:
        """The patron's holds ready for pickup at this branch (none if the cache cannot
        say: the session goes on without them)."""
        try:
            ready = await self.writer.run(self.writer.ready_holds, card)
        except CacheError:
            log.exception("the ready holds of a card could not be read")
            return ()
        return tuple(
            ReadyHold(h["hold_id"], h.get("title") or h.get("barcode") or "",
                      h.get("barcode") or "", h.get("locker_slot"), h.get("pickup_expires_on"))
            for h in ready if h.get("pickup_branch") == self.identity.branch)

    async def _open_locker(self, action: OpenLocker) -> Result:
        hold_id = action.hold_id
        lockers = self.doors.lockers if self.doors is not None else None
        if self.doors is None or lockers is None:
            return PickupFailed(hold_id, "daemon.pickup.no_lockers")
        try:
            check = await self.writer.run(self.writer.check_pickup, action.card, hold_id,
                                          Station.KIOSK)
        except CacheError as exc:
            return PickupFailed(hold_id, exc.message_key, dict(exc.params))
        if not check.allowed:  # nothing is opened for a pickup the rules refuse
            return PickupFailed(hold_id, check.decision.message_key, check.params())
        slot = check.decision.locker_slot or action.slot
        # Online (SIP2) the library system is asked first: nothing opens for its no, and
        # a locker that does not open gives its yes back.
        barcode = str(check.params().get("barcode") or "")
        ask = self.ils is not None and bool(barcode)
        answer = await self.ils.checkout(action.card, barcode) if ask else NOT_ASKED
        if answer.refused:
            return PickupFailed(hold_id, answer.message_key, answer.params(barcode))
        failed = None
        try:
            opened = await self.doors.call(lockers.open, slot)
        except LatchBusy:
            failed = PickupFailed(hold_id, "daemon.pickup.busy", {"slot": slot})
        except DoorAlreadyOpen:
            failed = PickupFailed(hold_id, "daemon.pickup.already_open", {"slot": slot})
        except DoorNotOpened:
            failed = PickupFailed(hold_id, "daemon.pickup.not_opened", {"slot": slot})
        except (HardwareError, DriverError, OSError, ValueError) as exc:
            log.warning("locker %s for hold %s: %s", slot, hold_id, exc)
            failed = PickupFailed(hold_id, "daemon.pickup.locker_error", {"slot": slot})
        if failed is not None:
            if answer.decision is not None and self.ils is not None:
                await self.ils.checkin(barcode)
            return failed
        self.bus.publish("locker_opened", session=action.session, hold_id=hold_id, slot=slot,
                         opened_after_s=round(opened.opened_after_s, 3))
        # The sensor saw the door open: the book is the patron's now. Record it.
        try:
            outcome = await self.writer.run(partial(
                self.writer.pickup, action.card, hold_id, Station.KIOSK, ils=answer.decision,
                ils_unknown=answer.lost))
        except CacheError:
            log.exception("locker %s opened for hold %s, but the pickup was not recorded",
                          slot, hold_id)
            return PickupFailed(hold_id, "daemon.pickup.not_recorded", {"slot": slot},
                                opened=True)
        if not outcome.allowed:
            log.error("locker %s opened for hold %s, but the pickup was refused: %s", slot,
                      hold_id, outcome.decision.reason)
            return PickupFailed(hold_id, "daemon.pickup.not_recorded", {"slot": slot},
                                opened=True)
        params = outcome.params()
        txn = next(e.txn_id for e in outcome.events if e.kind == "pickup")
        return PickedUp(hold_id, slot, params["barcode"], params["title"], params["due_date"],
                        txn)

    # -- the end of a session: receipts, and a checkpoint while idle -------------------------

    def _end(self, action: EndSession) -> None:
        self.bus.publish("session_ended", session=action.session, reason=action.reason,
                         receipts=len(action.receipts))
        for plan in action.receipts:
            self._in_background(self._print(action.session, plan))
        # Every session is a visit at the kiosk: the county counts sessions beside entries.
        counted = asyncio.ensure_future(self.writer.run(
            self.writer.write, daily_stats.bump, self.writer.today(), self.identity.branch,
            "sessions"))
        counted.add_done_callback(_log_failure("counting the session"))
        checkpoint = asyncio.ensure_future(self.writer.run(self.writer.checkpoint))
        checkpoint.add_done_callback(_log_failure("idle checkpoint"))

    async def _print(self, session: int, plan: ReceiptPlan) -> None:
        key = f"daemon.receipt.not_printed_{plan.kind}"
        if self.printer is None:
            self.bus.publish("receipt_failed", session=session, kind=plan.kind,
                             message_key=key, params={"detail": "no printer"})
            return
        try:
            document = await self.writer.run(self.writer.read, self._document, plan)
            await self.printer.call(self.printer.printer.print_receipt, document)
        except (HardwareError, DriverError, OSError, CacheError) as exc:
            _, params = _error_params(exc)
            self.bus.publish("receipt_failed", session=session, kind=plan.kind,
                             message_key=key, params={"detail": params.get("detail", str(exc))})
            return
        self.bus.publish("receipt_printed", session=session, kind=plan.kind,
                         items=len(plan.done))

    def _document(self, conn: Any, plan: ReceiptPlan) -> list[object]:
        """The receipt for ``plan`` (runs on the writer's thread: it reads names)."""
        library, branch = db.receipt_names(conn, self.identity.branch)
        name = db.patron_name(conn, plan.card) if plan.card else None
        header = receipts.ReceiptHeader(
            library=library, branch=branch, device_id=self.identity.device_id,
            when=datetime.now(self.identity.timezone), patron_name=name,
            card_number=plan.card if name else None, offline=not self.online())
        not_done = [receipts.NotDone(line.title, self.t.text(line.message_key, **line.params))
                    for line in plan.not_done]
        if plan.kind == "loan":
            lent = [receipts.LentItem(line.title, line.barcode, line.due_date)
                    for line in plan.done]
            return receipts.loan_receipt(self.t, header, lent, not_done)
        returned = [receipts.ReturnedItem(line.title, line.barcode) for line in plan.done]
        return receipts.return_receipt(self.t, header, returned, not_done)

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for receipts still printing and other background work."""
        if self.background:
            with contextlib.suppress(Exception):
                await asyncio.wait(set(self.background), timeout=timeout)


def _log_failure(what: str) -> Callable[[asyncio.Future[Any]], None]:
    def done(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.warning("%s failed: %s", what, future.exception())

    return done
