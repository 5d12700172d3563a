"""Declarative config schema: sections of typed, bounded keys, checked all at once.

Adding a section to the config is declaring a :class:`Section` of :class:`Key` objects and
adding it to the kiosk's :class:`Schema` (see :mod:`kiosk.config.sections`). :func:`resolve`
then reads every declared key, records each one it read (as Klipper does) and reports every
key present in the file but never read as unknown, with the closest valid name as a
suggestion. It never stops at the first problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiosk.config.lines import PathPart, join_path, line_of
from kiosk.config.problems import Problem
from kiosk.config.types import Invalid, ValueType, closest, toml_type


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""The default of a key that the file must give."""


@dataclass(frozen=True)
class PerProfile:
    """A default computed from the profile name (``24h-space``, ``van``, ``sim``)."""

    compute: Callable[[str], Any]


@dataclass(frozen=True)
class Key:
    """One setting. ``default`` is a converted value, :data:`REQUIRED` or a
    :class:`PerProfile`; ``secret`` masks the value in ``kiosk config show`` (names that
    look secret are masked anyway, see :func:`kiosk.config.show.is_secret`)."""

    name: str
    type: ValueType
    default: Any = REQUIRED
    secret: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


# A check across the keys of one section: (key name, message key, params) per problem.
CrossCheck = Callable[[Mapping[str, Any]], list[tuple[str, str, dict[str, Any]]]]


@dataclass(frozen=True)
class Section:
    """A TOML table of keys; ``name`` is dotted for a table inside another
    (``circulation.offline`` is ``[circulation.offline]``). ``check``, if given, runs on the
    section's converted values (rules between keys); a key whose own value was wrong is
    absent from them, so a check must look only at the keys it finds."""

    name: str
    keys: tuple[Key, ...]
    check: CrossCheck | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))


@dataclass(frozen=True)
class Schema:
    """Every section the file may have, and how the profile chooses defaults.

    ``profile_key`` is the dotted key naming the profile; ``profile_defaults`` maps a
    profile to ``{"section.key": default}`` overrides, which win over a key's own default.
    ``fallback_profile`` supplies defaults while the file's own profile is missing or wrong.
    """

    sections: tuple[Section, ...]
    profile_key: str = "device.profile"
    profile_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    fallback_profile: str = "sim"
    # Rules across sections: given every section's values, (section, key, message key,
    # params) per problem. Like a section's check, each must look only at what it finds.
    checks: tuple[Callable[[Mapping[str, Mapping[str, Any]]],
                           list[tuple[str, str, str, dict[str, Any]]]], ...] = ()

    def section(self, name: str) -> Section:
        for section in self.sections:
            if section.name == name:
                return section
        raise KeyError(name)

    def with_section(self, section: Section) -> Schema:
        """A copy with one more section (later work adds its sections this way in tests)."""
        return Schema(
            (*self.sections, section), self.profile_key, self.profile_defaults,
            self.fallback_profile, self.checks,
        )

    def default(self, section: Section, key: Key, profile: str) -> Any:
        """The value a key takes when the file does not give it (:data:`REQUIRED` if none)."""
        overrides = self.profile_defaults.get(profile, {})
        default = overrides.get(f"{section.name}.{key.name}", key.default)
        return default.compute(profile) if isinstance(default, PerProfile) else default

    def names_under(self, parts: tuple[PathPart, ...]) -> list[str]:
        """Every name valid directly inside the table at ``parts``: keys and sub-tables."""
        names: list[str] = []
        for section in self.sections:
            if section.parts == parts:
                names += [k.name for k in section.keys]
            elif section.parts[: len(parts)] == parts and len(section.parts) > len(parts):
                names.append(section.parts[len(parts)])
        return list(dict.fromkeys(names))

    def elsewhere(self, name: str) -> str | None:
        """The full path of a key or section called exactly ``name`` in another place."""
        for section in self.sections:
            if section.parts[-1] == name:
                return section.name
            for key in section.keys:
                if key.name == name:
                    return f"{section.name}.{name}"
        return None


@dataclass
class Resolved:
    """The outcome of checking one document.

    ``values`` maps section name -> key name -> converted value, defaults filled in; a key
    whose value was wrong, or required and missing, is absent. ``given`` holds the dotted
    paths that the file set. Only when ``problems`` is empty are ``values`` complete.
    """

    values: dict[str, dict[str, Any]]
    given: set[str]
    problems: list[Problem]
    profile: str


