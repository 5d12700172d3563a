"""The county page of the reference hub: every service point's health, its open alerts, and
charts and a CSV of the daily figures, for county library staff.

Plain HTML and CSS rendered here, charts as inline SVG drawn by :func:`bar_chart`: no
script, no build step, nothing fetched from the internet. Texts come from the hub's own small
catalogue (``county_messages/<lang>.toml``, Chinese first, English beside it); the hub cannot
use the kiosk's catalogue (layering: ``sync`` never imports ``kiosk``).

Health of a service point (:func:`classify`):

- **silent**: no heartbeat for over ``HubConfig.silent_after_s`` (or never one);
- **degraded**: heartbeats arrive, but a device is offline, an alert is open, or the kiosk
  says it is not ``ready``;
- **alive**: otherwise.
"""

from __future__ import annotations

import csv
import html
import io
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sync.stats import COLUMNS

LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
CHART_METRICS = ("loans", "returns", "visits")
CSV_METRICS = (*COLUMNS, "readers")
COLOURS = {"loans": "#1f6fb2", "returns": "#e08a00", "visits": "#3a9a4a"}
_HERE = Path(__file__).resolve().parent / "county_messages"


# -- texts -------------------------------------------------------------------------------


@cache
def messages(lang: str) -> dict[str, str]:
    """The flat catalogue of ``lang`` (``section.key`` -> text)."""
    with (_HERE / f"{lang}.toml").open("rb") as f:
        data = tomllib.load(f)
    return {f"{section}.{key}": text for section, texts in data.items()
            for key, text in texts.items()}


def pick_lang(asked: str | None) -> str:
    return asked if asked in LANGS else DEFAULT_LANG


class Texts:
    def __init__(self, lang: str) -> None:
        self.lang = pick_lang(lang)
        self._texts = messages(self.lang)

    def __call__(self, key: str, **params: Any) -> str:
        text = self._texts.get(key) or messages(DEFAULT_LANG).get(key) or key
        return text.format(**params) if params else text


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# -- health --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    state: str  # alive, degraded, silent
    alerts: tuple[dict[str, str], ...]


def alerts_of(body: dict[str, Any] | None) -> tuple[dict[str, str], ...]:
    """The open alerts a heartbeat reports, each ``{code, device, detail}``; a device the
    heartbeat lists as offline is an alert even when the kiosk did not list it."""
    if not body:
        return ()
    out: list[dict[str, str]] = []
    for alert in body.get("alerts") or ():
        if isinstance(alert, dict) and alert.get("code"):
            out.append({"code": str(alert["code"]), "device": str(alert.get("device") or ""),
                        "detail": str(alert.get("detail") or "")})
    listed = {(a["code"], a["device"]) for a in out}
    for name, dev in (body.get("devices") or {}).items():
        online = dev.get("online") if isinstance(dev, dict) else dev
        if online is False and ("device_offline", name) not in listed:
            detail = dev.get("detail", "") if isinstance(dev, dict) else ""
            out.append({"code": "device_offline", "device": name, "detail": str(detail)})
    return tuple(out)


def classify(received_at_ns: int | None, body: dict[str, Any] | None, now_ns: int,
             silent_after_s: float) -> Health:
    """The health of one service point from its last heartbeat (see the module's doc)."""
    if received_at_ns is None or body is None or \
            now_ns - received_at_ns > silent_after_s * 1e9:
        return Health("silent", alerts_of(body))
    alerts = alerts_of(body)
    state = body.get("state")
    if alerts or (state is not None and state != "ready"):
        return Health("degraded", alerts)
    return Health("alive", alerts)


# -- figures -------------------------------------------------------------------------------


def days_between(first: date, last: date) -> list[str]:
    n = (last - first).days
    return [(first + timedelta(days=i)).isoformat() for i in range(n + 1)]


def parse_range(q_from: str | None, q_to: str | None, today: date, default_days: int
                ) -> tuple[date, date]:
    """The ``from``/``to`` query dates (inclusive); missing or bad ones take the default
    window ending today; at most 366 days."""
    def parse(value: str | None) -> date | None:
        try:
            return date.fromisoformat(value) if value else None
        except ValueError:
            return None

    last = parse(q_to) or today
    first = parse(q_from) or last - timedelta(days=default_days - 1)
    if first > last:
        first, last = last, first
    if (last - first).days > 365:
        first = last - timedelta(days=365)
    return first, last


def table(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], dict[str, int]]:
    """Figures by (day, device, branch, stop): {metric: value}."""
    out: dict[tuple[str, str, str, str], dict[str, int]] = {}
    for r in rows:
        key = (r["day"], r["device_id"], r["branch"], r["stop"])
        out.setdefault(key, {})[r["metric"]] = r["value"]
    return out


