"""Rebuilding the offline cache from the hub without losing what exists only on the device.

A cache is mostly a copy of the hub's data: patrons, items, holds, rules. What exists only
here is the outbox tail the hub has not acknowledged (loans, returns, new readers, staff
actions), the outbox counters (``seq`` must stay gap-free and never be reused, the hybrid
logical clock must never go back), the patrons registered here whose ``patron_registered``
event the hub does not have yet, the numbers issued from the device's card ranges, and the
local staff audit. :func:`salvage` reads those from an old (possibly corrupt) file;
:func:`carry_over` writes them into a fresh cache before the hub's snapshot is loaded, so
the snapshot's rows for anything they touch are held back (local pending wins) and the
carried events are pushed like any other; :func:`settle_card_ranges` makes sure no card
number is issued twice once the hub's ranges have arrived.

How the old file is read:

1. ``read``: a copy of the file (and its write-ahead log) opened with the standard module,
   tables scanned without their indexes (an index on a damaged page can hide rows).
2. ``recover``: when that fails, ``sqlite3 COPY .recover`` (the SQLite command-line tool)
   rebuilds what it can into another file, which is then read the same way; outbox rows
   SQLite could not place in their table are picked out of its ``lost_and_found``.
3. ``scan``: whatever ``.recover`` gave or not (it needs a readable header, and some builds
   of the tool lack it altogether), every b-tree page of the file and of its write-ahead log
   is parsed here and each record that reads as an outbox event is taken. An event seen
   acknowledged in any copy counts as acknowledged; one seen only unacknowledged is sent
   again (the hub stores each ``(device_id, txn_id)`` once, so a stale copy costs nothing).

The original file is only ever read (through its copy), never written.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sync import cardnumbers, outbox
from sync.db import Cache, translated
from sync.files import fsync_dir

KINDS = ("checkout", "checkin", "renew", "pickup", "patron_registered", "staff_action")
RECOVER_TIMEOUT_S = 600
_TXN = re.compile(r"^[0-9a-f]{32}$")
_EVENT_COLUMNS = ("device_id", "seq", "txn_id", "kind", "boot_id", "mono_ns", "wall_ns",
                  "clock_synced", "hlc", "payload", "acked_at")
# Columns of a patron row carried over for a reader registered here (the hub's feed fills
# the rest once it has the registration).
_PATRON_COLUMNS = ("card_number", "name", "patron_type", "status", "expires_on", "updated_at",
                   "id_type", "id_number_enc", "id_masked", "id_hash", "phone_enc",
                   "phone_masked", "village", "address_enc", "guardian_name",
                   "guardian_relation", "consent_at", "registered_txn", "pin_hash")
# Keys of local_state worth keeping: the batch in flight (resent with the same body and key).
_STATE_KEYS = ("sync.push.inflight",)


@dataclass
class Salvage:
    """What :func:`salvage` got out of an old cache file."""

    source: Path
    method: str = "read"  # read | recover | none
    events: list[outbox.Event] = field(default_factory=list)  # unacknowledged, in order
    # Columns of an event beyond those of outbox.Event (added by later migrations): by name
    # when read from a table, by position when found by the page scan.
    extras: dict[str, dict[str, Any] | tuple[Any, ...]] = field(default_factory=dict)
    counters: dict[str, tuple[int, int]] = field(default_factory=dict)  # (last_seq, last_hlc)
    highest_seq: dict[str, int] = field(default_factory=dict)  # any event seen, acked or not
    patrons: list[dict[str, Any]] = field(default_factory=list)
    card_ranges: list[dict[str, Any]] = field(default_factory=list)
    sip2: list[tuple[Any, ...]] = field(default_factory=list)
    anchors: list[tuple[Any, ...]] = field(default_factory=list)
    state: list[tuple[str, Any]] = field(default_factory=list)
    audit: list[tuple[Any, ...]] = field(default_factory=list)
    outbox_found: bool = False
    counters_found: bool = False
    integrity: str = "ok"
    problems: list[str] = field(default_factory=list)

    def final_counters(self) -> dict[str, tuple[int, int]]:
        """Per device: the last seq and HLC the new cache must continue after; never lower
        than any event or counter the old file showed."""
        out = dict(self.counters)
        for e in self.events:
            seq, hlc = out.get(e.device_id, (0, 0))
            out[e.device_id] = (max(seq, e.seq), max(hlc, e.hlc))
        for device, seq in self.highest_seq.items():
            last, hlc = out.get(device, (0, 0))
            out[device] = (max(last, seq), hlc)
        return out

    def gaps(self) -> list[str]:
        """Unacknowledged seqs missing between carried events (lost with the damage)."""
        found = []
        by_device: dict[str, list[int]] = {}
        for e in self.events:
            by_device.setdefault(e.device_id, []).append(e.seq)
        for device, seqs in by_device.items():
            for a, b in itertools.pairwise(seqs):
                if b != a + 1:
                    found.append(f"{device}: {a + 1}..{b - 1}")
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source), "method": self.method, "integrity": self.integrity,
            "outbox_found": self.outbox_found, "counters_found": self.counters_found,
            "events": [e.as_dict() for e in self.events],
            "counters": {d: {"last_seq": s, "last_hlc": h}
                         for d, (s, h) in sorted(self.final_counters().items())},
            "registrations": [p["card_number"] for p in self.patrons],
            "card_ranges": len(self.card_ranges), "audit_rows": len(self.audit),
            "gaps": self.gaps(), "problems": list(self.problems),
        }


# -- reading the old file ------------------------------------------------------------------


def salvage(path: Path, workdir: Path) -> Salvage:
    """Everything :class:`Salvage` holds, read from a copy of ``path`` made in ``workdir``."""
    result = Salvage(path)
    copy = workdir / "old.db"
    shutil.copyfile(path, copy)
    for suffix in ("-wal",):
        if Path(f"{path}{suffix}").exists():
            shutil.copyfile(f"{path}{suffix}", f"{copy}{suffix}")
    try:
        conn = sqlite3.connect(copy, isolation_level=None)
        try:
            result.integrity = _integrity(conn)
            _read(conn, result, strict=True)
        finally:
            conn.close()
        return result
    except sqlite3.DatabaseError as exc:
        result.problems.append(f"read: {exc}")
    fresh = Salvage(path, method="none", problems=result.problems,
                    integrity=result.integrity if result.integrity != "ok" else "unreadable")
    recovered = workdir / "recovered.db"
    if _recover(copy, recovered, fresh):
        try:
            conn = sqlite3.connect(recovered, isolation_level=None)
            try:
                _read(conn, fresh, strict=False)
                _lost_and_found(conn, fresh)
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            fresh.problems.append(f"recover: {exc}")
        if fresh.outbox_found:
            fresh.method = "recover"
    scanned = _scan(copy)
    if scanned and not fresh.outbox_found:
        fresh.method = "scan"
    _merge(fresh, scanned)
    fresh.events.sort(key=lambda e: (e.device_id, e.seq))
    have = {p["card_number"] for p in fresh.patrons}
    for e in fresh.events:
        card = e.payload.get("card")
        if e.kind == "patron_registered" and card and card not in have:
            have.add(card)
            fresh.patrons.append(_patron_from_event(e))
    return fresh


def _merge(result: Salvage, found: list[tuple[outbox.Event, tuple[Any, ...]]]) -> None:
    """Add events found by the page scan: acknowledged in any copy means acknowledged."""
    if not found:
        return
    scanned = [e for e, _ in found]
    for e, more in found:
        if more and e.txn_id not in result.extras:
            result.extras[e.txn_id] = more
    result.outbox_found = True
    acked = {e.txn_id for e in scanned if e.acked_at is not None}
    for e in scanned:
        result.highest_seq[e.device_id] = max(result.highest_seq.get(e.device_id, 0), e.seq)
    result.events = [e for e in result.events if e.txn_id not in acked]
    have = {e.txn_id for e in result.events}
    for e in scanned:
        if e.acked_at is None and e.txn_id not in acked and e.txn_id not in have:
            have.add(e.txn_id)
            result.events.append(e)


# -- the page scan ---------------------------------------------------------------------------


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = 0
    for k in range(9):
        byte = buf[i + k]
        if k == 8:
            return (value << 8) | byte, i + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, i + k + 1
    raise IndexError


def _record(payload: bytes) -> tuple[Any, ...] | None:
    """The values of one SQLite record, or None when it does not parse."""
    try:
        header_size, i = _varint(payload, 0)
        types = []
        while i < header_size:
            t, i = _varint(payload, i)
            types.append(t)
        pos, values = header_size, []
        for t in types:
            if t == 0:
                values.append(None)
            elif 1 <= t <= 6:
                n = (1, 2, 3, 4, 6, 8)[t - 1]
                values.append(int.from_bytes(payload[pos:pos + n], "big", signed=True))
                pos += n
            elif t in (8, 9):
                values.append(t - 8)
            elif t == 7:
                values.append(None)
                pos += 8
            elif t >= 12:
                n = (t - 12) // 2
                chunk = payload[pos:pos + n]
                values.append(chunk.decode("utf-8") if t % 2 else bytes(chunk))
                pos += n
            else:
                return None
        if pos > len(payload):
            return None
        return tuple(values)
    except (IndexError, UnicodeDecodeError):
        return None


def _page_records(page: bytes, offset: int, usable: int) -> list[tuple[Any, ...]]:
    """Records held wholly on one b-tree page (leaf or index-interior); cells that spill to
    overflow pages are left out."""
    kind = page[offset]
    if kind not in (0x0D, 0x0A, 0x02):
        return []
    header = 12 if kind == 0x02 else 8
    cells = int.from_bytes(page[offset + 3:offset + 5], "big")
    max_local = usable - 35 if kind == 0x0D else (usable - 12) * 64 // 255 - 23
    out = []
    for n in range(cells):
        at = offset + header + 2 * n
        try:
            cell = int.from_bytes(page[at:at + 2], "big")
            if kind == 0x02:
                cell += 4
            size, i = _varint(page, cell)
            if kind == 0x0D:
                _, i = _varint(page, i)
        except IndexError:
            continue
        if size > max_local or i + size > len(page):
            continue
        values = _record(page[i:i + size])
        if values is not None:
            out.append(values)
    return out


def _scan(copy: Path) -> list[tuple[outbox.Event, tuple[Any, ...]]]:
    """Outbox events in any b-tree page of ``copy`` and of its write-ahead log."""
    data = copy.read_bytes()
    wal = Path(f"{copy}-wal")
    wal_data = wal.read_bytes() if wal.exists() else b""
    size = 0
    if data[:16] == b"SQLite format 3\x00":
        size = int.from_bytes(data[16:18], "big")
        size = 65536 if size == 1 else size
    if not size and len(wal_data) >= 32:
        size = int.from_bytes(wal_data[8:12], "big")
    if size not in {512 << k for k in range(8)}:
        size = 4096
    pages = [(data[i:i + size], 100 if i == 0 else 0) for i in range(0, len(data), size)]
    frame = 24 + size
    pages += [(wal_data[i + 24:i + frame], 0) for i in range(32, len(wal_data) - frame + 1,
                                                              frame)]
    found = []
    for page, offset in pages:
        if len(page) < size:
            continue
        for values in _page_records(page, offset, size):
            if len(values) >= len(_EVENT_COLUMNS):
                event = _event(values[:len(_EVENT_COLUMNS)])
                if event is not None:
                    found.append((event, values[len(_EVENT_COLUMNS):]))
    return found


def _integrity(conn: sqlite3.Connection) -> str:
    rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
    return "ok" if rows == ["ok"] else "; ".join(str(r) for r in rows)


def _tables(conn: sqlite3.Connection) -> dict[str, set[str]]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n: {r[1] for r in conn.execute(f'PRAGMA table_info("{n}")')} for n in names}


_SIP2_COLUMNS = ("txn_id", "device_id", "seq", "kind", "state", "code", "message", "attempts",
                 "updated_at")


def _rows(conn: sqlite3.Connection, table: str, columns: tuple[str, ...], result: Salvage,
          strict: bool) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (its table b-tree only, no index), or [] with a problem noted
    when it cannot be read and ``strict`` is off."""
    try:
        return conn.execute(f"SELECT {', '.join(columns)} FROM {table} NOT INDEXED").fetchall()
    except sqlite3.DatabaseError as exc:
        if strict:
            raise
        result.problems.append(f"{table}: {exc}")
        return []


