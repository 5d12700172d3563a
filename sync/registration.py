"""Registering a new reader on the device, offline: validate, issue a card, record, queue.

:meth:`Registrar.register` runs in ONE write transaction: it checks every field (all
problems are reported together, each with its reason and message key), refuses a document
already registered on this device, takes the next card number from the device's leased
ranges (:mod:`sync.cardnumbers`), inserts the patron with the ID number and phone encrypted
(:mod:`sync.personal`), counts a new card in the statistics and appends a
``patron_registered`` event to the outbox. When it returns, all of that is on disk; when it
raises, none of it is, and no card number was used. The reader can borrow at once, offline:
the patron row is in the cache like any other.

**The event payload** carries what the hub needs and no plain personal number: ``card``,
``name``, ``patron_type``, ``home_branch``, ``expires_on``, ``id_type``, ``id_hash`` (the
county-wide duplicate-person hash), ``id_masked``, ``id_sealed`` (the number encrypted for
the county, see :mod:`sync.personal`), ``phone_masked`` and ``phone_sealed`` (when a phone
was given), ``village``, ``guardian_name`` and ``guardian_relation`` (a child),
``consent_at``, ``station`` and ``branch``. The event takes the device's next ``seq``, so it
is always before any loan to the new card, and the hub applies a device's events in order.
"""

from __future__ import annotations

import logging
import sqlite3
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sync import audit, cardnumbers, idnumbers, outbox, personal, stats
from sync.cardnumbers import Supply
from sync.circulation import Identity
from sync.clock import Clock, Reading, read
from sync.db import Cache
from sync.outbox import Event
from sync.personal import Keys, Sensitive
from sync.staff import StaffSession

log = logging.getLogger(__name__)

PATRON_TYPES = ("adult", "child", "student", "elderly")
GUARDIAN_RELATIONS = ("parent", "grandparent", "relative", "other")
NAME_MAX = 40
VILLAGE_MAX = 60
ADDRESS_MAX = 120
ADULT_AGE = 18
VALIDITY_YEARS = 3

# Letters of any script (rare characters outside GB2312 included), combining marks, and the
# separators of names written in Chinese (阿依古丽·买买提) or Latin letters.
_NAME_PUNCTUATION = set(" ·•.-'")


def _as_sensitive(value: object) -> Sensitive | None:
    if value is None or isinstance(value, Sensitive):
        return value
    return Sensitive(str(value))


@dataclass(frozen=True)
class Application:
    """What the registration form collects. ``id_number``, ``phone`` and ``address`` are
    held as :class:`~sync.personal.Sensitive` (plain strings are wrapped), so the
    application can be logged or shown in a traceback without leaking them."""

    name: str
    id_type: str
    id_number: Sensitive | str
    village: str
    patron_type: str = "adult"
    phone: Sensitive | str | None = None
    address: Sensitive | str | None = None
    guardian_name: str = ""
    guardian_relation: str = ""
    consent: bool = False

    def __post_init__(self) -> None:
        for name in ("id_number", "phone", "address"):
            object.__setattr__(self, name, _as_sensitive(getattr(self, name)))


@dataclass(frozen=True)
class Problem:
    """One field that is wrong: ``field`` of the form, machine ``reason``, the text's key."""

    field: str
    reason: str
    message_key: str
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason, "message_key": self.message_key,
                "params": self.params}


class RegistrationRefused(ValueError):
    """The application was refused; ``problems`` lists every field that is wrong. Nothing
    was stored and no card number was used."""

    message_key = "registration.refused"

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("registration refused: " + ", ".join(
            f"{p.field}: {p.reason}" for p in problems))
        self.problems = problems
        self.params = {"count": len(problems)}

    @property
    def reasons(self) -> dict[str, str]:
        """field -> reason of its first problem."""
        out: dict[str, str] = {}
        for p in self.problems:
            out.setdefault(p.field, p.reason)
        return out


