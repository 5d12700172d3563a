"""The effective settings written out for a person (``kiosk config show``), secrets masked.

A value is masked when its key is declared ``secret`` or when its name looks like one
(a word such as ``token``, ``password``, ``secret`` or ``key`` in it), so a section added
later cannot leak a credential through ``config show`` by forgetting the flag.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kiosk.config.lines import join_path
from kiosk.config.problems import Translate
from kiosk.config.schema import Key, Resolved, Schema

MASK = "********"

# Matched against each word of the name ("api_key" -> "api", "key"), so that "keyboard"
# or "monkey" are not taken for secrets; "apikey"-style run-together names are listed.
_SECRET_WORDS = re.compile(
    r"token|password|passwd|passphrase|secret|key|apikey|privkey|credentials?|psk"
)


def is_secret(key: Key) -> bool:
    """Whether ``kiosk config show`` must hide this key's value."""
    words = re.split(r"[_\-.\s]+", key.name.lower())
    return key.secret or any(_SECRET_WORDS.fullmatch(word) for word in words)


def defaulted(schema: Schema, resolved: Resolved) -> list[str]:
    """Dotted paths of the keys whose value is a default, not something the file said."""
    return [
        join_path((*section.parts, key.name))
        for section in schema.sections
        for key in section.keys
        if join_path((*section.parts, key.name)) not in resolved.given
    ]


def render_text(schema: Schema, resolved: Resolved, t: Translate) -> list[str]:
    """TOML-like lines, one table per section in schema order; values that came from
    defaults carry a comment saying so. Secrets show as :data:`MASK`."""
    out: list[str] = []
    for section in schema.sections:
        values = resolved.values.get(section.name, {})
        if out:
            out.append("")
        out.append(f"[{section.name}]")
        for key in section.keys:
            if key.name not in values:
                continue
            value = values[key.name]
            text = json.dumps(MASK) if is_secret(key) else key.type.to_toml(value)
            line = f"{key.name} = {text}"
            if join_path((*section.parts, key.name)) not in resolved.given:
                line += f"  # {t('config.show.default')}"
            out.append(line)
    return out


def render_json(schema: Schema, resolved: Resolved) -> dict[str, Any]:
    """The settings nested as in the file (``{"circulation": {"offline": {...}}}``), in
    JSON types; secrets show as :data:`MASK`."""
    settings: dict[str, Any] = {}
    for section in schema.sections:
        values = resolved.values.get(section.name, {})
        table = settings
        for part in section.parts:
            table = table.setdefault(part, {})
        for key in section.keys:
            if key.name in values:
                value = values[key.name]
                table[key.name] = MASK if is_secret(key) else key.type.to_json(value)
    return settings