def to_csv(rows: list[dict[str, Any]], tr: Texts) -> bytes:
    """The figures as CSV: one line per day, device, branch and stop, a column per metric;
    UTF-8 with a byte-order mark, so Excel opens Chinese names right; CRLF line ends."""
    names = {r["branch"]: r.get("branch_name", "") for r in rows}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([tr("csv.day"), tr("csv.device"), tr("csv.branch"), tr("csv.branch_name"),
                     tr("csv.stop"), *(tr(f"metric.{m}") for m in CSV_METRICS)])
    for (day, device, branch, stop), figures in sorted(table(rows).items()):
        writer.writerow([day, device, branch, names.get(branch, ""), stop,
                         *(figures.get(m, 0) for m in CSV_METRICS)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# -- charts ----------------------------------------------------------------------------------


def bar_chart(days: list[str], series: dict[str, dict[str, int]], tr: Texts,
              label: str) -> str:
    """Grouped bars, one group per day, one bar per metric of ``series``
    ({metric: {day: value}}), as an inline SVG with a title on every bar."""
    width, height, left, bottom, top = 720, 200, 36, 34, 22
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max([1, *(v for per_day in series.values() for v in per_day.values())])
    group = plot_w / max(1, len(days))
    bar = max(1.0, (group - 4) / max(1, len(series)))
    parts = [f'<svg class="chart" role="img" aria-label="{_e(label)}" viewBox="0 0 {width} '
             f'{height}" width="100%" preserveAspectRatio="xMinYMin meet"'
             ' xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}"'
             ' stroke="#888"/>',
             f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" class="axis">{peak}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" class="axis">0</text>']
    step = max(1, len(days) // 10)
    for i, day in enumerate(days):
        x0 = left + i * group + 2
        for j, (metric, per_day) in enumerate(series.items()):
            value = per_day.get(day, 0)
            h = plot_h * value / peak
            parts.append(
                f'<rect class="bar" data-day="{day}" data-metric="{metric}" '
                f'data-value="{value}" x="{x0 + j * bar:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{COLOURS.get(metric, "#666")}">'
                f'<title>{_e(day)} {_e(tr(f"metric.{metric}"))}: {value}</title></rect>')
        if i % step == 0:
            parts.append(f'<text x="{x0 + group / 2 - 2:.1f}" y="{height - bottom + 14}"'
                         f' text-anchor="middle" class="axis">{day[5:]}</text>')
    x = left
    for metric in series:
        parts.append(f'<rect x="{x}" y="4" width="10" height="10" '
                     f'fill="{COLOURS.get(metric, "#666")}"/><text x="{x + 14}" y="13" '
                     f'class="legend">{_e(tr(f"metric.{metric}"))}</text>')
        x += 110
    parts.append("</svg>")
    return "".join(parts)


def _series(figures: dict[tuple[str, str, str, str], dict[str, int]],
            match: Any) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {m: {} for m in CHART_METRICS}
    for (day, device, branch, stop), metrics in figures.items():
        if match(device, branch, stop):
            for m in CHART_METRICS:
                out[m][day] = out[m].get(day, 0) + metrics.get(m, 0)
    return out


# -- the page --------------------------------------------------------------------------------

STYLE = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:0;color:#222;
background:#f6f6f3}
header{display:flex;justify-content:space-between;align-items:center;padding:.6em 1.2em;
background:#23415f;color:#fff}
header h1{font-size:1.3em;margin:0}header a,header button{color:#fff;margin-left:1em;
font-size:1em}header button{background:none;border:1px solid #fff;border-radius:4px;
cursor:pointer}main{padding:1em 1.2em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #ddd;padding:.4em .5em;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}.badge{padding:.1em .6em;border-radius:1em;color:#fff;
white-space:nowrap}.alive{background:#2e7d32}.degraded{background:#b26a00}
.silent{background:#8e2424}ul.alerts{margin:0;padding-left:1.1em;color:#8e2424}
.paper-low{color:#b26a00;font-weight:600}.paper-out{color:#8e2424;font-weight:700}
figure{background:#fff;margin:1em 0;padding:.6em}figcaption{font-weight:600}
.axis,.legend{font-size:11px;fill:#444}.muted{color:#777}
form.range{margin:.6em 0}form.range input{margin:0 .4em}
"""


def _ago(tr: Texts, seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 120:
        return tr("fleet.ago_s", n=s)
    if s < 7200:
        return tr("fleet.ago_min", n=s // 60)
    if s < 172800:
        return tr("fleet.ago_h", n=s // 3600)
    return tr("fleet.ago_d", n=s // 86400)


def _bytes(n: Any) -> str:
    if not isinstance(n, int):
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n} {unit}"
        n //= 1024
    return f"{n} TB"


def _local(iso: str | None, tz: ZoneInfo) -> str | None:
    if not iso:
        return None
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _alert_text(tr: Texts, alert: dict[str, str]) -> str:
    key = f"alert.{alert['code']}"
    if key in messages(tr.lang):
        return tr(key, device=alert["device"], code=alert["code"])
    return tr("alert.other", device=alert["device"], code=alert["code"])


def fleet_rows(fleet: list[dict[str, Any]], now_ns: int, silent_after_s: float
               ) -> list[tuple[dict[str, Any], Health]]:
    return [(entry, classify(entry["received_at_ns"], entry["body"], now_ns, silent_after_s))
            for entry in fleet]


def render_page(*, fleet: list[dict[str, Any]], figures: list[dict[str, Any]],
                branch_names: dict[str, str], lang: str, now_ns: int, tz: ZoneInfo,
                silent_after_s: float, first: date, last: date) -> str:
    tr = Texts(lang)
    other = "en" if tr.lang == "zh-CN" else "zh-CN"
    span = {"from": first.isoformat(), "to": last.isoformat()}
    rows = fleet_rows(fleet, now_ns, silent_after_s)
    counts = {h: sum(1 for _, health in rows if health.state == h)
              for h in ("alive", "degraded", "silent")}
    now_local = datetime.fromtimestamp(now_ns / 1e9, tz).strftime("%Y-%m-%d %H:%M:%S")
    out = [f'<!doctype html><html lang="{tr.lang}"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<meta http-equiv="refresh" content="60">',
           f"<title>{_e(tr('page.title'))}</title><style>{STYLE}</style></head><body>",
           f"<header><h1>{_e(tr('page.title'))}</h1><nav>",
           f'<a id="lang-switch" lang="{other}" '
           f'href="/county?{_e(urlencode({"lang": other, **span}))}">'
           f"{_e(tr('page.lang_switch'))}</a>",
           '<form method="post" action="/county/logout" style="display:inline">'
           f'<button type="submit" id="logout">{_e(tr("page.logout"))}</button></form>'
           "</nav></header><main>",
           f'<p class="muted" id="updated">{_e(tr("page.updated", time=now_local))}</p>',
           f'<section id="fleet"><h2>{_e(tr("fleet.heading"))}</h2>',
           f'<p id="summary">{_e(tr("fleet.summary", total=len(rows), **counts))}</p>']
    if not rows:
        out.append(f"<p>{_e(tr('page.no_devices'))}</p>")
    else:
        heads = ("device", "health", "queue", "last_sync", "last_heartbeat", "paper", "stop",
                 "alerts", "version", "clock", "disk")
        out.append("<table><thead><tr>" + "".join(
            f"<th>{_e(tr(f'fleet.{h}'))}</th>" for h in heads) + "</tr></thead><tbody>")
        for entry, health in rows:
            out.append(_fleet_row(entry, health, tr, now_ns, tz, branch_names))
        out.append("</tbody></table>")
    out.append("</section>")
    out.append(_charts(figures, tr, first, last, branch_names, span))
    out.append("</main></body></html>")
    return "".join(out)


def _fleet_row(entry: dict[str, Any], health: Health, tr: Texts, now_ns: int, tz: ZoneInfo,
               branch_names: dict[str, str]) -> str:
    body = entry["body"] or {}
    device = entry["device_id"]
    branch = body.get("branch") or ""
    name = branch_names.get(branch, "")
    paper = (body.get("printer") or {}).get("paper")
    paper_cell = (f'<span class="paper-{_e(paper)}">{_e(tr(f"paper.{paper}"))}</span>'
                  if paper in ("ok", "low", "out", "unknown") else "-")
    alerts = "".join(f'<li data-alert="{_e(a["code"])}" data-device="{_e(a["device"])}">'
                     f"{_e(_alert_text(tr, a))}</li>" for a in health.alerts)
    received = entry["received_at_ns"]
    beat = tr("fleet.never") if received is None else _ago(tr, (now_ns - received) / 1e9)
    synced = _local(body.get("last_sync_at"), tz) or tr("fleet.never")
    offset = body.get("clock_offset_ns")
    clock = "-" if not isinstance(offset, int) else tr("fleet.seconds",
                                                     n=f"{offset / 1e9:+.1f}")
    versions = body.get("versions") or {}
    version = body.get("version") or versions.get("software") or "-"
    if versions.get("schema") is not None:
        version = f"{version} / {versions['schema']}"
    cells = [
        f"<strong>{_e(device)}</strong>" + (f"<br>{_e(name)}" if name else ""),
        f'<span class="badge {health.state}">{_e(tr(f"health.{health.state}"))}</span>',
        _e(body.get("queue_depth", "-")),
        _e(synced), _e(beat), paper_cell, _e(body.get("stop") or "-"),
        f'<ul class="alerts">{alerts}</ul>' if alerts else
        f'<span class="muted">{_e(tr("fleet.none"))}</span>',
        _e(version), _e(clock), _e(_bytes(body.get("disk_free_bytes"))),
    ]
    cls = ("device", "health", "queue", "last-sync", "last-heartbeat", "paper", "stop",
           "alerts", "version", "clock", "disk")
    return (f'<tr data-device="{_e(device)}" data-health="{health.state}">'
            + "".join(f'<td class="{c}">{v}</td>' for c, v in zip(cls, cells, strict=True))
            + "</tr>")


def _charts(figures: list[dict[str, Any]], tr: Texts, first: date, last: date,
            branch_names: dict[str, str], span: dict[str, str]) -> str:
    days = days_between(first, last)
    by_key = table(figures)
    out = [f'<section id="charts"><h2>{_e(tr("charts.heading"))}</h2>',
           '<form class="range" method="get" action="/county">',
           f'<label>{_e(tr("charts.from"))}<input type="date" name="from" '
           f'value="{span["from"]}"></label>',
           f'<label>{_e(tr("charts.to"))}<input type="date" name="to" value="{span["to"]}">'
           f'</label><input type="hidden" name="lang" value="{tr.lang}">',
           f'<button type="submit">{_e(tr("charts.show"))}</button> ',
           f'<a id="csv" href="/county/stats.csv?{_e(urlencode({**span, "lang": tr.lang}))}"'
           f' download>{_e(tr("charts.csv"))}</a></form>']
    if not by_key:
        out.append(f'<p id="no-data">{_e(tr("charts.no_data"))}</p></section>')
        return "".join(out)
    out.append(f'<h3>{_e(tr("charts.per_device"))}</h3>')
    for device in sorted({k[1] for k in by_key}):
        series = _series(by_key, lambda d, b, s, want=device: d == want)
        branches = sorted({k[2] for k in by_key if k[1] == device})
        names = "、".join(branch_names.get(b, b) for b in branches)
        out.append(_figure("device", device, f"{device} {names}", series, days, tr))
    stops = sorted({(k[2], k[3]) for k in by_key if k[3]})
    if stops:
        out.append(f'<h3>{_e(tr("charts.per_stop"))}</h3>')
        for branch, stop in stops:
            series = _series(by_key, lambda d, b, s, want=(branch, stop): (b, s) == want)
            label = f"{stop} ({branch_names.get(branch, branch)})"
            out.append(_figure("stop", stop, label, series, days, tr))
    out.append("</section>")
    return "".join(out)


def _figure(kind: str, key: str, label: str, series: dict[str, dict[str, int]],
            days: list[str], tr: Texts) -> str:
    totals = {m: sum(series[m].values()) for m in CHART_METRICS}
    return (f'<figure data-{kind}="{_e(key)}"><figcaption>{_e(label)} '
            f'<span class="muted">{_e(tr("charts.total", **totals))}</span></figcaption>'
            f"{bar_chart(days, series, tr, label)}</figure>")


def login_page(lang: str, *, failed: bool = False) -> str:
    tr = Texts(lang)
    other = "en" if tr.lang == "zh-CN" else "zh-CN"
    error = f'<p id="login-error" role="alert">{_e(tr("login.bad_token"))}</p>' if failed \
        else ""
    return (f'<!doctype html><html lang="{tr.lang}"><head><meta charset="utf-8">'
            f"<title>{_e(tr('login.title'))}</title><style>{STYLE}"
            "form.login{background:#fff;padding:1em;max-width:28em}"
            "form.login input{width:100%;margin:.4em 0 .8em;font-size:1em}</style></head>"
            f"<body><header><h1>{_e(tr('login.title'))}</h1><nav>"
            f'<a id="lang-switch" href="/county/login?lang={other}">'
            f"{_e(tr('page.lang_switch'))}</a></nav></header><main>{error}"
            '<form class="login" method="post" action="/county/login">'
            f'<label for="token">{_e(tr("login.token"))}</label>'
            '<input id="token" name="token" type="password" autocomplete="current-password"'
            ' required autofocus>'
            f'<input type="hidden" name="lang" value="{tr.lang}">'
            f'<button type="submit" id="sign-in">{_e(tr("login.submit"))}</button>'
            f'<p class="muted">{_e(tr("login.hint"))}</p></form></main></body></html>')
