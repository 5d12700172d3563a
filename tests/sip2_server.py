"""A SIP2 library system for tests: an in-memory ILS behind a real TCP (or TLS) server.

It speaks the protocol with the project's own codec and framing (the codec's byte-exact
behaviour is pinned separately by literal frames in test_sip2_messages.py), and behaves
like the systems kiosks meet: a login is required before anything but SC status; a bad
checksum on a request is answered with 96; a 97 is answered by repeating the last reply; a
checkout of an item already charged to the same patron is a renewal.

Faults are switched at runtime through ``server.faults`` (see :class:`Faults`). Everything
the server read is in ``server.received`` (raw messages, in order) for assertions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sync.sip2 import codec
from sync.sip2.errors import BadChecksum, Sip2FormatError
from sync.sip2.fields import write_date
from sync.sip2.framing import CR, CRLF, MessageReader, frame
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

INSTITUTION = "CN-431121"
LOAN_DAYS = 14
DENIED = frozenset({"charge_privileges_denied", "renewal_privileges_denied",
                    "recall_privileges_denied", "hold_privileges_denied"})


@dataclass
class Patron:
    id: str
    name: str
    pin: str
    blocked: bool = False
    fee_amount: str = "0.00"
    email: str | None = None


@dataclass
class Item:
    id: str
    title: str
    location: str = "MAIN"
    charged_to: str | None = None
    due: dt.datetime | None = None
    holds: list[str] = field(default_factory=list)
    renewals: int = 0


@dataclass
class Faults:
    """Misbehaviour switched on by tests; counters count down as they fire."""

    bad_checksum: int = 0          # the next N replies carry a wrong AZ
    damaged_marker: int = 0        # the next N replies have "BZ" where "AZ" belongs
    chunk: int | None = None       # send replies in pieces of this many bytes ...
    chunk_delay: float = 0.0       # ... this many seconds apart
    crlf: bool = False             # end replies with CR LF instead of CR
    delay: float = 0.0             # wait this long before each reply
    drop_before: int = 0           # the next N requests: read, then hang up unprocessed
    drop_after: int = 0            # the next N requests: process, then hang up unanswered
    skip: int = 0                  # drop_before/drop_after spare the next N requests first
    ask_resend: int = 0            # the next N requests are answered with 96
    refuse_no_block: bool = False  # refuse checkouts sent with no block = Y
    ignore_error_detection: bool = False  # never verify AZ, never send AY/AZ


class Ils:
    """The library system's data and rules; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.patrons: dict[str, Patron] = {}
        self.items: dict[str, Item] = {}
        self.checkouts = 0  # checkout requests that changed or confirmed a loan

    def add_patron(self, patron: Patron) -> Patron:
        self.patrons[patron.id] = patron
        return patron

    def add_item(self, item: Item) -> Item:
        self.items[item.id] = item
        return item

    def answer(self, request: Message, faults: Faults) -> Message:
        now = dt.datetime.now().replace(microsecond=0)
        with self.lock:
            handler = getattr(self, f"_on_{type(request).__name__}")
            return handler(request, now, faults)

    def _on_ScStatus(self, request: ScStatus, now, faults) -> AcsStatus:
        return AcsStatus(True, True, True, True, False, True, 30, 3, now, "2.00",
                         INSTITUTION, "County Library", frozenset(
                             {"23", "11", "09", "01", "99", "97", "93", "63", "35", "17",
                              "29"}), "kiosk test")

    def _status(self, patron_id: str, pin: str | None, now) -> PatronStatusResponse:
        patron = self.patrons.get(patron_id)
        if patron is None:
            return PatronStatusResponse(DENIED, "000", now, INSTITUTION, patron_id, "",
                                        valid_patron=False, screen_message=["Unknown patron"])
        blocks = DENIED if patron.blocked else frozenset()
        return PatronStatusResponse(blocks, "000", now, INSTITUTION, patron.id, patron.name,
                                    True, None if pin is None else pin == patron.pin,
                                    "CNY", patron.fee_amount)

    def _on_PatronStatusRequest(self, request: PatronStatusRequest, now, faults):
        return self._status(request.patron_identifier, request.patron_password or None, now)

    def _on_BlockPatron(self, request: BlockPatron, now, faults):
        patron = self.patrons.get(request.patron_identifier)
        if patron is not None:
            patron.blocked = True
        return self._status(request.patron_identifier, None, now)

    def _on_PatronInformationRequest(self, request: PatronInformationRequest, now, faults):
        base = self._status(request.patron_identifier, request.patron_password, now)
        pid = request.patron_identifier
        charged = [i for i in self.items.values() if i.charged_to == pid]
        overdue = [i for i in charged if i.due and i.due < now]
        holds = [i for i in self.items.values() if pid in i.holds]
        lists = {"charged": charged, "overdue": overdue, "hold": holds}
        wanted = lists.get(request.summary or "", [])
        field_name = {"charged": "charged_items", "overdue": "overdue_items",
                      "hold": "hold_items"}.get(request.summary or "")
        reply = PatronInformationResponse(
            base.patron_status, "000", now, len(holds), len(overdue), len(charged), 0, 0, 0,
            INSTITUTION, pid, base.personal_name, hold_items_limit=10, charged_items_limit=20,
            valid_patron=base.valid_patron, valid_patron_password=base.valid_patron_password,
            currency_type=base.currency_type, fee_amount=base.fee_amount,
            email_address=self.patrons[pid].email if pid in self.patrons else None,
            screen_message=list(base.screen_message))
        if field_name:
            start = (request.start_item or 1) - 1
            end = request.end_item or len(wanted)
            setattr(reply, field_name, [f"{i.id} {i.title}" for i in wanted[start:end]])
        return reply

    def _on_ItemInformationRequest(self, request: ItemInformationRequest, now, faults):
        item = self.items.get(request.item_identifier)
        if item is None:
            return ItemInformationResponse("01", "00", "01", now,
                                           item_identifier=request.item_identifier,
                                           screen_message=["Unknown item"])
        status = "04" if item.charged_to else ("08" if item.holds else "03")
        return ItemInformationResponse(
            status, "00", "01", now, hold_queue_length=len(item.holds),
            due_date=write_date(item.due, "due") if item.due else None,
            item_identifier=item.id, title_identifier=item.title,
            permanent_location=item.location, current_location=item.location)

    def _loan_reply(self, cls, request, now, ok, item, renewal=False, message=None):
        return cls(ok, renewal, None, ok or None, now, INSTITUTION, request.patron_identifier,
                   request.item_identifier or "", item.title if item else "",
                   write_date(item.due, "due") if ok and item and item.due else "",
                   screen_message=[message] if message else [])

    def _on_Checkout(self, request: Checkout, now, faults):
        patron = self.patrons.get(request.patron_identifier)
        item = self.items.get(request.item_identifier)
        if request.no_block and faults.refuse_no_block:
            return self._loan_reply(CheckoutResponse, request, now, False, item,
                                    message="No-block transactions are not accepted")
        if patron is None or item is None:
            return self._loan_reply(CheckoutResponse, request, now, False, item,
                                    message="Unknown patron or item")
        if not request.no_block:
            if request.patron_password is not None and request.patron_password != patron.pin:
                return self._loan_reply(CheckoutResponse, request, now, False, item,
                                        message="Wrong PIN")
            if patron.blocked:
                return self._loan_reply(CheckoutResponse, request, now, False, item,
                                        message="Card blocked")
            if item.charged_to not in (None, patron.id):
                return self._loan_reply(CheckoutResponse, request, now, False, item,
                                        message="Item is on loan to another patron")
            if item.holds and item.holds[0] != patron.id:
                return self._loan_reply(CheckoutResponse, request, now, False, item,
                                        message="Item is on hold for another patron")
        renewal = item.charged_to == patron.id
        item.renewals += renewal
        item.charged_to = patron.id
        item.due = request.nb_due_date if request.no_block and request.nb_due_date \
            else now + dt.timedelta(days=LOAN_DAYS)
        if patron.id in item.holds:
            item.holds.remove(patron.id)
        self.checkouts += 1
        return self._loan_reply(CheckoutResponse, request, now, True, item, renewal)

    def _on_Renew(self, request: Renew, now, faults):
        item = self.items.get(request.item_identifier or "")
        if item is None or item.charged_to != request.patron_identifier or item.holds:
            return self._loan_reply(RenewResponse, request, now, False, item,
                                    message="Cannot renew")
        item.renewals += 1
        item.due = now + dt.timedelta(days=LOAN_DAYS)
        return self._loan_reply(RenewResponse, request, now, True, item, True)

    def _on_Checkin(self, request: Checkin, now, faults):
        item = self.items.get(request.item_identifier)
        if item is None:
            return CheckinResponse(False, False, None, True, now, INSTITUTION,
                                   request.item_identifier, "", screen_message=["Unknown item"])
        borrower, item.charged_to, item.due = item.charged_to, None, None
        return CheckinResponse(
            True, True, None, bool(item.holds), now, INSTITUTION, item.id, item.location,
            item.title, "HOLDS" if item.holds else None, borrower,
            screen_message=[] if borrower else ["Item was not on loan"])

    def _on_EndPatronSession(self, request: EndPatronSession, now, faults):
        return EndSessionResponse(True, now, INSTITUTION, request.patron_identifier,
                                  screen_message=["Goodbye"])


