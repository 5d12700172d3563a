"""Carrying out the session machine's actions: the database through the one writer, the
security flags on the tag reader's worker, receipts on the printer's worker.

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
from collections.abc import Callable
from datetime import datetime
from typing import Any

from drivers.errors import DriverError
from hardware.roles import HardwareError
from hardware.security import SecurityPolicy, set_flag
from kiosk import receipts
from kiosk.daemon import db
from kiosk.daemon.actions import (
    Action,
    EndSession,
    FlagFailed,
    FlagSet,
    Lend,
    LoanCommitted,
    LoanRefused,
    LoanUndone,
    Notify,
    ReceiptPlan,
    Result,
    Return,
    ReturnCommitted,
    ReturnRefused,
    SetFlag,
    StartSession,
    StepFailed,
    UndoLoan,
)
from kiosk.daemon.bus import EventBus
from kiosk.daemon.session import SessionMachine
from kiosk.daemon.workers import PrinterWorker, TagWorker
from kiosk.messages import Catalogue
from sync.circulation import Identity
from sync.errors import CacheError

log = logging.getLogger(__name__)


def mask_card(card: str | None) -> str | None:
    return None if card is None else receipts.mask_card(card)


def _error_params(exc: Exception) -> tuple[str, dict[str, Any]]:
    key = getattr(exc, "message_key", "device.error")
    params = {k: str(v) for k, v in getattr(exc, "params", {}).items()}
    return key, params


class Steps:
    """The daemon's hands. ``online()`` says whether the hub is reachable (for the
    receipt's "recorded offline" line)."""

    def __init__(self, machine: SessionMachine, writer: db.Writer, tags: TagWorker,
                 printer: PrinterWorker | None, bus: EventBus, *, identity: Identity,
                 security: SecurityPolicy, receipt_language: Catalogue,
                 online: Callable[[], bool] = lambda: False) -> None:
        self.machine = machine
        self.writer = writer
        self.tags = tags
        self.printer = printer
        self.bus = bus
        self.identity = identity
        self.security = security
        self.t = receipt_language
        self.online = online
        self.printing: set[asyncio.Task[None]] = set()

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
            self.bus.publish("session_started", session=action.session, mode=str(action.mode),
                             card=mask_card(action.card))
            return None
        if isinstance(action, Lend):
            return await self._lend(action)
        if isinstance(action, SetFlag):
            return await self._flag(action)
        if isinstance(action, UndoLoan):
            return await self._undo(action)
        if isinstance(action, Return):
            return await self._return(action)
        if isinstance(action, Notify):
            self.bus.publish(action.what, session=action.session, uid=action.uid,
                             barcode=action.barcode, txn_id=action.txn_id,
                             message_key=action.message_key, params=action.params,
                             notes=list(action.notes))
            return None
        if isinstance(action, EndSession):
            self._end(action)
            return None
        raise TypeError(f"no step for {action!r}")

    def _reader_online(self) -> bool:
        link = getattr(self.tags.reader, "link", None)
        return link is None or link.online

    async def _lend(self, action: Lend) -> Result:
        if not self._reader_online():
            return StepFailed(action.uid, action.barcode, "daemon.book.reader_offline")
        try:
            outcome = await self.writer.run(self.writer.lend, action.card, action.barcode,
                                            action.uid)
        except CacheError as exc:
            return StepFailed(action.uid, action.barcode, exc.message_key, dict(exc.params))
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

    async def _return(self, action: Return) -> Result:
        if not self._reader_online():
            return StepFailed(action.uid, action.barcode, "daemon.book.reader_offline")
        try:
            outcome = await self.writer.run(self.writer.give_back, action.barcode)
        except CacheError as exc:
            return StepFailed(action.uid, action.barcode, exc.message_key, dict(exc.params))
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

    # -- the end of a session: receipts, and a checkpoint while idle -------------------------

    def _end(self, action: EndSession) -> None:
        self.bus.publish("session_ended", session=action.session, reason=action.reason,
                         receipts=len(action.receipts))
        for plan in action.receipts:
            task = asyncio.ensure_future(self._print(action.session, plan))
            self.printing.add(task)
            task.add_done_callback(self.printing.discard)
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

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for receipts still printing."""
        if self.printing:
            with contextlib.suppress(Exception):
                await asyncio.wait(set(self.printing), timeout=timeout)


def _log_failure(what: str) -> Callable[[asyncio.Future[Any]], None]:
    def done(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.warning("%s failed: %s", what, future.exception())

    return done
