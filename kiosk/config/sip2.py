"""The ``[sip2]`` section: the county's own library system over SIP2 (see docs/sip2.md).

When enabled, the daemon replays circulation to it (:mod:`kiosk.daemon.sip2worker`) and
``kiosk selftest`` checks the link (:mod:`kiosk.sip2check`). The password is never in the
config: ``password_file`` names a file holding it, and ``kiosk config show`` masks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.config.schema import Key, Section
from kiosk.config.types import Bool, Choice, Int, OptionalPath, Str
from sync.sip2.profiles import DEFAULT, PROFILES

# A host name or an IPv4/IPv6 address (no scheme, no port); empty when SIP2 is off.
_HOST = r"|[A-Za-z0-9.:\[\]-]{1,253}"
# SIP2 field text: no field separator, no CR/LF; printable ASCII for ids and codes.
_CODE = r"[\x21-\x7b\x7d\x7e]{0,60}"

CHARSETS = ("cp850", "utf-8", "gb18030")
TERMINATORS = {"cr": b"\r", "crlf": b"\r\n"}


@dataclass(frozen=True)
class Sip2Settings:
    """``enabled``: replay circulation to the library system at ``host``:``port`` and
    check the link in ``kiosk selftest``. ``login_user`` and the password in
    ``password_file``: the SIP2 login (93) of this kiosk; ``location_code``: its location
    (CP, and the checkin's current location). ``institution_id``: AO of every message.
    ``profile``: what the library system honours (:mod:`sync.sip2.profiles`).
    ``test_patron``: a card the self-test looks up (23). ``retry_s``: how often the
    worker tries again while the link is down, and how often it replays while it is up.
    ``learn_patrons``: with SIP2 as the only link, look up each card that starts a session
    (23) and keep the reader and any block in the cache for offline use
    (:mod:`sync.learned`). ``block_on_pin_lockout``: when a card is locked at the kiosk
    for too many wrong PINs, block it in the library system too (block patron, 01)."""

    enabled: bool = False
    host: str = ""
    port: int = 6001
    tls: bool = False
    ca_file: Path | None = None
    login_user: str = ""
    password_file: Path | None = None
    location_code: str = ""
    institution_id: str = ""
    terminator: str = "cr"
    charset: str = "cp850"
    profile: str = DEFAULT
    test_patron: str = ""
    connect_timeout_ms: int = 5000
    timeout_ms: int = 10_000
    retry_s: int = 30
    learn_patrons: bool = True
    block_on_pin_lockout: bool = False

    @property
    def terminator_bytes(self) -> bytes:
        return TERMINATORS[self.terminator]

    @property
    def where(self) -> str:
        return f"{'sip2+tls' if self.tls else 'sip2'}://{self.host}:{self.port}"

    def password(self) -> str:
        """The password from ``password_file`` (first line; "" without a file). Raises
        ``OSError`` when the file cannot be read."""
        if self.password_file is None:
            return ""
        text = self.password_file.read_text(encoding="utf-8")
        return text.splitlines()[0].strip() if text.strip() else ""


_s = Sip2Settings()


def _check(values: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    if not values.get("enabled"):
        return []
    problems = [(name, "config.problem.sip2_required", {"key": name})
                for name in ("host", "institution_id") if name in values and not values[name]]
    if values.get("login_user") and "password_file" in values \
            and values["password_file"] is None:
        problems.append(("password_file", "config.problem.sip2_password_file", {}))
    return problems


SECTION = Section("sip2", (
    Key("enabled", Bool(), _s.enabled),
    Key("host", Str(_HOST, "ils.example-county.cn"), _s.host),
    Key("port", Int(1, 65535), _s.port),
    Key("tls", Bool(), _s.tls),
    Key("ca_file", OptionalPath(), _s.ca_file),
    Key("login_user", Str(_CODE, "kiosk01"), _s.login_user),
    Key("password_file", OptionalPath(), _s.password_file, secret=True),
    Key("location_code", Str(_CODE, "VAN01"), _s.location_code),
    Key("institution_id", Str(_CODE, "CN-431121"), _s.institution_id),
    Key("terminator", Choice(tuple(TERMINATORS)), _s.terminator),
    Key("charset", Choice(CHARSETS), _s.charset),
    Key("profile", Choice(tuple(PROFILES)), _s.profile),
    Key("test_patron", Str(_CODE, "T0000001"), _s.test_patron),
    Key("connect_timeout_ms", Int(100, 60_000), _s.connect_timeout_ms),
    Key("timeout_ms", Int(100, 600_000), _s.timeout_ms),
    Key("retry_s", Int(1, 3600), _s.retry_s),
    Key("learn_patrons", Bool(), _s.learn_patrons),
    Key("block_on_pin_lockout", Bool(), _s.block_on_pin_lockout),
), check=_check)


def build(values: Mapping[str, Any]) -> Sip2Settings:
    """The :class:`Sip2Settings` of a problem-free section's values."""
    return Sip2Settings(**values)
