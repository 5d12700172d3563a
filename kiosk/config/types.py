"""Value types of config keys: each checks one TOML value and turns it into a Python value.

A type's :meth:`ValueType.convert` either returns the converted value or raises
:class:`Invalid` with a catalogue key and parameters; it never prints and never stops the
check of other keys. ``name`` is the TOML type it expects (see ``config.type.*`` in the
catalogue), :meth:`ValueType.to_toml` and :meth:`ValueType.to_json` write a converted value
back for ``kiosk config show``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from collections.abc import Iterable
from decimal import Decimal
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from kiosk.messages import available


class Invalid(Exception):
    """A value does not fit its type; ``message_key`` and ``params`` say why."""

    def __init__(self, message_key: str, **params: Any) -> None:
        super().__init__(message_key)
        self.message_key = message_key
        self.params = params


def toml_type(value: object) -> str:
    """The TOML type name of a value that ``tomllib`` produced."""
    # bool before int: in Python a bool is an int, in TOML it is not.
    for kind, name in (
        (bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
        (dict, "table"), (list, "array"), (dt.datetime, "datetime"), (dt.date, "date"),
        (dt.time, "time"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def wrong_type(expected: str, value: object) -> Invalid:
    return Invalid("config.problem.type", expected=expected, found=toml_type(value))


def closest(value: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate a near-miss ``value`` most likely meant, ignoring case: the closest
    by similarity, else the only one that starts with it; None when there is no such one."""
    by_folded = {c.casefold(): c for c in candidates}
    folded = value.casefold()
    found = difflib.get_close_matches(folded, list(by_folded), n=1, cutoff=cutoff)
    if not found and folded:
        # A cut-short word ("lend" for "lend-and-flag") is a near miss too, if unambiguous.
        found = [c for c in by_folded if c.startswith(folded)]
    return by_folded[found[0]] if len(found) == 1 else None


class ValueType:
    """Base of all value types; subclasses override :meth:`convert` and may override the
    writers when the converted value does not print as TOML by itself."""

    name = "string"

    def convert(self, raw: object, folder: Path) -> Any:
        """Check ``raw`` (from tomllib) and convert it; ``folder`` holds the config file."""
        raise NotImplementedError

    def to_toml(self, value: Any) -> str:
        return json.dumps(self.to_json(value), ensure_ascii=False)

    def to_json(self, value: Any) -> Any:
        return value

    def _string(self, raw: object) -> str:
        if not isinstance(raw, str):
            raise wrong_type("string", raw)
        return raw


class Str(ValueType):
    """Text, optionally matching ``pattern`` in full; ``example`` shows a person a valid one."""

    def __init__(self, pattern: str | None = None, example: str = "") -> None:
        self.pattern = re.compile(pattern) if pattern else None
        self.example = example

    def convert(self, raw: object, folder: Path) -> str:
        text = self._string(raw)
        if self.pattern is not None and not self.pattern.fullmatch(text):
            raise Invalid(
                "config.problem.pattern",
                value=text, pattern=self.pattern.pattern, example=self.example,
            )
        return text


class Int(ValueType):
    """A whole number in ``[min, max]``; ``true`` is not 1 here."""

    name = "integer"

    def __init__(self, min: int | None = None, max: int | None = None) -> None:
        self.min, self.max = min, max

    def convert(self, raw: object, folder: Path) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise wrong_type(self.name, raw)
        _bounds(raw, self.min, self.max)
        return raw

    def to_toml(self, value: int) -> str:
        return str(value)


class Money(ValueType):
    """An amount in yuan in ``[min, max]`` with at most ``places`` decimals, written as an
    integer or a float; converted to an exact :class:`~decimal.Decimal`."""

    name = "number"

    def __init__(self, min: Decimal | str, max: Decimal | str, places: int = 2) -> None:
        self.min, self.max, self.places = Decimal(min), Decimal(max), places

    def convert(self, raw: object, folder: Path) -> Decimal:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise wrong_type(self.name, raw)
        # str() of a float is its shortest round-trip form, so 10.1 stays 10.1, not
        # 10.0999999999999996447286321199499070644378662109375.
        amount = Decimal(str(raw))
        if not amount.is_finite():
            raise Invalid("config.problem.not_finite", value=str(raw))
        _bounds(amount, self.min, self.max)
        exponent = amount.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -self.places:
            raise Invalid("config.problem.decimals", value=str(raw), places=self.places)
        return amount.quantize(Decimal(1).scaleb(-self.places))

    def to_toml(self, value: Decimal) -> str:
        return str(value)

    def to_json(self, value: Decimal) -> str:
        # A string keeps the amount exact for whoever reads the JSON.
        return str(value)