@dataclass(frozen=True)
class Registered:
    """A reader registered and committed together with its event."""

    card_number: str
    patron_id: int
    name: str
    patron_type: str
    expires_on: date
    id_masked: str
    phone_masked: str | None
    event: Event
    supply: Supply

    def as_dict(self) -> dict[str, Any]:
        return {"card_number": self.card_number, "name": self.name,
                "patron_type": self.patron_type, "expires_on": self.expires_on.isoformat(),
                "id_masked": self.id_masked, "phone_masked": self.phone_masked,
                "event": {"seq": self.event.seq, "txn_id": self.event.txn_id},
                "supply": self.supply.as_dict()}


def _problem(field_: str, reason: str, **params: Any) -> Problem:
    return Problem(field_, reason, f"registration.{field_}.{reason}", params)


def _text_problem(field_: str, value: str, limit: int, *, required: bool = True,
                  name_like: bool = False) -> Problem | None:
    text = unicodedata.normalize("NFC", value or "").strip()
    if not text:
        return _problem(field_, "missing") if required else None
    if len(text) > limit:
        return _problem(field_, "too_long", limit=limit)
    for ch in text:
        cat = unicodedata.category(ch)
        if cat.startswith("C") or (name_like and not (
                cat.startswith(("L", "M")) or ch in _NAME_PUNCTUATION)):
            return _problem(field_, "bad_characters")
    return None


def _clean(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value or "").split())


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True, repr=False)  # plain personal numbers: never shown
class _Valid:
    id_number: str
    phone: str | None


def validate(app: Application, today: date) -> tuple[list[Problem], _Valid | None]:
    """Every problem of ``app`` (empty when it may be registered) and, when there are none,
    the normalised ID number and phone. Pure: no database, no keys."""
    problems: list[Problem] = []
    for p in (_text_problem("name", app.name, NAME_MAX, name_like=True),
              _text_problem("village", app.village, VILLAGE_MAX),
              _text_problem("address", str(app.address.reveal() if app.address else ""),
                            ADDRESS_MAX, required=False)):
        if p is not None:
            problems.append(p)
    number = None
    born = None
    assert isinstance(app.id_number, Sensitive)
    try:
        kind = idnumbers.id_type(app.id_type)
        if kind in (idnumbers.IdType.RESIDENT_ID, idnumbers.IdType.HMT_RESIDENCE_PERMIT):
            regions = (idnumbers.MAINLAND_PROVINCES if kind is idnumbers.IdType.RESIDENT_ID
                       else idnumbers.HMT_REGIONS)
            parsed = idnumbers.parse_resident_id(app.id_number.reveal(), today, regions)
            number, born = parsed.number, parsed.birth_date
        else:
            number = idnumbers.validate(kind, app.id_number.reveal(), today)
    except idnumbers.InvalidIdNumber as exc:
        field_ = "id_type" if exc.reason is idnumbers.Reason.BAD_TYPE else "id_number"
        problems.append(Problem(field_, str(exc.reason),
                                "registration.id_type.bad_type" if field_ == "id_type"
                                else exc.message_key))
    phone = None
    if app.phone:
        assert isinstance(app.phone, Sensitive)
        try:
            phone = personal.normalise_phone(app.phone.reveal())
        except personal.InvalidPhone:
            problems.append(_problem("phone", "bad_format"))
    if app.patron_type not in PATRON_TYPES:
        problems.append(_problem("patron_type", "unknown", choices=", ".join(PATRON_TYPES)))
    elif app.patron_type == "child":
        if born is not None and _age(born, today) >= ADULT_AGE:
            problems.append(_problem("patron_type", "not_a_child", age=ADULT_AGE))
        p = _text_problem("guardian_name", app.guardian_name, NAME_MAX, name_like=True)
        if p is not None:
            problems.append(p)
        if app.guardian_relation not in GUARDIAN_RELATIONS:
            problems.append(_problem("guardian_relation", "missing" if not
                                     app.guardian_relation else "unknown"))
    if app.consent is not True:
        problems.append(_problem("consent", "missing"))
    if problems or number is None:
        return problems, None
    return problems, _Valid(number, phone)


