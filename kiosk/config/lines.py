"""Where each key of a TOML document is defined, because ``tomllib`` does not say.

:func:`key_lines` scans the source text of a document that ``tomllib`` has already accepted
and maps every dotted key path to the 1-based line that defines it. It understands table
headers, arrays of tables (entries are indexed, ``lockers[1].port``), dotted and quoted keys
and comments, and it skips over the insides of strings, multi-line strings and multi-line
arrays so that text in them is never taken for a key. Keys inside an inline table are not
listed; :func:`line_of` gives them the line of the key that holds the inline table.

Paths are written by :func:`join_path`, which the schema checker uses too, so the two always
agree on how a key is spelled.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_BARE_FULL = re.compile(r"[A-Za-z0-9_-]+\Z")

PathPart = str | int


def join_path(parts: Sequence[PathPart]) -> str:
    """``("circulation", "offline", "unknown_item")`` -> ``circulation.offline.unknown_item``.

    Integers are array indices (``lockers[0]``); a key that is not a TOML bare key is quoted.
    """
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        name = part if _BARE_FULL.match(part) else json.dumps(part, ensure_ascii=False)
        text += f".{name}" if text else name
    return text


def line_of(lines: Mapping[str, int], parts: Sequence[PathPart]) -> int | None:
    """The line of a key path, or of its closest enclosing key or table that has one.

    A key inside an inline table (``offline = { unknown_item = "x" }``) thus gets the line
    of ``offline``. None when not even the top-level name appears in the document.
    """
    for end in range(len(parts), 0, -1):
        found = lines.get(join_path(parts[:end]))
        if found is not None:
            return found
    return None


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[str, int] = {}
        self.implicit: set[str] = set()
        # Arrays of tables seen so far: resolved path -> number of entries.
        self.arrays: dict[tuple[PathPart, ...], int] = {}

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def advance(self, count: int = 1) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + count)
        self.pos += count

    def skip_blank(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            c = self.peek()
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                end = self.text.find("\n", self.pos)
                self.advance((end if end >= 0 else len(self.text)) - self.pos)
            else:
                return

    def string(self) -> str:
        """Skip a string of any kind starting here; return its source text."""
        start = self.pos
        quote = self.peek()
        if self.text.startswith(quote * 3, self.pos):
            end = self.text.find(quote * 3, self.pos + 3)
            if end < 0:
                end = len(self.text)
            # A closing delimiter may be followed by up to two more quotes of content.
            end += 3
            while self.text.startswith(quote, end):
                end += 1
            self.advance(end - self.pos)
            return self.text[start : self.pos]
        self.advance()
        while self.pos < len(self.text) and self.peek() != quote:
            self.advance(2 if quote == '"' and self.peek() == "\\" else 1)
        self.advance()
        return self.text[start : self.pos]

    def key(self) -> list[str]:
        """A possibly dotted key: ``a``, ``"a b"``, ``a . 'b' . c``."""
        parts = []
        while True:
            self.skip_blank(newlines=False)
            if self.peek() in "\"'":
                # Let tomllib decode the escapes, so quoted keys match tomllib's own keys.
                parts.append(tomllib.loads(f"k = {self.string()}")["k"])
            else:
                match = _BARE.match(self.text, self.pos)
                if match is None:
                    return parts
                parts.append(match.group())
                self.advance(match.end() - self.pos)
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return parts
            self.advance()

    def value(self) -> None:
        """Skip a value up to the end of its (last) line, whatever its brackets span."""
        depth = 0
        while self.pos < len(self.text):
            c = self.peek()
            if c in "\"'":
                self.string()
                continue
            if c == "#":
                self.skip_blank(newlines=False)
                continue
            if c == "\n" and depth == 0:
                return
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
            self.advance()

    def resolve(self, parts: Sequence[str]) -> list[PathPart]:
        """Insert the current entry's index after every array-of-tables prefix."""
        resolved: list[PathPart] = []
        for part in parts:
            resolved.append(part)
            count = self.arrays.get(tuple(resolved))
            if count:
                resolved.append(count - 1)
        return resolved

    def record(self, parts: Sequence[PathPart], line: int, implicit: bool = False) -> None:
        """Note where a path is defined; the first definition wins, except that a table's
        own header wins over a header or dotted key that only created it on the way."""
        path = join_path(parts)
        if path not in self.lines or (path in self.implicit and not implicit):
            self.lines[path] = line
            if implicit:
                self.implicit.add(path)
            else:
                self.implicit.discard(path)

    def header(self) -> list[PathPart]:
        line = self.line
        is_array = self.text.startswith("[[", self.pos)
        self.advance(2 if is_array else 1)
        names = self.key()
        self.skip_blank(newlines=False)
        self.advance(2 if is_array else 1)
        parent = self.resolve(names[:-1])
        for end in range(1, len(parent) + 1):
            self.record(parent[:end], line, implicit=True)
        if not is_array:
            table = [*parent, names[-1]]
            self.record(table, line)
            return table
        array = (*parent, names[-1])
        index = self.arrays.get(array, 0)
        self.arrays[array] = index + 1
        self.record(array, line)
        table = [*array, index]
        self.record(table, line)
        return table

    def scan(self) -> dict[str, int]:
        table: list[PathPart] = []
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return self.lines
            if self.peek() == "[":
                table = self.header()
                continue
            line = self.line
            names = self.key()
            if not names:  # not valid TOML; tomllib would have refused it
                self.value()
                continue
            # Every prefix of a dotted key defines a table on this line too.
            for end in range(1, len(names)):
                self.record([*table, *names[:end]], line, implicit=True)
            self.record([*table, *names], line)
            self.skip_blank(newlines=False)
            self.advance()  # the "="
            self.skip_blank(newlines=False)
            self.value()


def key_lines(text: str) -> dict[str, int]:
    """Dotted key path (as :func:`join_path` writes it) -> line where it is defined.

    Tables get the line of their header, or else of the first header or dotted key that
    creates them on the way (``[a.b]`` and ``a.b = 1`` both create ``a``).
    Meant for text that ``tomllib`` has parsed; for other text the result is a best effort.
    """
    return _Scanner(text).scan()
