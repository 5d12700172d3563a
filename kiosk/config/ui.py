"""The ``[ui]`` section: the touchscreen's web server (see :mod:`kiosk.web`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiosk.config.schema import Key, Section
from kiosk.config.settings import UiSettings
from kiosk.config.types import Bool, Choice, Int, Str
from kiosk.messages import available

_ui = UiSettings()

# A host name or an IPv4/IPv6 address; no scheme, no port.
_HOST = r"[A-Za-z0-9.:\[\]-]{1,253}"

SECTION = Section("ui", (
    Key("enabled", Bool(), _ui.enabled),
    Key("listen", Str(_HOST, "127.0.0.1"), _ui.listen),
    Key("port", Int(0, 65535), _ui.port),
    # "" (the device's language) or a language of the catalogue.
    Key("language", Choice(("", *sorted(available()))), _ui.language),
    Key("rating", Bool(), _ui.rating),
    Key("speech", Bool(), _ui.speech),
    Key("espeak", Str(r".+", "espeak-ng"), _ui.espeak),
    Key("done_s", Int(3, 600), _ui.done_s),
))


def build(values: Mapping[str, Any]) -> UiSettings:
    """The :class:`UiSettings` of a problem-free section's values."""
    return UiSettings(**values)
