"""Checking request bodies against docs/hub-api.yaml before anything is stored.

Each check collects every problem (JSON path and what is wrong) and raises one
:class:`~sync.hub.errors.ValidationFailed` listing them in ``details.problems``, so a device
developer sees all of them at once. A batch of more events than the hub takes is
:class:`~sync.hub.errors.PayloadTooLarge`: the client should split it, not fix it.
"""

from __future__ import annotations

from typing import Any

from sync.hub.errors import PayloadTooLarge, ValidationFailed

KINDS = ("checkout", "checkin", "renew", "pickup", "patron_registered", "staff_action")
MAX_STOP = 64
MAX_STATS_DAYS = 400
MAX_FIGURES_PER_DAY = 5000
PAPER = ("ok", "low", "out", "unknown")


class _Problems:
    def __init__(self) -> None:
        self.found: list[dict[str, str]] = []

    def add(self, path: str, problem: str) -> None:
        if len(self.found) < 100:
            self.found.append({"path": path, "problem": problem})

    def raise_if_any(self, what: str) -> None:
        if self.found:
            raise ValidationFailed(f"{what} does not match the API schema",
                                   details={"problems": self.found})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(p: _Problems, obj: dict, path: str, key: str, *, required: bool = True,
         minimum: int | None = None) -> None:
    if key not in obj:
        if required:
            p.add(f"{path}.{key}", "required")
        return
    v = obj[key]
    if not _is_int(v):
        p.add(f"{path}.{key}", "must be an integer")
    elif minimum is not None and v < minimum:
        p.add(f"{path}.{key}", f"must be at least {minimum}")


def _str(p: _Problems, obj: dict, path: str, key: str, *, required: bool = True,
         min_len: int = 0, max_len: int | None = None) -> None:
    if key not in obj:
        if required:
            p.add(f"{path}.{key}", "required")
        return
    v = obj[key]
    if not isinstance(v, str):
        p.add(f"{path}.{key}", "must be a string")
    elif len(v) < min_len or (max_len is not None and len(v) > max_len):
        p.add(f"{path}.{key}", f"length must be {min_len}..{max_len or ''}")


def _anchors(p: _Problems, obj: dict, path: str) -> None:
    anchors = obj.get("anchors")
    if anchors is None:
        return
    if not isinstance(anchors, list):
        p.add(f"{path}.anchors", "must be an array")
        return
    for i, a in enumerate(anchors):
        where = f"{path}.anchors[{i}]"
        if not isinstance(a, dict):
            p.add(where, "must be an object")
            continue
        _str(p, a, where, "boot_id")
        _int(p, a, where, "mono_ns")
        _int(p, a, where, "hub_time_ns")
        _int(p, a, where, "rtt_ns", required=False, minimum=0)


def _object(body: Any, what: str) -> dict:
    if not isinstance(body, dict):
        raise ValidationFailed(f"{what} must be a JSON object",
                               details={"problems": [{"path": "$", "problem": "not an object"}]})
    return body


def event_batch(body: Any, device_id: str, max_events: int) -> dict:
    """An ``EventBatch`` for ``device_id``, checked; returns it."""
    batch = _object(body, "the batch")
    p = _Problems()
    if batch.get("device_id") != device_id:
        p.add("$.device_id", "must equal the device id of the path")
    events = batch.get("events")
    if not isinstance(events, list) or not events:
        p.add("$.events", "must be a non-empty array")
        p.raise_if_any("the batch")
        return batch
    if len(events) > max_events:
        raise PayloadTooLarge(f"{len(events)} events in one batch; at most {max_events}",
                              details={"max_events": max_events, "events": len(events)})
    for i, ev in enumerate(events):
        where = f"$.events[{i}]"
        if not isinstance(ev, dict):
            p.add(where, "must be an object")
            continue
        _str(p, ev, where, "txn_id", min_len=16, max_len=64)
        _int(p, ev, where, "seq", minimum=1)
        if ev.get("kind") not in KINDS:
            p.add(f"{where}.kind", f"must be one of {', '.join(KINDS)}")
        _str(p, ev, where, "boot_id")
        _int(p, ev, where, "mono_ns", minimum=0)
        _int(p, ev, where, "wall_ns")
        if not isinstance(ev.get("clock_synced"), bool):
            p.add(f"{where}.clock_synced", "must be a boolean")
        _int(p, ev, where, "hlc", minimum=0)
        if ev.get("stop") is not None:
            _str(p, ev, where, "stop", min_len=1, max_len=MAX_STOP)
        if not isinstance(ev.get("payload"), dict):
            p.add(f"{where}.payload", "must be an object")
        elif ev.get("kind") == "patron_registered":
            _registration(p, ev["payload"], f"{where}.payload")
    _anchors(p, batch, "$")
    p.raise_if_any("the batch")
    return batch


# Personal numbers travel only sealed for the county (sync.personal); a payload carrying
# one in plain text is refused before it is stored, so it never reaches the hub's tables.
_PLAIN_PERSONAL = ("id_number", "phone", "address")


def _registration(p: _Problems, payload: dict, path: str) -> None:
    for key in _PLAIN_PERSONAL:
        if key in payload:
            p.add(f"{path}.{key}", "personal data must be sent sealed (id_sealed, phone_sealed,"
                  " address_sealed), never in plain text")
    id_hash = payload.get("id_hash")
    if id_hash is not None and not (isinstance(id_hash, str) and len(id_hash) == 64
                                    and all(c in "0123456789abcdef" for c in id_hash)):
        p.add(f"{path}.id_hash", "must be 64 lower-case hex digits (HMAC-SHA256)")