def _read(conn: sqlite3.Connection, result: Salvage, strict: bool) -> None:
    tables = _tables(conn)
    if "outbox" in tables:
        result.outbox_found = True
        seen: set[str] = set()
        more = tuple(sorted(tables["outbox"] - set(_EVENT_COLUMNS)))
        for row in _rows(conn, "outbox", _EVENT_COLUMNS + more, result, strict):
            event = _event(row[:len(_EVENT_COLUMNS)])
            if event is None or event.txn_id in seen:
                result.problems.append(f"outbox: unreadable row {row[:3]!r}")
                continue
            seen.add(event.txn_id)
            if more:
                result.extras[event.txn_id] = dict(zip(more, row[len(_EVENT_COLUMNS):],
                                                       strict=True))
            result.highest_seq[event.device_id] = max(result.highest_seq.get(event.device_id, 0),
                                                      event.seq)
            if event.acked_at is None:
                result.events.append(event)
        result.events.sort(key=lambda e: (e.device_id, e.seq))
    if "outbox_counters" in tables:
        result.counters_found = True
        for device, seq, hlc in _rows(conn, "outbox_counters",
                                      ("device_id", "last_seq", "last_hlc"), result, strict):
            if isinstance(device, str) and isinstance(seq, int) and isinstance(hlc, int):
                result.counters[device] = (seq, hlc)
    if not result.counters_found:
        result.problems.append("outbox_counters: not found; continued after the events seen")
    unacked_txns = {e.txn_id for e in result.events}
    registered = {e.payload.get("card"): e for e in result.events
                  if e.kind == "patron_registered" and e.payload.get("card")}
    if "patrons" in tables:
        columns = tuple(c for c in _PATRON_COLUMNS if c in tables["patrons"])
        if "registered_txn" in columns:
            for row in _rows(conn, "patrons", columns, result, strict):
                values = dict(zip(columns, row, strict=True))
                if values.get("registered_txn") in unacked_txns:
                    result.patrons.append(values)
    # A registration whose patron row was lost with the damage: made again from its event.
    have = {p["card_number"] for p in result.patrons}
    for card, event in registered.items():
        if card not in have:
            result.patrons.append(_patron_from_event(event))
    if "card_ranges" in tables:
        cols = ("prefix", "first_number", "last_number", "next_number", "leased_at",
                "expires_on")
        result.card_ranges = [dict(zip(cols, r, strict=True))
                              for r in _rows(conn, "card_ranges", cols, result, strict)]
    if "sync_anchors" in tables:
        result.anchors = _rows(conn, "sync_anchors",
                               ("boot_id", "mono_ns", "hub_time_ns", "rtt_ns", "recorded_at"),
                               result, strict)
    if "local_state" in tables:
        result.state = [(k, v) for k, v in _rows(conn, "local_state", ("key", "value"),
                                                 result, strict) if k in _STATE_KEYS]
    if "staff_audit" in tables:
        result.audit = _rows(conn, "staff_audit", ("id", "at", "staff_id", "staff_card",
                                                   "action", "details", "txn_id"),
                             result, strict)
    if "sip2_outcomes" in tables:
        # What the library system answered (sync.sip2.replay): an event it answered is
        # never sent to it again, and its refusals stay listed for staff.
        result.sip2 = _rows(conn, "sip2_outcomes", _SIP2_COLUMNS, result, strict)


