"""The message catalogue: every text a person reads comes from here.

One folder per language (``zh-CN/`` is the reference language, ``en/`` the second); adding
a language is adding a folder, no code. In a folder, ``meta.toml`` names the language and
its writing direction (``ltr`` or ``rtl``) for the UI, and every other ``*.toml`` file holds
the texts of one area (``circ.toml``, ``db.toml``, ...). A file's tables become the first
parts of its keys (``[circ.checkout] ok = ...`` is ``circ.checkout.ok``); a key defined in
two files of one language is an error. Texts use ``{name}`` placeholders.
A key missing from a language falls back to zh-CN, then to the key itself, so a screen
never goes blank because a translation lagged behind.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from string import Formatter

DEFAULT_LANGUAGE = "zh-CN"


def _flatten(table: Mapping[str, object], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = str(value)
    return flat


@cache
def available() -> dict[str, dict[str, str]]:
    """Language code -> its meta table, for every catalogue folder shipped."""
    found = {}
    for entry in resources.files(__package__).iterdir():
        meta = entry / "meta.toml"
        if entry.is_dir() and meta.is_file():
            found[entry.name] = dict(tomllib.loads(meta.read_text(encoding="utf-8")))
    return found


class CatalogueError(ValueError):
    """A catalogue folder is inconsistent (a key defined twice)."""


@cache
def texts(language: str) -> dict[str, str]:
    """Every key -> text of one language (without fallback)."""
    folder = resources.files(__package__) / language
    merged: dict[str, str] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml") or entry.name == "meta.toml":
            continue
        flat = _flatten(tomllib.loads(entry.read_text(encoding="utf-8")))
        twice = merged.keys() & flat.keys()
        if twice:
            raise CatalogueError(
                f"{language}/{entry.name}: keys already defined: {', '.join(sorted(twice))}"
            )
        merged.update(flat)
    return merged


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(text) if name}


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Catalogue:
    """Texts of one language with zh-CN as fallback.

    ``text(key, **params)`` never raises for a missing key or parameter: it shows the key or
    the placeholder, which a test catches and a patron at least can report.
    """

    def __init__(self, language: str = DEFAULT_LANGUAGE) -> None:
        if language not in available():
            raise ValueError(
                f"no message catalogue for language {language!r}; "
                f"available: {', '.join(sorted(available()))}"
            )
        self.language = language
        self._texts = texts(language)
        self._fallback = texts(DEFAULT_LANGUAGE)

    @property
    def direction(self) -> str:
        return available()[self.language].get("direction", "ltr")

    def has(self, key: str) -> bool:
        return key in self._texts or key in self._fallback

    def text(self, key: str, /, **params: object) -> str:
        template = self._texts.get(key) or self._fallback.get(key)
        if template is None:
            return key
        return template.format_map(_Keep(params))

    def __repr__(self) -> str:
        return f"<Catalogue {self.language}>"


def choose_language(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The language for a command-line user: ``--lang``, then ``KIOSK_LANG``, then the
    locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``), then zh-CN."""
    env = os.environ if environ is None else environ
    for candidate in (explicit, env.get("KIOSK_LANG")):
        if candidate:
            return candidate
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var, "")
        if not value or value in ("C", "POSIX") or value.startswith("C."):
            continue
        code = value.split(".")[0].replace("_", "-")
        for language in available():
            if code == language or code.split("-")[0] == language.split("-")[0]:
                return language
        break
    return DEFAULT_LANGUAGE
