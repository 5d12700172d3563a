"""Staff access: signing in at the desk with a staff card and PIN, signing out, overrides.

Staff accounts live in the ``staff`` table (sent down by the hub on the ``staff`` feed, or
added here with :func:`add_staff`); the PIN is kept only as a scrypt hash (:mod:`sync.pins`).

What callers may rely on:

- :func:`sign_in` answers a :class:`StaffSession` or a :class:`SignInRefused` with a reason
  code, a message key (``staff.sign_in.<reason>``) and its placeholders. Every attempt,
  right or wrong, is audited (:mod:`sync.audit`); the PIN itself is never written or logged.
- After ``attempts`` wrong PINs in a row the staff card is locked out for ``lockout``. The
  count and the lockout are rows of ``staff_sign_in``, so a restart does not clear them. A
  right PIN clears the count. The lockout is kept in wall time (it must outlive a reboot,
  and the boot-time monotonic clock does not); a Pi's clock that jumps back after a power
  cut never makes it longer than ``lockout`` from now.
- A session ends after ``idle`` without activity or ``absolute`` after sign-in, whichever
  comes first (:func:`sign_out_reason`, a pure function of monotonic times).
- :class:`Override` lets a signed-in staff member lend at the desk despite the refusals in
  :data:`OVERRIDABLE` (never "not for loan" or "on loan to another"); see
  :meth:`sync.circulation.Circulation.checkout`.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sync import audit, pins
from sync.db import writing
from sync.policy import Station
from sync.rules import Reason

log = logging.getLogger(__name__)

ROLES = ("desk", "van", "admin")

# Refusals a staff member may lend despite, with a reason. Everything else (an item not
# for loan, a book recorded as lent to someone else, a reserved book, an unknown or lost
# card, an expired card) stays refused at the desk too.
OVERRIDABLE = frozenset({Reason.PATRON_BLOCKED, Reason.FINES_OVER_LIMIT,
                         Reason.TOO_MANY_LOANS})

MAX_OVERRIDE_REASON = 200


class SignInReason(StrEnum):
    UNKNOWN_CARD = "unknown_card"
    INACTIVE = "inactive"
    WRONG_PIN = "wrong_pin"
    LOCKED_OUT = "locked_out"
    UNREADABLE = "unreadable"


class SignOutReason(StrEnum):
    SIGNED_OUT = "signed_out"
    IDLE = "idle"
    EXPIRED = "expired"


class OverrideProblem(StrEnum):
    NOT_SIGNED_IN = "not_signed_in"
    SIGNED_OUT = "signed_out"
    NOT_AT_DESK = "not_at_desk"
    NO_REASON = "no_reason"
    NOT_OVERRIDABLE = "not_overridable"
    STAFF_INACTIVE = "staff_inactive"


@dataclass(frozen=True)
class Limits:
    """How many wrong PINs lock a staff card and for how long; when a session ends."""

    attempts: int = 5
    lockout: timedelta = timedelta(minutes=15)
    idle: timedelta = timedelta(minutes=5)
    absolute: timedelta = timedelta(hours=8)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        for name in ("lockout", "idle", "absolute"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")


class StaffError(Exception):
    """Root of the staff errors; ``message_key`` and ``params`` are for the screen."""

    message_key = "staff.error"

    def __init__(self, detail: str, **params: object) -> None:
        super().__init__(detail)
        self.params = {"detail": detail, **params}


class OverrideNotAllowed(StaffError, PermissionError):
    """A staff override was asked for where it may not be used; nothing was done."""

    message_key = "staff.override.not_allowed"

    def __init__(self, problem: OverrideProblem, detail: str, **params: object) -> None:
        super().__init__(detail, problem=str(problem), **params)
        self.problem = problem
        self.message_key = f"staff.override.{problem}"


def _ns(span: timedelta) -> int:
    return span // timedelta(microseconds=1) * 1000


def sign_out_reason(started_ns: int, last_active_ns: int, now_ns: int, *,
                    idle: timedelta, absolute: timedelta) -> SignOutReason | None:
    """Why a session started at ``started_ns`` and last active at ``last_active_ns`` has
    ended at ``now_ns`` (all boot-time monotonic ns), or None while it is still valid."""
    if now_ns < started_ns or now_ns - started_ns >= _ns(absolute):
        return SignOutReason.EXPIRED
    if now_ns - max(last_active_ns, started_ns) >= _ns(idle):
        return SignOutReason.IDLE
    return None


@dataclass(frozen=True)
class StaffSession:
    """A signed-in staff member. ``signed_in_at`` is wall time (evidence for people);
    validity is judged on the monotonic ``started_ns``/``last_active_ns``."""

    staff_id: int
    card_number: str
    name: str
    role: str
    signed_in_at: datetime
    started_ns: int
    last_active_ns: int
    idle: timedelta = Limits.idle
    absolute: timedelta = Limits.absolute

    ok = True
    message_key = "staff.sign_in.ok"

    @property
    def params(self) -> dict[str, Any]:
        return {"name": self.name}

    def ended(self, now_ns: int) -> SignOutReason | None:
        return sign_out_reason(self.started_ns, self.last_active_ns, now_ns,
                               idle=self.idle, absolute=self.absolute)

    def valid_at(self, now_ns: int) -> bool:
        return self.ended(now_ns) is None

    def touched(self, now_ns: int) -> StaffSession:
        """The same session with activity at ``now_ns``."""
        return replace(self, last_active_ns=max(self.last_active_ns, now_ns))


@dataclass(frozen=True)
class SignInRefused:
    reason: SignInReason
    params: dict[str, Any] = field(default_factory=dict)

    ok = False

    @property
    def message_key(self) -> str:
        return f"staff.sign_in.{self.reason}"


@dataclass(frozen=True)
class Override:
    """Lend despite a refusal: who (``session``), why (``reason``, shown to the hub and in
    the audit), and which refusals to let through (a subset of :data:`OVERRIDABLE`)."""

    session: StaffSession | None
    reason: str
    waive: frozenset[Reason] = OVERRIDABLE


def check_override(conn: sqlite3.Connection, override: Override, station: Station,
                   now_ns: int) -> StaffSession:
    """The override's session if it may be used now at ``station``; raises
    :class:`OverrideNotAllowed` otherwise. Reads the staff row (still active?)."""
    session = override.session
    if session is None:
        raise OverrideNotAllowed(OverrideProblem.NOT_SIGNED_IN, "no staff member signed in")
    if station is not Station.DESK:
        raise OverrideNotAllowed(OverrideProblem.NOT_AT_DESK,
                                 f"overrides are for the staff desk, not the {station}")
    if not session.valid_at(now_ns):
        raise OverrideNotAllowed(OverrideProblem.SIGNED_OUT,
                                 f"the staff session has ended ({session.ended(now_ns)})")
    bad = sorted(str(r) for r in override.waive - OVERRIDABLE)
    if bad or not override.waive:
        raise OverrideNotAllowed(OverrideProblem.NOT_OVERRIDABLE,
                                 f"these refusals cannot be overridden: {', '.join(bad)}")
    text = override.reason.strip()
    if not text or len(text) > MAX_OVERRIDE_REASON:
        raise OverrideNotAllowed(OverrideProblem.NO_REASON,
                                 f"an override needs a reason of 1 to {MAX_OVERRIDE_REASON}"
                                 " characters", limit=MAX_OVERRIDE_REASON)
    active = conn.execute("SELECT active FROM staff WHERE id = ?",
                          (session.staff_id,)).fetchone()
    if not active or not active[0]:
        raise OverrideNotAllowed(OverrideProblem.STAFF_INACTIVE,
                                 "this staff account is no longer active")
    return session


# -- accounts ----------------------------------------------------------------------------

def add_staff(conn: sqlite3.Connection, card: str, name: str, role: str, pin: str, *,
              active: bool = True, updated_at: str | None = None) -> int:
    """Add a staff member (for a van set up by hand, tests and the sample); their id."""
    if role not in ROLES:
        raise ValueError(f"role is one of {', '.join(ROLES)}, not {role!r}")
    pin_hash = pins.hash_pin(pin)
    with writing(conn):
        return conn.execute(
            "INSERT INTO staff (card_number, name, role, pin_hash, active, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (card, name, role, pin_hash, int(active), updated_at)).fetchone()[0]


def set_active(conn: sqlite3.Connection, card: str, active: bool) -> None:
    with writing(conn):
        conn.execute("UPDATE staff SET active = ? WHERE card_number = ?", (int(active), card))


# -- signing in and out --------------------------------------------------------------------

def _locked_minutes(conn: sqlite3.Connection, staff_id: int, now: datetime,
                    limits: Limits) -> int:
    row = conn.execute("SELECT locked_until FROM staff_sign_in WHERE staff_id = ?",
                       (staff_id,)).fetchone()
    if row is None or row[0] is None:
        return 0
    left = datetime.fromisoformat(row[0]) - now
    if left <= timedelta(0):
        return 0
    left = min(left, limits.lockout)
    return max(1, math.ceil(left.total_seconds() / 60))


def _refuse(conn: sqlite3.Connection, card: str, staff_id: int | None, now: datetime,
            reason: SignInReason, forward: audit.Forward | None,
            **params: Any) -> SignInRefused:
    with writing(conn):
        audit.record(conn, action="sign_in_refused", at=now, staff_id=staff_id,
                     staff_card=card, details={"reason": str(reason), **params},
                     forward=forward)
    log.info("staff sign-in refused for card %s: %s", card, reason)
    return SignInRefused(reason, params)


def sign_in(
    conn: sqlite3.Connection, card: str, pin: str, now: datetime, *,
    now_ns: int, limits: Limits = Limits(), forward: audit.Forward | None = None,
) -> StaffSession | SignInRefused:
    """Sign in the holder of staff ``card`` with ``pin`` at wall time ``now`` (timezone
    aware) and boot-time monotonic ``now_ns``.

    Refusals: ``unknown_card``, ``inactive``, ``locked_out`` (params ``minutes``, rounded
    up; also the answer to the wrong PIN that locks the card), ``wrong_pin`` (params
    ``left``: tries before the lockout), ``unreadable`` (the stored hash is corrupt; the PIN
    is not counted as wrong). Each is committed with its audit row before it returns.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    row = conn.execute("SELECT id, name, role, pin_hash, active FROM staff"
                       " WHERE card_number = ?", (card,)).fetchone()
    if row is None:
        return _refuse(conn, card, None, now, SignInReason.UNKNOWN_CARD, forward)
    staff_id, name, role, stored, active = row
    if not active:
        return _refuse(conn, card, staff_id, now, SignInReason.INACTIVE, forward)
    minutes = _locked_minutes(conn, staff_id, now, limits)
    if minutes:
        return _refuse(conn, card, staff_id, now, SignInReason.LOCKED_OUT, forward,
                       minutes=minutes)
    # scrypt takes tens of milliseconds: never while holding the write lock.
    try:
        right = pins.verify_pin(pin, stored)
    except pins.BadPinHash:
        log.warning("the PIN hash of staff card %s is unreadable", card)
        return _refuse(conn, card, staff_id, now, SignInReason.UNREADABLE, forward)
    with writing(conn):
        # Another try may have locked the card while this PIN was being checked.
        minutes = _locked_minutes(conn, staff_id, now, limits)
        if minutes:
            audit.record(conn, action="sign_in_refused", at=now, staff_id=staff_id,
                         staff_card=card, forward=forward,
                         details={"reason": str(SignInReason.LOCKED_OUT), "minutes": minutes})
            return SignInRefused(SignInReason.LOCKED_OUT, {"minutes": minutes})
        if right:
            conn.execute(
                "INSERT INTO staff_sign_in (staff_id, failures, locked_until) VALUES (?, 0,"
                " NULL) ON CONFLICT (staff_id) DO UPDATE SET failures = 0, locked_until = NULL",
                (staff_id,))
            audit.record(conn, action="sign_in", at=now, staff_id=staff_id, staff_card=card,
                         details={"role": role}, forward=forward)
            log.info("staff card %s signed in", card)
            return StaffSession(staff_id, card, name, role, now, now_ns, now_ns,
                                idle=limits.idle, absolute=limits.absolute)
        failures = conn.execute(
            "INSERT INTO staff_sign_in (staff_id, failures, last_failure_at) VALUES (?, 1, ?)"
            " ON CONFLICT (staff_id) DO UPDATE SET failures = failures + 1,"
            " last_failure_at = excluded.last_failure_at RETURNING failures",
            (staff_id, now.isoformat(timespec="seconds"))).fetchone()[0]
        if failures >= limits.attempts:
            until = now + limits.lockout
            conn.execute("UPDATE staff_sign_in SET failures = 0, locked_until = ?"
                         " WHERE staff_id = ?", (until.isoformat(), staff_id))
            minutes = max(1, math.ceil(limits.lockout.total_seconds() / 60))
            audit.record(conn, action="sign_in_locked_out", at=now, staff_id=staff_id,
                         staff_card=card, forward=forward,
                         details={"reason": str(SignInReason.WRONG_PIN),
                                  "failures": failures, "minutes": minutes})
            log.warning("staff card %s locked out for %d min after %d wrong PINs", card,
                        minutes, failures)
            return SignInRefused(SignInReason.LOCKED_OUT, {"minutes": minutes})
        left = limits.attempts - failures
        audit.record(conn, action="sign_in_refused", at=now, staff_id=staff_id,
                     staff_card=card, forward=forward,
                     details={"reason": str(SignInReason.WRONG_PIN), "left": left})
    log.info("staff card %s: wrong PIN, %d tries left", card, left)
    return SignInRefused(SignInReason.WRONG_PIN, {"left": left})


def sign_out(conn: sqlite3.Connection, session: StaffSession, now: datetime,
             reason: SignOutReason = SignOutReason.SIGNED_OUT, *,
             forward: audit.Forward | None = None) -> None:
    """Record the end of ``session`` (by hand, idle or expired) in the audit."""
    with writing(conn):
        audit.record(conn, action="sign_out", at=now, staff_id=session.staff_id,
                     staff_card=session.card_number, details={"reason": str(reason)},
                     forward=forward)
    log.info("staff card %s signed out (%s)", session.card_number, reason)
