"""Configuration: one TOML file, typed and bounded, every error reported at once.

- :func:`load` gives the kiosk's :class:`Settings`, or raises :class:`ConfigInvalid`
  listing every :class:`Problem` (file, line, dotted key, catalogue message).
- :func:`check` gives the problems without raising, for ``kiosk config check``.
- The keys, their types, bounds and defaults, and the profiles are declared in
  :mod:`kiosk.config.sections`; ``docs/configuration.md`` describes them for people.
"""

from __future__ import annotations

from kiosk.config.loader import check, load, resolve_defaults, resolve_file
from kiosk.config.problems import ConfigInvalid, Problem, describe, format_problem
from kiosk.config.settings import Settings

__all__ = [
    "ConfigInvalid",
    "Problem",
    "Settings",
    "check",
    "describe",
    "format_problem",
    "load",
    "resolve_defaults",
    "resolve_file",
]
