"""The ``[desk]`` section: the staff desk of a book van or a staffed service point (see
:mod:`kiosk.daemon.desk`): staff sign-in, van stops, registering readers and writing cards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.config.schema import Key, Section
from kiosk.config.types import Bool, Int, OptionalPath, PathType, Str, StrList

# A stop's name as people write it: any script, spaces and the middle dot (石门村, 柳树湾·二组).
_STOP = r"[^\x00-\x1f\x7f|]{1,40}"


@dataclass(frozen=True)
class DeskSettings:
    """``enabled``: staff cards are recognised at this kiosk's card reader (off: a staff
    card is a card like any other). ``stops``: the van's stops, in route order (empty: a
    fixed service point). ``registration``: readers may be registered and cards written
    here; needs ``key_file``, the personal-data keys (``kiosk keys create``), kept outside
    the database. ``pin_attempts``/``pin_lockout_min``: wrong staff PINs before the staff
    card is locked, and for how long. ``idle_min``/``absolute_h``: automatic sign-out after
    that long without a touch, or that long after signing in, whatever happens.

    ``laptop_listen``: an address on the van's own network where the desk is also served,
    over TLS (``laptop_cert``/``laptop_key``), for the van's laptop and its keyboard ("": off,
    the default). Only the desk is served there, and only while staff are signed in at the
    kiosk. ``laptop_hosts``: the host names the laptop may use (besides the address)."""

    enabled: bool = True
    stops: tuple[str, ...] = ()
    registration: bool = False
    key_file: Path = Path("/etc/library-kiosk/personal-data.key")
    pin_attempts: int = 5
    pin_lockout_min: int = 15
    idle_min: int = 5
    absolute_h: int = 10
    laptop_listen: str = ""
    laptop_port: int = 8443
    laptop_cert: Path | None = None
    laptop_key: Path | None = None
    laptop_hosts: tuple[str, ...] = ()


_desk = DeskSettings()
_HOST = r"[A-Za-z0-9.:\[\]-]{1,253}"
_HOST_OR_EMPTY = r"|[A-Za-z0-9.:\[\]-]{1,253}"


def _check(values: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    # The laptop's desk is only ever served over TLS: an address needs its certificate.
    if values.get("laptop_listen"):
        return [(key, "config.problem.laptop_tls", {})
                for key in ("laptop_cert", "laptop_key") if values.get(key) is None]
    return []

SECTION = Section("desk", (
    Key("enabled", Bool(), _desk.enabled),
    Key("stops", StrList(Str(_STOP, "石门村")), _desk.stops),
    Key("registration", Bool(), _desk.registration),
    Key("key_file", PathType(), _desk.key_file),
    Key("pin_attempts", Int(1, 10), _desk.pin_attempts),
    Key("pin_lockout_min", Int(1, 1440), _desk.pin_lockout_min),
    Key("idle_min", Int(1, 120), _desk.idle_min),
    Key("absolute_h", Int(1, 24), _desk.absolute_h),
    Key("laptop_listen", Str(_HOST_OR_EMPTY, "192.168.50.1"), _desk.laptop_listen),
    Key("laptop_port", Int(0, 65535), _desk.laptop_port),
    Key("laptop_cert", OptionalPath(), _desk.laptop_cert),
    Key("laptop_key", OptionalPath(), _desk.laptop_key),
    Key("laptop_hosts", StrList(Str(_HOST, "van-01.local")), _desk.laptop_hosts),
), check=_check)


def build(values: Mapping[str, Any]) -> DeskSettings:
    """The :class:`DeskSettings` of a problem-free section's values."""
    return DeskSettings(**values)
