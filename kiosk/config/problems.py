"""What is wrong with a config file, as data a person can be shown in any catalogue language.

A :class:`Problem` names the file, the line (when there is one), the dotted key and a
catalogue key with its parameters; :func:`describe` renders it. :class:`ConfigInvalid` is
what :func:`kiosk.config.load` raises and carries every problem found, not just the first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kiosk.messages import Catalogue

Translate = Callable[..., str]

# Parameters holding a TOML type name ("integer", "table", ...); they are shown through
# the catalogue as ``config.type.<name>`` so that the type reads in the user's language.
TYPE_PARAMS = ("expected", "found")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config file.

    ``line`` is 1-based, or None when the problem has no place in the file (the file is
    missing, or a required key's whole section is absent). ``key`` is the dotted path of the
    setting (``circulation.offline.unknown_item``), empty for file-level problems.
    ``params`` are plain JSON values; ``expected``/``found`` are TOML type names and list
    values are shown joined by commas (see :func:`describe`).
    """

    file: str
    line: int | None
    key: str
    message_key: str
    # Left out of the hash (a dict has none) so problems can still go in a set.
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def sort_key(self) -> tuple[int, str]:
        """File-level problems first, then by line, then by key."""
        return (self.line or 0, self.key)


def describe(problem: Problem, t: Translate) -> str:
    """The problem's message alone, in the language of ``t`` (a ``Catalogue.text``)."""
    params: dict[str, object] = {}
    for name, value in problem.params.items():
        if name in TYPE_PARAMS:
            value = t(f"config.type.{value}")
        elif isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        params[name] = value
    return t(problem.message_key, **params)


def format_problem(problem: Problem, t: Translate) -> str:
    """``FILE:LINE: key: message``, the form compilers use, so editors can jump to it.

    The line part is left out when there is no line, the key part when there is no key.
    """
    where = problem.file if problem.line is None else f"{problem.file}:{problem.line}"
    key = f" {problem.key}:" if problem.key else ""
    return f"{where}:{key} {describe(problem, t)}"


def sorted_problems(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=Problem.sort_key)


class ConfigInvalid(ValueError):
    """The config file cannot be used; ``problems`` lists everything wrong with it.

    Like the cache's errors it carries ``message_key`` and ``params`` for a one-line
    summary; :meth:`report` gives the full text for a person. ``str()`` is English, for logs.
    """

    message_key = "config.invalid"

    def __init__(self, file: str, problems: Iterable[Problem]) -> None:
        self.file = file
        self.problems = sorted_problems(problems)
        self.params = {"file": file, "count": len(self.problems)}
        super().__init__(file, self.problems)

    def report(self, t: Translate) -> list[str]:
        """A heading line followed by one line per problem, in the language of ``t``."""
        return [t(self.message_key, **self.params)] + [
            format_problem(p, t) for p in self.problems
        ]

    def __str__(self) -> str:
        return "\n".join(self.report(Catalogue("en").text))