def heartbeat(body: Any, device_id: str) -> dict:
    hb = _object(body, "the heartbeat")
    p = _Problems()
    if hb.get("device_id") != device_id:
        p.add("$.device_id", "must equal the device id of the path")
    _int(p, hb, "$", "sent_at_ns")
    for key in ("version", "state", "last_sync_at", "branch"):
        if hb.get(key) is not None:
            _str(p, hb, "$", key, max_len=64)
    if hb.get("stop") is not None:
        _str(p, hb, "$", "stop", min_len=1, max_len=MAX_STOP)
    _int(p, hb, "$", "queue_depth", required=False, minimum=0)
    _int(p, hb, "$", "clock_offset_ns", required=False)
    _int(p, hb, "$", "disk_free_bytes", required=False, minimum=0)
    for key in ("devices", "counters", "versions", "printer"):
        if key in hb and not isinstance(hb[key], dict):
            p.add(f"$.{key}", "must be an object")
    if isinstance(hb.get("devices"), dict):
        for name, dev in hb["devices"].items():
            # A bare boolean is the older shape (online or not).
            if not isinstance(dev, bool | dict):
                p.add(f"$.devices.{name}", "must be an object")
            elif isinstance(dev, dict) and not isinstance(dev.get("online"), bool):
                p.add(f"$.devices.{name}.online", "must be a boolean")
    if isinstance(hb.get("printer"), dict) and "paper" in hb["printer"] and \
            hb["printer"]["paper"] not in PAPER:
        p.add("$.printer.paper", f"must be one of {', '.join(PAPER)}")
    if "alerts" in hb:
        if not isinstance(hb["alerts"], list):
            p.add("$.alerts", "must be an array")
        else:
            for i, alert in enumerate(hb["alerts"][:100]):
                where = f"$.alerts[{i}]"
                if not isinstance(alert, dict):
                    p.add(where, "must be an object")
                    continue
                _str(p, alert, where, "code", min_len=1, max_len=64)
                _str(p, alert, where, "device", required=False, max_len=64)
                _str(p, alert, where, "detail", required=False, max_len=500)
    if "clock_synced" in hb and not isinstance(hb["clock_synced"], bool):
        p.add("$.clock_synced", "must be a boolean")
    _anchors(p, hb, "$")
    p.raise_if_any("the heartbeat")
    return hb


def daily_stats(body: Any, device_id: str) -> list[tuple[str, list[dict]]]:
    """A ``DailyStats`` body for ``device_id``, checked: [(day, figures)]."""
    obj = _object(body, "the figures")
    p = _Problems()
    if obj.get("device_id") != device_id:
        p.add("$.device_id", "must equal the device id of the path")
    days = obj.get("days")
    if not isinstance(days, list):
        p.add("$.days", "must be an array")
        p.raise_if_any("the figures")
        return []
    if len(days) > MAX_STATS_DAYS:
        raise PayloadTooLarge(f"{len(days)} days in one request; at most {MAX_STATS_DAYS}",
                              details={"max_days": MAX_STATS_DAYS})
    out: list[tuple[str, list[dict]]] = []
    seen: set[str] = set()
    for i, entry in enumerate(days):
        where = f"$.days[{i}]"
        if not isinstance(entry, dict):
            p.add(where, "must be an object")
            continue
        day = entry.get("day")
        if not _is_day(day):
            p.add(f"{where}.day", "must be a date YYYY-MM-DD")
        elif day in seen:
            p.add(f"{where}.day", "appears twice")
        else:
            seen.add(day)
        figures = entry.get("figures")
        if not isinstance(figures, list) or len(figures) > MAX_FIGURES_PER_DAY:
            p.add(f"{where}.figures", f"must be an array of at most {MAX_FIGURES_PER_DAY}")
            continue
        keys: set[tuple] = set()
        for j, f in enumerate(figures):
            at = f"{where}.figures[{j}]"
            if not isinstance(f, dict):
                p.add(at, "must be an object")
                continue
            _str(p, f, at, "branch", min_len=1, max_len=32)
            _str(p, f, at, "stop", max_len=MAX_STOP)
            _str(p, f, at, "metric", min_len=1, max_len=64)
            _int(p, f, at, "value", minimum=0)
            key = (f.get("branch"), f.get("stop"), f.get("metric"))
            if key in keys:
                p.add(at, "the same branch, stop and metric appear twice")
            keys.add(key)
        out.append((str(day), figures))
    p.raise_if_any("the figures")
    return out


def _is_day(value: Any) -> bool:
    from datetime import date

    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def card_range_size(body: Any, default: int = 1000) -> int:
    if body is None:
        return default
    obj = _object(body, "the request")
    size = obj.get("size", default)
    if not _is_int(size) or not 10 <= size <= 100_000:
        raise ValidationFailed("size must be an integer from 10 to 100000",
                               details={"problems": [{"path": "$.size",
                                                      "problem": "must be 10..100000"}]})
    return size


def int_param(value: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        n = lo - 1
    if not lo <= n <= hi:
        raise ValidationFailed(f"{name} must be an integer from {lo} to {hi}",
                               details={"problems": [{"path": name,
                                                      "problem": f"must be {lo}..{hi}"}]})
    return n