def _event(row: tuple[Any, ...]) -> outbox.Event | None:
    """An outbox row as an event, or None when the values cannot be one."""
    if len(row) != len(_EVENT_COLUMNS):
        return None
    device, seq, txn, kind, boot, mono, wall, synced, hlc, payload, acked = row
    if not (isinstance(device, str) and isinstance(seq, int) and seq > 0
            and isinstance(txn, str) and _TXN.match(txn) and kind in KINDS
            and isinstance(boot, str) and isinstance(mono, int) and isinstance(wall, int)
            and synced in (0, 1) and isinstance(hlc, int) and isinstance(payload, str)
            and (acked is None or isinstance(acked, str))):
        return None
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    return outbox.Event(device, seq, txn, kind, boot, mono, wall, bool(synced), hlc, body,
                        acked)


def _patron_from_event(event: outbox.Event) -> dict[str, Any]:
    p = event.payload
    return {
        "card_number": p["card"], "name": p.get("name") or "",
        "patron_type": p.get("patron_type") or "adult", "status": "active",
        "expires_on": p.get("expires_on"), "updated_at": p.get("consent_at"),
        "id_type": p.get("id_type"), "id_masked": p.get("id_masked"),
        "id_hash": p.get("id_hash"), "phone_masked": p.get("phone_masked"),
        "village": p.get("village"), "guardian_name": p.get("guardian_name"),
        "guardian_relation": p.get("guardian_relation"), "consent_at": p.get("consent_at"),
        "registered_txn": event.txn_id,
    }


