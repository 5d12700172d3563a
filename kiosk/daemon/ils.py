"""Asking the library system first: online circulation over SIP2 (``[sip2]`` enabled).

While the SIP2 worker's last pass reached the library system, a loan at the pad is put to
it before the cache records anything: checkout (11) with ``no block = N``, a return
checkin (09). Three answers:

- **yes**: the library system decided. The cache records the loan with its due date (and
  title), whatever the cache's own rules say, and marks the event answered for the
  replay in the same transaction (:mod:`sync.online`).
- **no** (ok = 0): nothing is recorded; the patron is told why, with the library system's
  own screen message (``sip2.refused``).
- **no answer**: the link is down, another exchange held the connection too long, the
  connection failed, or the reply timed out. The kiosk decides from its cache exactly as
  offline, and the replayer sends the event later. When the request may have gone out (a
  timeout or a drop after sending) the event is recorded as sent with a lost reply, so the
  replayer asks item information (17) before it sends it again.

The exchange runs on a thread of its own (never on the event loop), holding the SIP2
client the worker shares: it waits at most ``wait_s`` for an exchange of the replayer to
end, and then sends nothing if it did not. Its own reply is bounded by the client's
timeouts. A connection that dropped under the request (one the library system closed while
idle, say) is reopened and the request sent once more: always for a checkin (a repeat is a
no-op), for a checkout only on systems whose profile answers a repeat as the same loan
(``repeat_checkout = renewal``), never for a renewal (a repeat renews again); otherwise
the answer counts as lost. Renewals (29) from the touchscreen are asked the same way.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sync.online import IlsDecision
from sync.sip2.client import Sip2Client
from sync.sip2.results import Loan, Return

log = logging.getLogger(__name__)

REFUSED_KEY = "sip2.refused"  # the library system said no, with its message
REFUSED_PLAIN_KEY = "sip2.refused_plain"  # ... and gave no message


@dataclass(frozen=True)
class Answer:
    """What the library system said. ``verdict``: ``ok``, ``refused``, ``unknown`` (asked,
    answer lost) or ``not_asked``."""

    verdict: str
    decision: IlsDecision | None = None
    title: str = ""
    message: str = ""
    detail: str = ""

    @property
    def refused(self) -> bool:
        return self.verdict == "refused"

    @property
    def lost(self) -> bool:
        return self.verdict == "unknown"

    def params(self, barcode: str, title: str | None = None) -> dict[str, Any]:
        """Placeholders for the refusal's message."""
        return {"title": title or self.title or barcode, "barcode": barcode,
                "detail": self.message}

    @property
    def message_key(self) -> str:
        return REFUSED_KEY if self.message else REFUSED_PLAIN_KEY


NOT_ASKED = Answer("not_asked")


class OnlineIls:
    """The library system asked first, through ``worker``'s client (a
    :class:`kiosk.daemon.sip2worker.Sip2Worker`). ``acknowledge``: SIP2 is the kiosk's
    only sync (events it decided are acknowledged at once)."""

    def __init__(self, worker: Any, *, acknowledge: bool, wait_s: float,
                 learn: bool = True, block_on_lockout: bool = False) -> None:
        self.worker = worker
        self.blocks_on_lockout = block_on_lockout
        self.acknowledge = acknowledge
        # SIP2 the only link: the cache learns readers as their cards start sessions.
        self.learns = learn and acknowledge
        self.wait_s = wait_s
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sip2 online")

    @property
    def up(self) -> bool:
        return bool(self.worker.online)

    async def checkout(self, card: str, barcode: str) -> Answer:
        if not self.up:
            return NOT_ASKED
        # After a dropped connection (a library system closing idle connections, say) the
        # checkout is sent once more only where a repeat comes back as the same loan.
        retry = self.worker.replayer.profile.repeat_checkout == "renewal"
        return await self._run(lambda c: c.checkout(card, barcode, no_block=False), retry)

    async def checkin(self, barcode: str) -> Answer:
        if not self.up:
            return NOT_ASKED
        return await self._run(lambda c: c.checkin(barcode, no_block=False), True)

    async def renew(self, card: str, barcode: str) -> Answer:
        # A repeated renewal is another renewal: never sent twice after a dropped connection.
        if not self.up:
            return NOT_ASKED
        return await self._run(lambda c: c.renew(card, barcode, no_block=False), False)

    async def patron_status(self, card: str) -> Any:
        """The library system's patron status (23) of ``card``, or None when it could not
        be asked or did not answer (nothing is learned then)."""
        if not self.up:
            return None
        return await self._lookup(lambda c: c.patron_status(card), "patron status",
                                  logging.INFO)

    async def block_patron(self, card: str, message: str, plain: str) -> bool:
        """Block ``card`` in the library system (01) with ``message`` (or ``plain``, ASCII,
        where the connection's character set cannot write it, cp850 say); whether it
        answered. Not kept for a later try: the card is locked at the kiosk anyway."""
        if not self.up:
            log.warning("the library system is not reachable: card %s not blocked there",
                        card[-4:])
            return False

        def block(client: Sip2Client) -> Any:
            try:
                message.encode(client.charset)
                text = message
            except UnicodeEncodeError:
                text = plain
            return client.block_patron(card, text)

        return await self._lookup(block, "block patron", logging.WARNING) is not None

    async def _lookup(self, call: Any, what: str, level: int) -> Any:
        """``call(client)`` on the shared connection, or None when the connection stayed
        busy or no answer came (logged at ``level``): for requests that decide nothing."""

        def ask() -> Any:
            client: Sip2Client = self.worker.client
            with client.reserved(self.wait_s) as got:
                if not got:
                    return None
                try:
                    client.connect()
                    return call(client)
                except Exception as exc:  # logged: whoever asked goes on without it
                    log.log(level, "SIP2 %s without an answer: %s: %s", what,
                            type(exc).__name__, exc)
                    return None

        return await asyncio.get_running_loop().run_in_executor(self._executor, ask)

    def settle_later(self) -> None:
        """Something the library system has not answered was committed: replay soon."""
        self.worker.request_sync()

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def _run(self, call: Any, retry: bool) -> Answer:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._ask, call, retry)

    def _ask(self, call: Any, retry: bool) -> Answer:
        client: Sip2Client = self.worker.client
        with client.reserved(self.wait_s) as got:
            if not got:
                return Answer("not_asked", detail="the SIP2 connection is busy")
            try:
                client.connect()
            except Exception as exc:  # nothing was sent: an ordinary offline decision
                return Answer("not_asked", detail=f"{type(exc).__name__}: {exc}")
            saved, client.retry_circulation = client.retry_circulation, retry
            try:
                result = call(client)
            except Exception as exc:  # sent, or perhaps sent: the outcome is unknown
                log.warning("SIP2 online request without an answer: %s: %s",
                            type(exc).__name__, exc)
                return Answer("unknown", detail=f"{type(exc).__name__}: {exc}")
            finally:  # the replayer decides itself after a lost reply
                client.retry_circulation = saved
        return self._verdict(result)

    def _verdict(self, result: Loan | Return) -> Answer:
        title = result.title or ""
        if not result.ok:
            return Answer("refused", title=title, message=result.screen_message.strip())
        due = result.due_date.date() if isinstance(result, Loan) and result.due_date else None
        return Answer("ok", IlsDecision(due, title or None, self.acknowledge), title=title)


__all__ = ["NOT_ASKED", "REFUSED_KEY", "REFUSED_PLAIN_KEY", "Answer", "OnlineIls"]