def _refuse_duplicate(conn: sqlite3.Connection, id_hash: str) -> None:
    existing = conn.execute("SELECT card_number FROM patrons WHERE id_hash = ?",
                            (id_hash,)).fetchone()
    if existing is not None:
        raise RegistrationRefused([_problem("id_number", "already_registered",
                                            card=existing[0])])


class Registrar:
    """Registers readers on one cache for one device.

    ``keys`` are the personal-data keys (:func:`sync.personal.load_keys`); ``home_branch``
    is recorded as the new readers' home (the device's branch by default).
    """

    def __init__(self, cache: Cache, identity: Identity, keys: Keys, clock: Clock, *,
                 home_branch: str | None = None, validity_years: int = VALIDITY_YEARS
                 ) -> None:
        self.cache = cache
        self.identity = identity
        self.keys = keys
        self.clock = clock
        self.home_branch = home_branch or identity.branch
        self.validity_years = validity_years

    def __repr__(self) -> str:
        return f"<Registrar {self.identity.device_id}@{self.identity.branch} {self.cache.path}>"

    def supply(self) -> Supply:
        """Card numbers left to issue (reads only): the van's desk shows the warning."""
        today = read(self.clock).local_date(self.identity.timezone)
        with self.cache.snapshot() as conn:
            return cardnumbers.supply(conn, today)

    def check(self, app: Application) -> Supply:
        """Whether ``app`` would be registered now (reads only): raises what
        :meth:`register` would raise for the form (every field's problem, a document
        registered here already, no card number left), else the card numbers left. The van
        desk asks this before the card is put on the reader."""
        reading = read(self.clock)
        today = reading.local_date(self.identity.timezone)
        problems, valid = validate(app, today)
        if valid is None:
            raise RegistrationRefused(problems)
        id_hash = self.keys.person_hash(str(idnumbers.id_type(app.id_type)), valid.id_number)
        with self.cache.snapshot() as conn:
            _refuse_duplicate(conn, id_hash)
            left = cardnumbers.supply(conn, today)
        if left.left <= 0:
            raise cardnumbers.CardNumbersExhausted(left)
        return left

    def register(self, app: Application, *,
                 issue: Callable[[str], str] | None = None,
                 by: StaffSession | None = None) -> Registered:
        """Register the reader of ``app``. Raises :class:`RegistrationRefused` (with every
        problem) or :class:`~sync.cardnumbers.CardNumbersExhausted`; either way nothing was
        stored but the refusal's count in the statistics.

        ``issue(card_number)`` writes the number to the reader's card and returns the card's
        UID once the card reads back right; it runs inside the registration's transaction,
        after every check, so a card that fails to write (``issue`` raises) leaves nothing
        stored and the number unused, and the exception goes to the caller. ``by``: the
        staff member registering, recorded in the audit (``register_reader``: the card and
        the reader type, never a personal number) in the same transaction."""
        reading = read(self.clock)
        today = reading.local_date(self.identity.timezone)
        problems, valid = validate(app, today)
        if valid is None:
            self._count_refusal(today, problems)
            raise RegistrationRefused(problems)
        id_type = str(idnumbers.id_type(app.id_type))
        id_hash = self.keys.person_hash(id_type, valid.id_number)
        try:
            with self.cache.transaction() as conn:
                done = self._register(conn, reading, today, app, id_type, id_hash, valid,
                                      issue)
                if by is not None:
                    audit.record(
                        conn, action="register_reader",
                        at=datetime.fromtimestamp(reading.wall_ns / 1e9, UTC),
                        staff_id=by.staff_id, staff_card=by.card_number,
                        details={"card": done.card_number, "patron_type": done.patron_type},
                        txn_id=done.event.txn_id, reading=reading,
                        forward=audit.Forward(self.identity.device_id, self.identity.branch,
                                              self.clock))
                return done
        except RegistrationRefused as exc:
            self._count_refusal(today, exc.problems)
            raise
        except cardnumbers.CardNumbersExhausted:
            self._count_refusal(today, [_problem("card", "none")])
            raise

    def _count_refusal(self, today: date, problems: list[Problem]) -> None:
        with self.cache.transaction() as conn:
            stats.bump(conn, today.isoformat(), self.identity.branch, "refused")
            for p in problems:
                stats.bump(conn, today.isoformat(), self.identity.branch,
                           f"refused.registration.{p.field}.{p.reason}")

    def _register(self, conn: sqlite3.Connection, reading: Reading, today: date,
                  app: Application, id_type: str, id_hash: str, valid: _Valid,
                  issue: Callable[[str], str] | None) -> Registered:
        _refuse_duplicate(conn, id_hash)
        card = cardnumbers.allocate(conn, today)
        card_uid = issue(card) if issue is not None else None
        when = reading.wall_iso(self.identity.timezone)
        expires = _add_years(today, self.validity_years)
        name = _clean(app.name)
        village = _clean(app.village)
        child = app.patron_type == "child"
        guardian = _clean(app.guardian_name) if child else None
        relation = app.guardian_relation if child else None
        id_masked = idnumbers.mask(id_type, valid.id_number)
        phone_masked = personal.mask_phone(valid.phone) if valid.phone else None
        address = _clean(app.address.reveal()) if isinstance(app.address, Sensitive) else ""
        txn = outbox.new_txn_id()
        home = self._known_branch(conn, self.home_branch)
        patron_id = conn.execute(
            "INSERT INTO patrons (card_number, name, patron_type, home_branch, status,"
            " expires_on, updated_at, id_type, id_number_enc, id_masked, id_hash, phone_enc,"
            " phone_masked, village, address_enc, guardian_name, guardian_relation,"
            " consent_at, registered_txn, card_uid) VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (card, name, app.patron_type, home, expires.isoformat(), when, id_type,
             self.keys.encrypt(valid.id_number, "id_number"), id_masked, id_hash,
             self.keys.encrypt(valid.phone, "phone") if valid.phone else None, phone_masked,
             village, self.keys.encrypt(address, "address") if address else None,
             guardian, relation, when, txn, card_uid)).fetchone()[0]
        payload: dict[str, Any] = {
            "branch": self.identity.branch, "card": card, "name": name,
            "patron_type": app.patron_type, "home_branch": self.home_branch,
            "expires_on": expires.isoformat(), "id_type": id_type, "id_hash": id_hash,
            "id_masked": id_masked, "id_sealed": self.keys.seal(valid.id_number, "id_number"),
            "village": village, "consent_at": when, "station": str(self.identity.station),
        }
        if card_uid is not None:
            payload["card_uid"] = card_uid
        if valid.phone:
            payload["phone_masked"] = phone_masked
            payload["phone_sealed"] = self.keys.seal(valid.phone, "phone")
        if address:
            payload["address_sealed"] = self.keys.seal(address, "address")
        if child:
            payload["guardian_name"] = guardian
            payload["guardian_relation"] = relation
        event = outbox.append(conn, device_id=self.identity.device_id,
                              kind="patron_registered", payload=payload, reading=reading,
                              txn_id=txn)
        stats.bump(conn, today.isoformat(), self.identity.branch, "new_cards")
        left = cardnumbers.supply(conn, today)
        # The card and the masked ID only: never the number itself.
        log.info("registered card %s (%s, id %s), %d card numbers left", card,
                 app.patron_type, id_masked, left.left)
        return Registered(card, patron_id, name, app.patron_type, expires, id_masked,
                          phone_masked, event, left)

    def _known_branch(self, conn: sqlite3.Connection, isil: str) -> str | None:
        # home_branch references branches(isil); a van the hub has not sent yet still
        # registers (the event carries the branch, the hub records it).
        row = conn.execute("SELECT 1 FROM branches WHERE isil = ?", (isil,)).fetchone()
        return isil if row else None
