"""What every ``kiosk`` subcommand gets: parsed arguments, the catalogue, output streams,
and lazily the settings and the cache."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from kiosk import config
from kiosk.config.settings import Settings
from kiosk.messages import Catalogue
from sync.db import Cache


class App:
    def __init__(
        self,
        args: argparse.Namespace,
        catalogue: Catalogue,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.args = args
        self.catalogue = catalogue
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._settings: Settings | None = None

    def t(self, key: str, /, **params: object) -> str:
        return self.catalogue.text(key, **params)

    def say(self, key: str, /, **params: object) -> None:
        print(self.t(key, **params), file=self.out)

    def warn(self, key: str, /, **params: object) -> None:
        print(self.t(key, **params), file=self.err)

    def note_route(self, via_daemon: bool, *, alongside: bool = False) -> None:
        """Say once, on stderr and only to people (never with ``--json``), whether this
        command goes through the running daemon or works on its own. ``alongside``: the
        command works on its own either way, and says only whether the daemon runs."""
        if self.json or getattr(self, "_route_said", False):
            return
        self._route_said = True
        if alongside:
            self.warn("cli.route.alongside" if via_daemon else "cli.route.idle")
        else:
            self.warn("cli.route.daemon" if via_daemon else "cli.route.direct")

    def line(self, text: str = "") -> None:
        print(text, file=self.out)

    @property
    def colour(self) -> bool:
        """Colour for a person at a terminal only: never into a pipe or a file, never with
        ``NO_COLOR`` set (https://no-color.org) or on a dumb terminal."""
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty()) and not os.environ.get("NO_COLOR") \
            and os.environ.get("TERM", "") != "dumb"

    def mark(self, ok: bool) -> str:
        """✔ or ✘, green or red on a terminal: what a technician looks for first."""
        sign = "✔" if ok else "✘"
        if not self.colour:
            return sign
        return f"\x1b[32m{sign}\x1b[0m" if ok else f"\x1b[1;31m{sign}\x1b[0m"

    def emit_json(self, obj: Any) -> None:
        json.dump(obj, self.out, ensure_ascii=False, indent=2, sort_keys=True, default=str)
        self.out.write("\n")

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def settings(self) -> Settings:
        if self._settings is None:
            path = getattr(self.args, "config", None)
            self._settings = config.load(Path(path) if path else None)
        return self._settings

    def db_path(self) -> Path:
        explicit = getattr(self.args, "db", None)
        return Path(explicit) if explicit else self.settings().database.path

    def open_cache(self, check_schema: bool = True) -> Cache:
        return Cache.open(self.db_path(), check_schema=check_schema)
