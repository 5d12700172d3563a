"""``kiosk stats``: the service figures a county reports, per day and van stop: visits
(entries at the door), loans, returns, renewals, hold pickups, new cards, refused attempts,
active readers (distinct patrons served: :mod:`sync.stats`), and the patrons' satisfaction
ratings (1-5), from the statistics the kiosk keeps (``daily_stats``). ``--by stop`` gives one
line per van stop over the whole period instead.

From the daemon when it runs (it owns the database), else from the database itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from kiosk import exitcodes
from kiosk.app import App
from kiosk.control_client import daemon_for
from sync.stats import COLUMNS, report


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("stats", help=t("cli.help.stats"), description=t("cli.help.stats"),
                       epilog=t("cli.example.stats"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=30, metavar="N", help=t("cli.opt.stats_days"))
    p.add_argument("--by", choices=("day", "stop"), default="day", help=t("cli.opt.stats_by"))
    p.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    p.set_defaults(handler=_stats)


def gather(app: App, since: str, by: str = "day") -> dict[str, Any]:
    client = daemon_for(app)
    if client is not None:
        with client:
            return client.request("stats", since=since, by=by)
    tz = app.settings().identity().timezone
    with app.open_cache() as cache, cache.snapshot() as conn:
        return report(conn, since, by=by, tz=tz)


def _stats(app: App) -> int:
    if app.args.days < 1:
        app.warn("cli.stats.bad_days")
        return exitcodes.USAGE
    today = datetime.now(app.settings().identity().timezone).date()  # the kiosk's day
    since = (today - timedelta(days=app.args.days - 1)).isoformat()
    by = getattr(app.args, "by", "day")
    data = gather(app, since, by)
    if app.json:
        app.emit_json(data)
        return exitcodes.OK
    rows = data["days"] if by == "day" else data["stops"]
    if not rows:
        app.say("cli.stats.none", since=since)
        return exitcodes.OK
    columns = (*COLUMNS, "readers")
    no_stop = app.t("cli.stats.no_stop")
    # The stop column only where there is a van stop to show (a fixed branch has none).
    show_stop = by == "stop" or any(row.get("stop") for row in rows)
    lead = ([app.t("cli.stats.day")] if by == "day" else
            [app.t("cli.stats.stop"), app.t("cli.stats.served")])
    if by == "day" and show_stop:
        lead.append(app.t("cli.stats.stop"))
    heads = [*lead, *(app.t(f"cli.stats.{c}") for c in columns),
             app.t("cli.stats.satisfaction")]
    table = []
    for row in rows:
        first = ([row["day"], *([row.get("stop") or no_stop] if show_stop else [])]
                 if by == "day" else [row.get("stop") or no_stop, str(row["days"])])
        table.append([*first, *(str(row[c]) for c in columns), _score(row)])
    table.append([app.t("cli.stats.total"), *([""] * (len(lead) - 1)),
                  *(str(data["totals"][c]) for c in columns), _score(data["totals"])])
    widths = [max(_width(cell) for cell in column) for column in zip(heads, *table,
                                                                      strict=True)]
    for cells in (heads, *table):
        app.line("  ".join(_pad(cell, w) for cell, w in zip(cells, widths, strict=True))
                 .rstrip())
    return exitcodes.OK


def _score(figures: dict[str, Any]) -> str:
    if figures["satisfaction"] is None:
        return "-"
    return f"{figures['satisfaction']:.2f} ({figures['ratings']})"


def _width(text: str) -> int:
    """Columns on a terminal: a CJK character takes two."""
    return sum(2 if ord(ch) >= 0x1100 and not 0xFF61 <= ord(ch) <= 0xFFDC else 1
               for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