def _recover(copy: Path, target: Path, result: Salvage) -> bool:
    """``sqlite3 COPY .recover`` into ``target``; False (with a problem noted) when the
    SQLite command-line tool is missing or produced nothing usable."""
    tool = shutil.which("sqlite3")
    if tool is None:
        result.problems.append("recover: the sqlite3 command is not installed"
                               " (apt install sqlite3)")
        return False
    try:
        dump = subprocess.run([tool, str(copy), ".recover"], capture_output=True,
                              timeout=RECOVER_TIMEOUT_S, check=False)
        if not dump.stdout:
            result.problems.append(f"recover: {dump.stderr.decode(errors='replace')[:300]}")
            return False
        load = subprocess.run([tool, str(target)], input=dump.stdout, capture_output=True,
                              timeout=RECOVER_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        result.problems.append(f"recover: {exc}")
        return False
    if load.returncode != 0 and not target.exists():
        result.problems.append(f"recover: {load.stderr.decode(errors='replace')[:300]}")
        return False
    return True


def _lost_and_found(conn: sqlite3.Connection, result: Salvage) -> None:
    """Outbox rows ``.recover`` could not place in their table: 11 fields that read as an
    event (a 32-hex txn id, a known kind, a JSON payload)."""
    for name, columns in _tables(conn).items():
        if not name.startswith("lost_and_found") or "nfield" not in columns:
            continue
        wanted = [f"c{i}" for i in range(len(_EVENT_COLUMNS))]
        if not set(wanted) <= columns:
            continue
        have = {e.txn_id for e in result.events}
        rows = conn.execute(f"SELECT {', '.join(wanted)} FROM \"{name}\" WHERE nfield = ?",
                            (len(_EVENT_COLUMNS),)).fetchall()
        for row in rows:
            event = _event(tuple(row))
            if event is None:
                continue
            result.outbox_found = True
            result.highest_seq[event.device_id] = max(result.highest_seq.get(event.device_id, 0),
                                                      event.seq)
            if event.acked_at is None and event.txn_id not in have:
                have.add(event.txn_id)
                result.events.append(event)


# -- writing the new one -------------------------------------------------------------------


def carry_over(cache: Cache, found: Salvage) -> None:
    """Write the salvaged events, counters, local readers, anchors and audit into the fresh
    ``cache`` (before the hub's snapshot), in one transaction."""
    with cache.transaction() as conn:
        for device, (seq, hlc) in sorted(found.final_counters().items()):
            conn.execute("INSERT INTO outbox_counters (device_id, last_seq, last_hlc)"
                         " VALUES (?, ?, ?)", (device, seq, hlc))
        columns = [r[1] for r in conn.execute("PRAGMA table_info(outbox)")]
        later = [c for c in columns if c not in _EVENT_COLUMNS]
        for e in found.events:
            values: dict[str, Any] = {
                "device_id": e.device_id, "seq": e.seq, "txn_id": e.txn_id, "kind": e.kind,
                "boot_id": e.boot_id, "mono_ns": e.mono_ns, "wall_ns": e.wall_ns,
                "clock_synced": int(e.clock_synced), "hlc": e.hlc,
                "payload": json.dumps(e.payload, ensure_ascii=False, sort_keys=True)}
            more = found.extras.get(e.txn_id)
            if isinstance(more, dict):
                values.update({c: v for c, v in more.items() if c in later})
            elif more and len(more) == len(later):
                values.update(zip(later, more, strict=True))
            conn.execute(f"INSERT INTO outbox ({', '.join(values)}) VALUES"
                         f" ({', '.join('?' for _ in values)})", tuple(values.values()))
        for patron in found.patrons:
            # home_branch stays empty until the hub's row arrives (branches are not here yet).
            columns = [c for c in _PATRON_COLUMNS if c in patron]
            conn.execute(
                f"INSERT INTO patrons ({', '.join(columns)}) VALUES"
                f" ({', '.join('?' for _ in columns)}) ON CONFLICT (card_number) DO NOTHING",
                [patron[c] for c in columns])
        conn.executemany(
            "INSERT OR IGNORE INTO sync_anchors (boot_id, mono_ns, hub_time_ns, rtt_ns,"
            " recorded_at) VALUES (?, ?, ?, ?, ?)", found.anchors)
        conn.executemany("INSERT OR REPLACE INTO local_state (key, value) VALUES (?, ?)",
                         found.state)
        conn.executemany(
            "INSERT OR IGNORE INTO staff_audit (id, at, staff_id, staff_card, action, details,"
            " txn_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [row for row in found.audit if _valid_json(row[5])])
        conn.executemany(
            f"INSERT OR IGNORE INTO sip2_outcomes ({', '.join(_SIP2_COLUMNS)}) VALUES"
            f" ({', '.join('?' for _ in _SIP2_COLUMNS)})", found.sip2)


def _valid_json(text: Any) -> bool:
    try:
        json.loads(text)
    except (TypeError, ValueError):
        return False
    return True


def settle(cache: Cache, found: Salvage, device_id: str) -> int:
    """After the hub's data has arrived: continue the outbox counter after every seq the hub
    has a verdict for (events lost with the old file's damage included), and move each card
    range's next number past every number already issued from it (the old file's counter,
    any patron in the cache). Returns how many ranges moved."""
    moved = 0
    with cache.transaction() as conn:
        judged = conn.execute("SELECT max(seq) FROM sync_verdicts WHERE device_id = ?",
                              (device_id,)).fetchone()[0]
        if judged is not None:
            conn.execute(
                "INSERT INTO outbox_counters (device_id, last_seq, last_hlc) VALUES (?, ?, 0)"
                " ON CONFLICT (device_id) DO UPDATE SET"
                " last_seq = max(last_seq, excluded.last_seq)", (device_id, judged))
        ranges = conn.execute("SELECT id, prefix, first_number, last_number, next_number"
                              " FROM card_ranges").fetchall()
        for rid, prefix, first, last, nxt in ranges:
            target = nxt
            for old in found.card_ranges:
                if (old["prefix"], old["first_number"], old["last_number"]) == (
                        prefix, first, last) and isinstance(old["next_number"], int):
                    target = max(target, old["next_number"])
            width = len(prefix) + cardnumbers.BODY_DIGITS + 1
            for (card,) in conn.execute(
                    "SELECT card_number FROM patrons WHERE card_number LIKE ? || '%'"
                    " AND length(card_number) = ?", (prefix, width)):
                body = card[len(prefix):len(prefix) + cardnumbers.BODY_DIGITS]
                if body.isdigit() and first <= int(body) <= last:
                    target = max(target, int(body) + 1)
            target = min(target, last + 1)
            if target != nxt:
                conn.execute("UPDATE card_ranges SET next_number = ? WHERE id = ?",
                             (target, rid))
                moved += 1
    return moved


# -- files ---------------------------------------------------------------------------------


def kept_name(path: Path, now: datetime) -> Path:
    """Where the old file is kept: beside it, named for the moment of the rebuild."""
    base = path.with_name(f"{path.name}.before-rebuild-{now:%Y%m%d-%H%M%S}")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def swap(new: Path, path: Path, kept: Path) -> None:
    """Move the old file (with its -wal and -shm) to ``kept`` and ``new`` into its place.
    Nothing is deleted; the new file takes the old one's owner and mode when allowed."""
    with translated(path):
        st = path.stat()
        os.chmod(new, st.st_mode & 0o7777)
        if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            with contextlib.suppress(PermissionError):
                os.chown(new, st.st_uid, st.st_gid)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{path}{suffix}")
            if side.exists():
                os.replace(side, f"{kept}{suffix}")
        os.replace(path, kept)
        os.replace(new, path)
        fsync_dir(path.parent)
