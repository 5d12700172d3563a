"""Reading a config file: from bytes on disk to a checked :class:`Resolved` or Settings.

Nothing here raises for a bad file except :func:`load`, which raises
:class:`~kiosk.config.problems.ConfigInvalid`; a missing file, a file that is not UTF-8 and
a TOML syntax error are problems like any other.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from kiosk.config import sections
from kiosk.config.lines import key_lines
from kiosk.config.problems import ConfigInvalid, Problem, sorted_problems
from kiosk.config.schema import Resolved, Schema, resolve
from kiosk.config.settings import Settings

_WHERE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")


def _read(path: Path) -> tuple[str | None, list[Problem]]:
    """The file's text, or None and the one problem that stopped us reading it."""
    file = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, [Problem(file, None, "", "config.problem.no_file")]
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return None, [Problem(file, None, "", "config.problem.unreadable", {"reason": reason})]
    try:
        # utf-8-sig: a BOM left by a Windows editor is not worth a refusal.
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, [Problem(file, line, "", "config.problem.encoding")]


def _syntax_problem(file: str, text: str, error: tomllib.TOMLDecodeError) -> Problem:
    message = str(error)
    where = _WHERE.search(message)
    detail = message[: where.start()] if where else message
    if where and where.group(1):
        line, column = int(where.group(1)), int(where.group(2))
    else:
        # "at end of document": point at the last line that has anything on it.
        line, column = text.rstrip().count("\n") + 1, None
    params: dict[str, object] = {"detail": detail}
    if column is not None:
        params["column"] = column
    return Problem(file, line, "", "config.problem.syntax", params)


def resolve_file(path: Path, schema: Schema | None = None) -> Resolved:
    """Read and check one file against ``schema`` (the kiosk's by default).

    Every problem is in the result; when the file cannot be read or parsed there is exactly
    one, and ``values`` is empty.
    """
    schema = schema or sections.SCHEMA
    text, problems = _read(path)
    if text is not None:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            problems = [_syntax_problem(str(path), text, exc)]
        else:
            return resolve(schema, doc, key_lines(text), str(path), path.absolute().parent)
    return Resolved({}, set(), problems, schema.fallback_profile)


def resolve_defaults(schema: Schema | None = None) -> Resolved:
    """The values a kiosk has with no config file: the ``sim`` profile's defaults."""
    schema = schema or sections.SCHEMA
    resolved = resolve(schema, sections.SIM_DOCUMENT, {}, "", Path.cwd())
    # The simulated device's identity is a default too, not something a file said.
    resolved.given.clear()
    return resolved


def check(path: Path) -> list[Problem]:
    """Every problem of the file at ``path``, sorted by line; empty when it is valid."""
    return sorted_problems(resolve_file(path).problems)


def load(path: Path | None) -> Settings:
    """The kiosk's settings from the file at ``path``, or the ``sim`` defaults for None.

    Raises :class:`ConfigInvalid` (a ValueError) carrying every problem when the file is
    missing, unreadable, not TOML or not valid against the schema.
    """
    if path is None:
        return sections.build_settings(resolve_defaults().values, None)
    resolved = resolve_file(path)
    if resolved.problems:
        raise ConfigInvalid(str(path), resolved.problems)
    return sections.build_settings(resolved.values, path)