class _Handler(socketserver.BaseRequestHandler):
    server: Sip2TestServer

    def handle(self) -> None:
        server, sock = self.server, self.request
        if isinstance(sock, ssl.SSLSocket):
            try:
                sock.do_handshake()
            except (OSError, ssl.SSLError):
                return
        reader = MessageReader()
        logged_in = server.login is None
        last: bytes | None = None
        with server.state:
            server.connections += 1
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            for raw in reader.feed(data):
                with server.state:
                    server.received.append(raw)
                reply = self._respond(raw, last, logged_in)
                if reply is None:
                    self._hang_up()
                    return
                message, body = reply
                if isinstance(message, LoginResponse) and message.ok:
                    logged_in = True
                if not isinstance(message, RequestScResend):
                    last = body
                self._send(body)

    def _respond(self, raw: bytes, last: bytes | None, logged_in: bool):
        """(message, encoded body) to send, or None to hang up."""
        server, faults = self.server, self.server.faults
        ignore = faults.ignore_error_detection
        with server.state:
            armed = not faults.skip
            if faults.skip and (faults.drop_before or faults.drop_after):
                faults.skip -= 1
            if faults.drop_before and armed:
                faults.drop_before -= 1
                return None
        try:
            decoded = codec.decode(raw, charset=server.charset, verify=not ignore)
        except BadChecksum:
            return RequestScResend(), self._encode(RequestScResend(), None)
        except Sip2FormatError:
            return None
        request = decoded.message
        if isinstance(request, RequestAcsResend):
            return (RequestAcsResend(), last) if last is not None else None
        with server.state:
            if faults.ask_resend:
                faults.ask_resend -= 1
                return RequestScResend(), self._encode(RequestScResend(), None)
        if isinstance(request, Login):
            with server.state:
                server.logins += 1
            ok = (request.login_user_id, request.login_password) == server.login
            reply: Message = LoginResponse(ok)
        elif not logged_in and not isinstance(request, ScStatus):
            return None  # like Koha: no conversation before a login
        else:
            reply = server.ils.answer(request, faults)
        with server.state:
            if faults.drop_after and armed:
                faults.drop_after -= 1
                return None
        return reply, self._encode(reply, decoded.sequence)

    def _encode(self, message: Message, sequence: int | None) -> bytes:
        ignore = self.server.faults.ignore_error_detection
        return codec.encode(message, sequence=sequence or 0, charset=self.server.charset,
                            error_detection=not ignore)

    def _send(self, body: bytes) -> None:
        faults = self.server.faults
        with self.server.state:
            if faults.bad_checksum and body[-6:-4] == b"AZ":
                faults.bad_checksum -= 1
                wrong = (int(body[-4:], 16) + 1) & 0xFFFF
                body = body[:-4] + b"%04X" % wrong
            elif faults.damaged_marker and body[-6:-4] == b"AZ":
                faults.damaged_marker -= 1
                body = body[:-6] + b"BZ" + body[-4:]
        wire = frame(body, CRLF if faults.crlf else CR)
        time.sleep(faults.delay)
        try:
            if faults.chunk:
                for start in range(0, len(wire), faults.chunk):
                    self.request.sendall(wire[start:start + faults.chunk])
                    time.sleep(faults.chunk_delay)
            else:
                self.request.sendall(wire)
        except OSError:
            pass

    def _hang_up(self) -> None:
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)


class Sip2TestServer(socketserver.ThreadingTCPServer):
    """``with Sip2TestServer(ils) as server:`` serves on 127.0.0.1 on a free port (or on
    ``port``, for a library system that comes back where it was)."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, ils: Ils, *, charset: str = "cp850",
                 login: tuple[str, str] | None = ("kiosk", "secret"),
                 tls: ssl.SSLContext | None = None, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.ils, self.charset, self.login, self.tls = ils, charset, login, tls
        self.faults = Faults()
        self.state = threading.Lock()
        self.received: list[bytes] = []
        self.connections = 0
        self.logins = 0
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def get_request(self):
        sock, address = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def decoded(self) -> list[Message]:
        """What the server read, as messages (error detection ignored)."""
        return [codec.decode(raw, charset=self.charset, verify=False).message
                for raw in list(self.received)]

    def __enter__(self) -> Sip2TestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


def make_tls(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and the path
    of that certificate for the client to trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sip2 test ILS")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "ils.pem", folder / "ils.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path