class IntList(ValueType):
    """A list of whole numbers, each in ``[min, max]`` (GPIO pins, for instance)."""

    name = "array"

    def __init__(self, min: int, max: int, *, min_items: int = 1, max_items: int = 64) -> None:
        self.item = Int(min, max)
        self.min_items, self.max_items = min_items, max_items

    def convert(self, raw: object, folder: Path) -> tuple[int, ...]:
        if not isinstance(raw, list):
            raise wrong_type(self.name, raw)
        _bounds(len(raw), self.min_items, self.max_items)
        return tuple(self.item.convert(value, folder) for value in raw)

    def to_toml(self, value: tuple[int, ...]) -> str:
        return "[" + ", ".join(str(v) for v in value) + "]"

    def to_json(self, value: tuple[int, ...]) -> list[int]:
        return list(value)


class StrList(ValueType):
    """A list of distinct texts, each matching ``item`` (van stops, for instance)."""

    name = "array"

    def __init__(self, item: Str, *, min_items: int = 0, max_items: int = 200) -> None:
        self.item = item
        self.min_items, self.max_items = min_items, max_items

    def convert(self, raw: object, folder: Path) -> tuple[str, ...]:
        if not isinstance(raw, list):
            raise wrong_type(self.name, raw)
        _bounds(len(raw), self.min_items, self.max_items)
        values = tuple(self.item.convert(value, folder).strip() for value in raw)
        seen: set[str] = set()
        for value in values:
            if not value:
                raise Invalid("config.problem.empty")
            if value in seen:
                raise Invalid("config.problem.duplicate", value=value)
            seen.add(value)
        return values

    def to_json(self, value: tuple[str, ...]) -> list[str]:
        return list(value)


class Bool(ValueType):
    name = "boolean"

    def convert(self, raw: object, folder: Path) -> bool:
        if not isinstance(raw, bool):
            raise wrong_type(self.name, raw)
        return raw

    def to_toml(self, value: bool) -> str:
        return "true" if value else "false"


class Choice(ValueType):
    """One of a fixed set of strings; given an :class:`~enum.Enum` (a StrEnum), converts to
    its member. A near miss (``return_then_lend``) is answered with the closest choice."""

    def __init__(self, choices: type[Enum] | Iterable[str]) -> None:
        if isinstance(choices, type) and issubclass(choices, Enum):
            self.enum: type[Enum] | None = choices
            self.choices = tuple(str(m.value) for m in choices)
        else:
            self.enum = None
            self.choices = tuple(choices)

    def convert(self, raw: object, folder: Path) -> Any:
        text = self._string(raw)
        if text not in self.choices:
            _not_one_of("config.problem.choice", text, self.choices)
        return self.enum(text) if self.enum else text

    def to_json(self, value: Any) -> str:
        return str(value.value if isinstance(value, Enum) else value)


class Timezone(ValueType):
    """An IANA time zone name that this machine's zoneinfo knows (``Asia/Shanghai``)."""

    def convert(self, raw: object, folder: Path) -> str:
        text = self._string(raw)
        try:
            ZoneInfo(text)
        # Besides "not found", zoneinfo raises ValueError for keys that are not relative
        # paths and IsADirectoryError for a region folder such as "Asia".
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # A stricter cutoff: among 600 zone names, "Asia" is loosely like many.
            _not_one_of("config.problem.timezone", text, _zones(), list_them=False, cutoff=0.8)
        return text


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


class Language(ValueType):
    """A language that the message catalogue has (``zh-CN``, ``en``)."""

    def convert(self, raw: object, folder: Path) -> str:
        text = self._string(raw)
        if text not in available():
            _not_one_of("config.problem.language", text, sorted(available()))
        return text


class PathType(ValueType):
    """A file path; a relative one is taken from the folder of the config file, so the
    meaning of the file does not depend on where the command was started."""

    def convert(self, raw: object, folder: Path) -> Path:
        text = self._string(raw)
        if not text.strip():
            raise Invalid("config.problem.empty")
        return folder / text

    def to_json(self, value: Path) -> str:
        return str(value)


class OptionalPath(PathType):
    """A path, or ``""`` for none (the value is then ``None``)."""

    def convert(self, raw: object, folder: Path) -> Path | None:
        text = self._string(raw)
        return folder / text if text.strip() else None

    def to_json(self, value: Path | None) -> str:
        return "" if value is None else str(value)


def _bounds(value: Any, low: Any, high: Any) -> None:
    # Integers stay numbers in the problem's params; amounts become exact strings ("10.50").
    def plain(number: Any) -> Any:
        return number if isinstance(number, int) else str(number)

    if low is not None and value < low:
        raise Invalid("config.problem.too_small", value=plain(value), min=plain(low))
    if high is not None and value > high:
        raise Invalid("config.problem.too_large", value=plain(value), max=plain(high))


def _not_one_of(key: str, value: str, choices: Iterable[str], list_them: bool = True,
                cutoff: float = 0.6) -> None:
    """Raise the "not one of" problem, with a suggestion when there is a close one."""
    choices = list(choices)
    suggestion = closest(value, choices, cutoff)
    params: dict[str, Any] = {"value": value}
    if list_them:
        params["choices"] = choices
    if suggestion is not None:
        raise Invalid(f"{key}_suggest", suggestion=suggestion, **params)
    raise Invalid(key, **params)
