"""Hardware self-tests: what a technician runs over SSH to find the broken part in a minute.

Each device gets a list of checks; each check says what was checked, whether it passed,
what was found, and for a failure a hint (a message key with its parameters) saying what
to do. A check never raises: a device that cannot even be reached is a failed first check,
and the checks after it are skipped, not crashed. The kiosk command renders the results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from drivers.errors import DeviceTimeout, DriverError, FrameError, SelfTestFailed
from hardware.roles import (
    CardReader,
    Door,
    DoorNotOpened,
    HardwareError,
    Locker,
    OpenResult,
    ReceiptPrinter,
    TagReader,
)

# Known MFRC522 VersionReg values: NXP's own, and clones that behave the same.
GENUINE_MFRC522 = {0x91: "MFRC522 v1.0", 0x92: "MFRC522 v2.0"}
CLONE_MFRC522 = {0x88: "FM17522 clone", 0x12: "clone (0x12)", 0xB2: "FM17522E clone"}


@dataclass
class Check:
    """One check. ``detail`` is evidence as the device gave it (a firmware version, an
    error's text); ``detail_key`` with ``detail_params``, when set, is the same for a
    person, through the message catalogue."""

    name: str
    ok: bool
    detail: str = ""
    hint: str | None = None
    hint_params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    detail_key: str | None = None
    detail_params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail,
                "detail_key": self.detail_key, "detail_params": self.detail_params,
                "hint": self.hint, "hint_params": self.hint_params,
                "seconds": round(self.seconds, 3)}


# What a check's action returns: plain evidence, or (message key, params, evidence).
Outcome = str | tuple[str, dict[str, Any], str]


@dataclass
class DeviceReport:
    device: str
    where: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device, "where": self.where, "ok": self.ok,
                "checks": [c.as_dict() for c in self.checks]}


class _Runner:
    """Runs checks in order; after a failed check marked ``stop``, the rest are skipped."""

    def __init__(self, report: DeviceReport, hint_for: Callable[[Exception], tuple[str, dict]]):
        self.report = report
        self.hint_for = hint_for
        self.stopped = False

    def check(self, name: str, action: Callable[[], Outcome], *, stop: bool = False) -> None:
        if self.stopped:
            self.report.checks.append(Check(name, False, "skipped", "selftest.hint.skipped"))
            return
        start = time.monotonic()
        try:
            outcome = action()
            if isinstance(outcome, tuple):
                key, params, evidence = outcome
                check = Check(name, True, evidence, detail_key=key, detail_params=params)
            else:
                check = Check(name, True, outcome)
            check.seconds = time.monotonic() - start
            self.report.checks.append(check)
        except (DriverError, HardwareError, OSError, ValueError) as exc:
            hint, params = self.hint_for(exc)
            self.report.checks.append(Check(name, False, str(exc), hint, params,
                                            seconds=time.monotonic() - start))
            self.stopped = stop


def _link_hint(where: str) -> Callable[[Exception], tuple[str, dict]]:
    def hint(exc: Exception) -> tuple[str, dict]:
        text = str(exc).lower()
        if "lock" in text or "busy" in text or "resource temporarily unavailable" in text:
            return "selftest.hint.port_busy", {"where": where}
        if "no such file" in text or "could not open" in text or "errno 2" in text:
            return "selftest.hint.not_found", {"where": where}
        if isinstance(exc, DeviceTimeout) or "answer" in text or "timeout" in text:
            return "selftest.hint.no_answer", {"where": where}
        if isinstance(exc, FrameError):
            return "selftest.hint.garbled", {"where": where}
        if isinstance(exc, SelfTestFailed):
            return "selftest.hint.replace", {"where": where}
        return "selftest.hint.generic", {"where": where}

    return hint


def _connected(link: Any, wait: float) -> Callable[[], Outcome]:
    def run() -> Outcome:
        if not link.online and not link.wait_online(wait):
            raise HardwareError(link.name, link.last_error)
        return "selftest.detail.connected", {}, "connected"

    return run


def _rf(reader: TagReader) -> Outcome:
    reader.rf_reset()
    return "selftest.detail.rf", {}, "RF field off and on"


def _inventory(reader: TagReader) -> Outcome:
    n = len(reader.inventory())
    return "selftest.detail.tags", {"count": n}, f"{n} tags in the field"


def check_tag_reader(reader: TagReader, where: str, wait: float = 3.0) -> DeviceReport:
    report = DeviceReport("tag_reader", where)
    run = _Runner(report, _link_hint(where))
    run.check("connect", _connected(reader.link, wait), stop=True)  # type: ignore[attr-defined]
    run.check("version", lambda: str(reader.describe().get("firmware")), stop=True)
    run.check("rf", lambda: _rf(reader))
    run.check("inventory", lambda: _inventory(reader))
    return report


def check_card_reader(reader: CardReader, where: str, wait: float = 2.0, *,
                      device: str = "card_reader") -> DeviceReport:
    """The patron-card reader's checks; ``device`` names the report (``entrance_reader``
    for the reader outside the entrance)."""
    report = DeviceReport(device, where)
    run = _Runner(report, _link_hint(where))
    run.check("connect", _connected(reader.link, wait), stop=True)  # type: ignore[attr-defined]

    def version() -> str:
        value = int(str(reader.describe()["version"]), 16)
        if value in GENUINE_MFRC522:
            return GENUINE_MFRC522[value]
        if value in CLONE_MFRC522:
            return CLONE_MFRC522[value]
        raise SelfTestFailed(reader.name, f"VersionReg 0x{value:02X} is not an MFRC522")

    run.check("version", version, stop=True)
    def chip_self_test() -> Outcome:
        reader.self_test()
        return "selftest.detail.passed", {}, "passed"

    run.check("digital_self_test", chip_self_test)
    return report


def check_printer(printer: ReceiptPrinter, where: str, wait: float = 3.0) -> DeviceReport:
    report = DeviceReport("printer", where)
    run = _Runner(report, _link_hint(where))
    run.check("connect", _connected(printer.link, wait), stop=True)  # type: ignore[attr-defined]
    status_box: dict[str, Any] = {}

    def status() -> Outcome:
        status_box["status"] = printer.status()
        return "selftest.detail.status", {}, "status read (DLE EOT 1-4)"

    run.check("status", status, stop=True)
    if "status" not in status_box:
        return report
    s = status_box["status"]
    # A printer goes offline when its paper runs out or its cover opens: "offline" is its
    # own problem only when nothing else explains it.
    for name, bad, hint in (
        ("online", "offline" in s.problems, "selftest.hint.printer_offline"),
        ("cover", s.cover_open, "selftest.hint.cover_open"),
        ("paper", s.paper_out, "selftest.hint.paper_out"),
        ("cutter", s.cutter_error, "selftest.hint.cutter"),
        ("errors", s.unrecoverable_error or s.autorecoverable_error,
         "selftest.hint.printer_error"),
    ):
        word = "problem" if bad else "ok"
        report.checks.append(Check(name, not bad, word, hint if bad else None,
                                   {"where": where}, detail_key=f"selftest.detail.{word}"))
    # Near end still prints: a warning with its hint, not a failure.
    word = "near_end" if s.paper_near_end else "ok"
    report.checks.append(Check("paper_near_end", True, word,
                               "selftest.hint.paper_near_end" if s.paper_near_end else None,
                               {"where": where}, detail_key=f"selftest.detail.{word}"))
    return report


def _latch_hint(where: str) -> Callable[[Exception], tuple[str, dict]]:
    generic = _link_hint(where)

    def hint(exc: Exception) -> tuple[str, dict]:
        if isinstance(exc, DoorNotOpened):
            return "selftest.hint.jammed", {"where": where}
        return generic(exc)

    return hint


def _opened(open_one: Callable[[], OpenResult]) -> Outcome:
    result = open_one()
    seconds = f"{result.opened_after_s:.2f}"
    return ("selftest.detail.opened", {"seconds": seconds},
            f"opened after {seconds} s")


def _sensor(report: DeviceReport, name: str, is_open: Callable[[], bool], where: str) -> None:
    """Read a door sensor without touching its latch. An open door is not a fault of the
    device (someone may be at it), but it is said, with a hint."""
    start = time.monotonic()
    try:
        opened = is_open()
    except (DriverError, HardwareError, OSError, ValueError) as exc:
        hint, params = _link_hint(where)(exc)
        report.checks.append(Check(name, False, str(exc), hint, params,
                                   seconds=time.monotonic() - start))
        return
    word = "door_open" if opened else "door_closed"
    report.checks.append(Check(name, True, "open" if opened else "closed",
                               "selftest.hint.door_open" if opened else None,
                               {"where": where},
                               seconds=time.monotonic() - start,
                               detail_key=f"selftest.detail.{word}"))


def _latches_not_tested(where: str) -> Check:
    """Said instead of a latch check: not a failure, but never silently passed over."""
    return Check("latches", True, "not tested", "selftest.hint.latches_not_tested",
                 {"where": where}, detail_key="selftest.detail.not_tested")


def check_lockers(lockers: Locker, where: str, slots: Iterable[str] | None = None, *,
                  latches: bool = False) -> DeviceReport:
    """Read each slot's door sensor; with ``latches``, instead release each slot's latch in
    turn and see its door sensor report the door open.

    With ``latches`` the doors pop open on site: run it standing at the lockers, with them
    empty, or on the slots named. Without, no latch is released and the report says so.
    """
    report = DeviceReport("lockers", where)
    run = _Runner(report, _latch_hint(where))
    for slot in slots or lockers.slots:
        if latches:
            run.check(f"latch:{slot}", lambda slot=slot: _opened(lambda: lockers.open(slot)))
        else:
            _sensor(report, f"sensor:{slot}", lambda slot=slot: lockers.is_open(slot), where)
    if not latches:
        report.checks.append(_latches_not_tested(where))
    return report


def check_door(door: Door, where: str, *, latches: bool = False) -> DeviceReport:
    """Read the entrance door's sensor; with ``latches``, release the entrance latch and see
    the sensor report the door open (someone on site pushes the door after the click)."""
    report = DeviceReport("door", where)
    if latches:
        _Runner(report, _latch_hint(where)).check("latch", lambda: _opened(door.open))
    else:
        _sensor(report, "sensor", door.is_open, where)
        report.checks.append(_latches_not_tested(where))
    return report


def overall(reports: Iterable[DeviceReport]) -> bool:
    return all(r.ok for r in reports)
