"""The SIP2 link's self-test (``kiosk selftest sip2``): login, SC status and a test patron.

It runs in the command's own process on a connection of its own (the daemon's worker keeps
its connection), and reports like a device (:class:`hardware.selftest.DeviceReport`): each
failed check names the part, the likely cause and what to do, through the catalogue.
"""

from __future__ import annotations

import ssl

from hardware.selftest import DeviceReport, Outcome, _Runner
from kiosk.config.sip2 import Sip2Settings
from kiosk.daemon.sip2worker import make_client
from sync.sip2.client import Sip2Client
from sync.sip2.errors import (
    ConnectionLost,
    LoginRefused,
    Sip2FormatError,
    Sip2LinkError,
    Sip2Timeout,
    TooManyResends,
    UnexpectedReply,
)

# The messages a self-service kiosk needs from the library system, by BX code.
NEEDED = {"93": "login", "99": "SC status", "11": "checkout", "09": "checkin",
          "29": "renew", "23": "patron status", "17": "item information"}


def _hint(settings: Sip2Settings):
    where = f"{settings.host}:{settings.port}"

    def hint(exc: Exception) -> tuple[str, dict]:
        params = {"where": where, "user": settings.login_user or "-",
                  "file": str(settings.password_file or "-"), "charset": settings.charset}
        text = str(exc)
        if isinstance(exc, LoginRefused):
            return "selftest.hint.sip2_login", params
        if isinstance(exc, Sip2Timeout):
            return "selftest.hint.sip2_timeout", params
        if isinstance(exc, ConnectionLost):
            return "selftest.hint.sip2_closed", params
        if isinstance(exc, (Sip2FormatError, TooManyResends, UnexpectedReply)):
            return "selftest.hint.sip2_garbled", params
        if isinstance(exc, Sip2LinkError) and "TLS" in text:
            return "selftest.hint.sip2_tls", params
        if isinstance(exc, Sip2LinkError):
            return "selftest.hint.sip2_unreachable", params
        if isinstance(exc, (OSError, ssl.SSLError)):
            return "selftest.hint.sip2_password_file", params
        return "selftest.hint.sip2_generic", params

    return hint


class _Refused(ValueError):
    """A check that got an answer it cannot accept (the runner reports it as failed)."""


def check_sip2(settings: Sip2Settings, client: Sip2Client | None = None) -> DeviceReport:
    """Every check of the SIP2 link of ``settings``; never raises."""
    report = DeviceReport("sip2", settings.where)
    runner = _Runner(report, _hint(settings))
    made: list[Sip2Client] = [client] if client is not None else []

    def login() -> Outcome:
        if not made:
            made.append(make_client(settings))
        made[0].login()
        who = settings.login_user or "-"
        return "selftest.detail.sip2_login", {"user": who}, f"logged in as {who}"

    def status() -> Outcome:
        acs = made[0].sc_status()
        missing = sorted(set(NEEDED) - acs.supported_messages)
        params = {"online": _yn(acs.online_status), "checkout": _yn(acs.checkout_ok),
                  "checkin": _yn(acs.checkin_ok), "renewal": _yn(acs.acs_renewal_policy),
                  "offline": _yn(acs.offline_ok), "version": acs.protocol_version,
                  "supported": " ".join(sorted(acs.supported_messages)) or "-",
                  "missing": " ".join(f"{c} ({NEEDED[c]})" for c in missing) or "-",
                  "where": f"{settings.host}:{settings.port}"}
        evidence = (f"online={params['online']} checkout={params['checkout']} "
                    f"checkin={params['checkin']} renewal={params['renewal']} "
                    f"offline={params['offline']} BX={params['supported']}")
        if not (acs.online_status and acs.checkout_ok and acs.checkin_ok) or missing:
            raise _Refused(evidence, params)
        return "selftest.detail.sip2_status", params, evidence

    def patron() -> Outcome:
        card = settings.test_patron
        found = made[0].patron_status(card)
        if not found.valid:
            raise _Refused(f"{card}: unknown to the library system",
                           {"card": card, "institution": settings.institution_id})
        may = _yn(found.may_borrow)
        return "selftest.detail.sip2_patron", {"card": card, "may": may}, \
            f"{card} known, may borrow: {may}"

    try:
        runner.check("sip2_login", login, stop=True)
        _check_refusable(runner, "sip2_status", status, "selftest.hint.sip2_status")
        if settings.test_patron:
            _check_refusable(runner, "sip2_patron", patron, "selftest.hint.sip2_patron")
    finally:
        for c in made:
            if client is None:
                c.close()
    return report


def _check_refusable(runner: _Runner, name: str, action, hint: str) -> None:
    """A check whose :class:`_Refused` gets ``hint`` with the refusal's own params."""
    before = len(runner.report.checks)
    refused: list[_Refused] = []

    def run() -> Outcome:
        try:
            return action()
        except _Refused as exc:
            refused.append(exc)
            raise

    runner.check(name, run)
    if refused and len(runner.report.checks) > before:
        check = runner.report.checks[-1]
        check.hint, check.hint_params = hint, refused[0].args[1]
        check.detail = refused[0].args[0]


def _yn(value: bool | None) -> str:
    return "Y" if value else "N"