class _Check:
    def __init__(self, schema: Schema, doc: Mapping[str, Any], lines: Mapping[str, int],
                 file: str, folder: Path) -> None:
        self.schema, self.doc, self.lines = schema, doc, lines
        self.file, self.folder = file, folder
        self.read: set[tuple[PathPart, ...]] = set()
        self.tables: set[tuple[PathPart, ...]] = set()
        self.not_tables: set[tuple[PathPart, ...]] = set()
        self.problems: list[Problem] = []

    def problem(self, parts: tuple[PathPart, ...], message_key: str, **params: Any) -> None:
        self.problems.append(Problem(
            self.file, line_of(self.lines, parts), join_path(parts), message_key, params,
        ))

    def table(self, parts: tuple[str, ...]) -> dict[str, Any] | None:
        """The table at ``parts``, marking it and its parents read; None when absent or
        not a table (that is reported once, at the outermost non-table)."""
        node: Any = self.doc
        for end in range(1, len(parts) + 1):
            here = parts[:end]
            if not isinstance(node, dict) or parts[end - 1] not in node:
                return None
            node = node[parts[end - 1]]
            if not isinstance(node, dict):
                if here not in self.not_tables:
                    self.problem(here, "config.problem.type", expected="table",
                                 found=toml_type(node))
                self.read.add(here)
                self.not_tables.add(here)
                return None
            self.read.add(here)
            self.tables.add(here)
        return node

    def profile(self) -> str:
        """The file's profile if it names a valid one, else the fallback; problems with
        the profile key itself are reported by :meth:`run` like any other key's."""
        section_name, _, name = self.schema.profile_key.rpartition(".")
        try:
            section = self.schema.section(section_name)
        except KeyError:
            return self.schema.fallback_profile
        table = self.table(section.parts) or {}
        for key in section.keys:
            if key.name == name and name in table:
                try:
                    return key.type.convert(table[name], self.folder)
                except Invalid:
                    break
        return self.schema.fallback_profile

    def run(self) -> Resolved:
        profile = self.profile()
        values: dict[str, dict[str, Any]] = {}
        given: set[str] = set()
        for section in self.schema.sections:
            table = self.table(section.parts)
            got = values.setdefault(section.name, {})
            if table is None and any(section.parts[:end] in self.not_tables
                                     for end in range(1, len(section.parts) + 1)):
                # Present but not a table: that one problem is reported; "missing" for each
                # of its keys would only bury it.
                continue
            for key in section.keys:
                parts = (*section.parts, key.name)
                if table is not None and key.name in table:
                    self.read.add(parts)
                    try:
                        got[key.name] = key.type.convert(table[key.name], self.folder)
                        given.add(join_path(parts))
                    except Invalid as bad:
                        self.problem(parts, bad.message_key, **bad.params)
                    continue
                default = self.schema.default(section, key, profile)
                if default is REQUIRED:
                    self.problem(parts, "config.problem.missing")
                else:
                    got[key.name] = default
            if section.check is not None:
                for name, message_key, params in section.check(got):
                    self.problem((*section.parts, name), message_key, **params)
        for check in self.schema.checks:
            for section_name, name, message_key, params in check(values):
                self.problem((*section_name.split("."), name), message_key, **params)
        self.unread(self.doc, ())
        return Resolved(values, given, self.problems, profile)

    def unread(self, table: Mapping[str, Any], parts: tuple[PathPart, ...]) -> None:
        for name, value in table.items():
            here = (*parts, name)
            if here not in self.read:
                self.unknown(here, value)
            elif here in self.tables:
                # A key's value is its own business (a table given for a number is a type
                # problem, already reported); only tables of the schema hold more keys.
                self.unread(value, here)

    def unknown(self, parts: tuple[PathPart, ...], value: Any) -> None:
        is_table = isinstance(value, dict) or (
            isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
        )
        message_key = "config.problem." + ("unknown_section" if is_table else "unknown_key")
        name = str(parts[-1])
        suggestion = closest(name, self.schema.names_under(parts[:-1]))
        if suggestion is None:
            suggestion = self.schema.elsewhere(name)
        if suggestion is None:
            self.problem(parts, message_key)
        else:
            self.problem(parts, message_key + "_suggest", suggestion=suggestion)


def resolve(schema: Schema, doc: Mapping[str, Any], lines: Mapping[str, int], file: str,
            folder: Path) -> Resolved:
    """Check a parsed document against ``schema`` and convert its values.

    ``lines`` comes from :func:`kiosk.config.lines.key_lines` of the same text, ``file``
    names the file in problems and ``folder`` anchors relative paths.
    """
    return _Check(schema, doc, lines, file, folder).run()


def declared_keys(schema: Schema) -> Iterable[tuple[Section, Key]]:
    for section in schema.sections:
        for key in section.keys:
            yield section, key
