"""A blocking SIP2 client over TCP or TLS: one connection to one library system.

What a caller may rely on:

- Every public call sends one request and returns the typed answer (see
  :mod:`sync.sip2.results`) or raises a :class:`~sync.sip2.errors.Sip2Error`. Calls are
  serialised by a lock, so one client may be shared between threads.
- The connection is opened (and, if a login user id is configured, logged in with 93) on
  the first call, and again after it was lost.
- Sequence numbers run 0, 1, ... 9, 0; a resend repeats the same bytes with the same number.
- A reply with a bad checksum is answered with "request ACS resend" (97), up to
  ``max_resends`` times per request; a "request SC resend" (96) from the library system is
  answered by sending the last request again, up to ``max_resends`` times. Beyond that,
  :class:`TooManyResends`.
- A reply whose sequence number is not the request's is skipped (``check_sequence``): it
  answers an earlier request.
- Replies without an AZ checksum: ``require_checksum=False`` accepts them (for library
  systems with error detection switched off), ``True`` raises :class:`MissingChecksum`. The
  default (``None``) accepts them until the library system has sent one checksummed reply on
  the connection; after that a reply without one is treated as corrupted (a damaged "AZ"
  would otherwise pass as "no checksum") and answered with 97 like a bad checksum.
- Timeouts: ``connect_timeout`` for connecting (and the TLS handshake), ``timeout`` for a
  whole exchange (the reply, including resends). After a timeout the connection is closed,
  so a late reply cannot be taken for the answer to the next request; the outcome of the
  timed-out request is unknown and :class:`Sip2Timeout` says so.

Dropped connections. When the connection breaks between sending a request and reading its
reply (:class:`ConnectionLost`), the client reconnects, logs in again and sends the request
once more, then gives up. Queries (login, status, patron status and information, item
information, end session, block patron) are always retried: asking twice changes nothing.
Checkout, checkin and renew are retried too, by default (``retry_circulation``), because
the kiosk otherwise cannot tell the patron what happened: a checkin repeated is a no-op,
and SIP2 systems (Koha, Evergreen, Symphony) answer a checkout of an item already charged
to the same patron as a renewal with ok=1, so the repeated request reports the real state
of the loan. The price is that such a retry may count as one renewal in the library
system; results carry ``retried=True`` so the caller can record that. Set
``retry_circulation=False`` to get :class:`ConnectionLost` instead and decide yourself
(for instance with :meth:`Sip2Client.item_information`).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from sync.sip2 import codec
from sync.sip2.errors import (
    BadChecksum,
    ConnectionLost,
    LoginRefused,
    MissingChecksum,
    Sip2LinkError,
    Sip2Timeout,
    TooManyResends,
    UnexpectedReply,
)
from sync.sip2.framing import CR, DEFAULT_MAX_LENGTH, MessageReader, check_terminator, frame
from sync.sip2.messages import (
    AcsStatus,
    BlockPatron,
    Checkin,
    CheckinResponse,
    Checkout,
    CheckoutResponse,
    EndPatronSession,
    EndSessionResponse,
    ItemInformationRequest,
    ItemInformationResponse,
    Login,
    LoginResponse,
    Message,
    PatronInformationRequest,
    PatronInformationResponse,
    PatronStatusRequest,
    PatronStatusResponse,
    Renew,
    RenewResponse,
    RequestAcsResend,
    RequestScResend,
    ScStatus,
)
from sync.sip2.results import (
    ItemInformation,
    Loan,
    PatronInformation,
    PatronStatus,
    Return,
    SessionEnd,
)


class Sip2Client:
    """One SIP2 connection. ``tls`` is an :class:`ssl.SSLContext` to use, or ``True`` for
    the system's default one; ``ca_file`` builds a verifying context trusting that CA."""

    def __init__(self, host: str, port: int, *, institution_id: str,
                 login_user_id: str | None = None, login_password: str = "",
                 location_code: str | None = None, terminal_password: str = "",
                 charset: str = codec.DEFAULT_CHARSET,
                 tls: ssl.SSLContext | bool | None = None, ca_file: str | None = None,
                 server_hostname: str | None = None, timeout: float = 10.0,
                 connect_timeout: float | None = None, terminator: bytes = CR,
                 error_detection: bool = True, require_checksum: bool | None = None,
                 check_sequence: bool = True, max_resends: int = 3,
                 max_length: int = DEFAULT_MAX_LENGTH, retry_circulation: bool = True,
                 language: str = "000", now: Callable[[], datetime] = datetime.now) -> None:
        self.host, self.port = host, port
        self.institution_id = institution_id
        self.login_user_id, self.login_password = login_user_id, login_password
        self.location_code, self.terminal_password = location_code, terminal_password
        self.charset = codec.check_charset(charset)
        if tls is True or (tls is None and ca_file is not None):
            tls = ssl.create_default_context(cafile=ca_file)
        self.tls: ssl.SSLContext | None = tls or None
        self.server_hostname = server_hostname or host
        self.timeout = timeout
        self.connect_timeout = connect_timeout if connect_timeout is not None else timeout
        self.terminator = check_terminator(terminator)
        self.error_detection, self.require_checksum = error_detection, require_checksum
        self.check_sequence, self.max_resends = check_sequence, max_resends
        self.retry_circulation, self.language, self._now = retry_circulation, language, now
        self._reader = MessageReader(max_length)
        self._sock: socket.socket | None = None
        self._sequence = -1
        self._peer_checksums = False  # the library system has sent an AZ on this connection
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        state = "connected" if self._sock else "closed"
        return (f"Sip2Client({self.host}:{self.port}, {'tls' if self.tls else 'tcp'}, "
                f"{self.charset}, {state})")

    def __enter__(self) -> Sip2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    @contextlib.contextmanager
    def reserved(self, wait: float) -> Iterator[bool]:
        """Hold the client for a series of calls by this thread: yields True, or False
        when another thread's exchange did not end within ``wait`` seconds (then nothing
        may be sent: the caller gave up waiting)."""
        got = self._lock.acquire(timeout=max(0.0, wait))
        try:
            yield got
        finally:
            if got:
                self._lock.release()

    def close(self) -> None:
        """Close the connection; harmless when already closed."""
        with self._lock:
            sock, self._sock = self._sock, None
            self._reader.reset()
            self._peer_checksums = False
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    # -- connection -----------------------------------------------------------------------

    def connect(self) -> None:
        """Open the connection and log in (if configured). Already open: nothing to do."""
        with self._lock:
            if self._sock is not None:
                return
            try:
                sock = socket.create_connection((self.host, self.port),
                                                timeout=self.connect_timeout)
            except TimeoutError:
                raise Sip2Timeout(f"connecting to {self.host}:{self.port} took longer than "
                                  f"{self.connect_timeout} s") from None
            except OSError as exc:
                raise Sip2LinkError(f"cannot connect to {self.host}:{self.port}: {exc}") \
                    from None
            try:
                if self.tls is not None:
                    sock = self.tls.wrap_socket(sock, server_hostname=self.server_hostname)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise Sip2LinkError(f"TLS with {self.host}:{self.port} failed: {exc}") \
                    from None
            self._sock = sock
            self._reader.reset()
            if self.login_user_id is not None:
                try:
                    self._login()
                except BaseException:
                    self.close()
                    raise

    def _login(self) -> None:
        request = Login(login_user_id=self.login_user_id or "",
                        login_password=self.login_password, location_code=self.location_code)
        reply = self._transact(request, LoginResponse)
        if not reply.ok:
            raise LoginRefused(f"{self.host}:{self.port} refused the SIP2 login of "
                               f"{self.login_user_id!r}")

    def _next_sequence(self) -> int:
        self._sequence = (self._sequence + 1) % 10
        return self._sequence

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        try:
            self._sock.sendall(data)
        except TimeoutError:
            self.close()
            raise Sip2Timeout(f"sending to {self.host}:{self.port} timed out") from None
        except OSError as exc:
            self.close()
            raise ConnectionLost(f"connection to {self.host}:{self.port} lost while "
                                 f"sending: {exc}") from None

    def _receive(self, deadline: float, queue: list[bytes]) -> bytes:
        while not queue:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._sock is None:
                self.close()
                raise Sip2Timeout(f"no reply from {self.host}:{self.port} within "
                                  f"{self.timeout} s; the request's outcome is unknown")
            try:
                self._sock.settimeout(remaining)
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                self.close()
                raise ConnectionLost(f"connection to {self.host}:{self.port} lost: {exc}") \
                    from None
            if not data:
                self.close()
                raise ConnectionLost(f"{self.host}:{self.port} closed the connection "
                                     "before replying")
            queue.extend(self._reader.feed(data))
        return queue.pop(0)

    def _transact(self, request: Message, expect: type[Message]) -> Message:
        """Send ``request`` on the open connection and read its answer."""
        sequence = self._next_sequence()
        body = codec.encode(request, sequence=sequence, charset=self.charset,
                            error_detection=self.error_detection)
        wire = frame(body, self.terminator)
        resend_request = frame(codec.encode(RequestAcsResend(), charset=self.charset,
                                            error_detection=self.error_detection),
                               self.terminator)
        self._send(wire)
        deadline = time.monotonic() + self.timeout
        queue: list[bytes] = []
        asked = resent = 0
        while True:
            raw = self._receive(deadline, queue)
            required = self.require_checksum
            try:
                decoded = codec.decode(raw, charset=self.charset,
                                       require_checksum=self._peer_checksums
                                       if required is None else required)
            except (BadChecksum, MissingChecksum) as exc:
                if isinstance(exc, MissingChecksum) and required:
                    raise
                if asked >= self.max_resends:
                    raise TooManyResends(f"{request.name} ({request.code}): still a bad "
                                         f"checksum after {asked} resends: {exc}") from None
                asked += 1
                self._send(resend_request)
                continue
            self._peer_checksums |= decoded.checksummed
            reply = decoded.message
            if isinstance(reply, RequestScResend):
                if resent >= self.max_resends:
                    raise TooManyResends(f"{request.name} ({request.code}): the library "
                                         f"system asked for it {resent + 1} times")
                resent += 1
                self._send(wire)
                continue
            if self.check_sequence and self.error_detection \
                    and decoded.sequence not in (None, sequence):
                continue
            if not isinstance(reply, expect):
                raise UnexpectedReply(f"{request.name} ({request.code}) was answered by "
                                      f"{reply.name} ({reply.code}), expected {expect.code}")
            return reply

    def _exchange(self, build: Callable[[], Message], expect: type[Message],
                  retry: bool = True) -> tuple[Message, bool]:
        """(reply, retried): connect if needed, send, and on a lost connection reconnect
        and send once more when ``retry``."""
        with self._lock:
            for attempt in (0, 1):
                self.connect()
                try:
                    return self._transact(build(), expect), attempt == 1
                except ConnectionLost:
                    self.close()
                    if attempt or not retry:
                        raise
            raise AssertionError("unreachable")

    # -- requests -------------------------------------------------------------------------

    def login(self) -> None:
        """Connect and log in (again, if connected: a fresh connection is opened)."""
        with self._lock:
            self.close()
            self.connect()

    def sc_status(self, status_code: str = "0", max_print_width: int = 40) -> AcsStatus:
        """The library system's status and the messages it supports (BX)."""
        reply, _ = self._exchange(lambda: ScStatus(status_code=status_code,
                                                  max_print_width=max_print_width), AcsStatus)
        return reply  # type: ignore[return-value]

    def patron_status(self, patron_id: str, pin: str | None = None) -> PatronStatus:
        reply, _ = self._exchange(lambda: PatronStatusRequest(
            language=self.language, transaction_date=self._now(),
            institution_id=self.institution_id, patron_identifier=patron_id,
            terminal_password=self.terminal_password, patron_password=pin or ""),
            PatronStatusResponse)
        return PatronStatus.of(reply)  # type: ignore[arg-type]

    def patron_information(self, patron_id: str, pin: str | None = None,
                           summary: str | None = None, start_item: int | None = None,
                           end_item: int | None = None) -> PatronInformation:
        """``summary`` names the item list wanted: hold, overdue, charged, fine, recall or
        unavailable_hold (see :data:`sync.sip2.fields.SUMMARY_ITEMS`)."""
        reply, _ = self._exchange(lambda: PatronInformationRequest(
            language=self.language, transaction_date=self._now(), summary=summary,
            institution_id=self.institution_id, patron_identifier=patron_id,
            terminal_password=self.terminal_password, patron_password=pin,
            start_item=start_item, end_item=end_item), PatronInformationResponse)
        return PatronInformation.of(reply)  # type: ignore[arg-type]

    def item_information(self, item_id: str) -> ItemInformation:
        reply, _ = self._exchange(lambda: ItemInformationRequest(
            transaction_date=self._now(), institution_id=self.institution_id,
            item_identifier=item_id, terminal_password=self.terminal_password),
            ItemInformationResponse)
        return ItemInformation.of(reply)  # type: ignore[arg-type]

    def checkout(self, patron_id: str, item_id: str, *, pin: str | None = None,
                 no_block: bool = False, nb_due_date: datetime | None = None,
                 transaction_date: datetime | None = None,
                 fee_acknowledged: bool | None = None) -> Loan:
        """Lend ``item_id`` to ``patron_id``. ``no_block`` (with ``transaction_date`` and
        ``nb_due_date``) reports a loan the kiosk already made offline; some systems refuse
        it anyway, which comes back as ``ok=False``."""
        reply, retried = self._exchange(lambda: Checkout(
            no_block=no_block, transaction_date=transaction_date or self._now(),
            nb_due_date=nb_due_date, institution_id=self.institution_id,
            patron_identifier=patron_id, item_identifier=item_id,
            terminal_password=self.terminal_password, patron_password=pin,
            fee_acknowledged=fee_acknowledged), CheckoutResponse, self.retry_circulation)
        return Loan.of(reply, retried)  # type: ignore[arg-type]

    def checkin(self, item_id: str, *, current_location: str | None = None,
                no_block: bool = False, return_date: datetime | None = None,
                transaction_date: datetime | None = None) -> Return:
        """Return ``item_id``. ``return_date`` is when it was returned (defaults to now)."""
        def build() -> Checkin:
            now = self._now()
            return Checkin(no_block=no_block, transaction_date=transaction_date or now,
                           return_date=return_date or now,
                           current_location=current_location or self.location_code or "",
                           institution_id=self.institution_id, item_identifier=item_id,
                           terminal_password=self.terminal_password)
        reply, retried = self._exchange(build, CheckinResponse, self.retry_circulation)
        return Return.of(reply, retried)  # type: ignore[arg-type]

    def renew(self, patron_id: str, item_id: str, *, pin: str | None = None,
              no_block: bool = False, nb_due_date: datetime | None = None,
              transaction_date: datetime | None = None) -> Loan:
        reply, retried = self._exchange(lambda: Renew(
            no_block=no_block, transaction_date=transaction_date or self._now(),
            nb_due_date=nb_due_date, institution_id=self.institution_id,
            patron_identifier=patron_id, patron_password=pin, item_identifier=item_id,
            terminal_password=self.terminal_password), RenewResponse, self.retry_circulation)
        return Loan.of(reply, retried)  # type: ignore[arg-type]

    def end_session(self, patron_id: str, pin: str | None = None) -> SessionEnd:
        reply, _ = self._exchange(lambda: EndPatronSession(
            transaction_date=self._now(), institution_id=self.institution_id,
            patron_identifier=patron_id, terminal_password=self.terminal_password,
            patron_password=pin), EndSessionResponse)
        return SessionEnd.of(reply)  # type: ignore[arg-type]

    def block_patron(self, patron_id: str, message: str, *,
                     card_retained: bool = False) -> PatronStatus:
        """Block the patron's card (answered with the patron's status)."""
        reply, _ = self._exchange(lambda: BlockPatron(
            card_retained=card_retained, transaction_date=self._now(),
            institution_id=self.institution_id, blocked_card_msg=message,
            patron_identifier=patron_id, terminal_password=self.terminal_password),
            PatronStatusResponse)
        return PatronStatus.of(reply)  # type: ignore[arg-type]
