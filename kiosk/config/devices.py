"""Config sections of the printer, the hold lockers and the entrance door.

Their defaults follow the profile: the simulated kiosk (``sim``) has a simulated printer,
four simulated lockers and a simulated door; a 24-hour space has real ones on the pins of
docs/wiring-lockers-door.md; a van has a printer but no lockers and no door. Values that
only make sense together (pins used twice, a pulse longer than its timeout) are checked by
building the hardware specs, whose own validation names the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hardware.specs import (
    PRINTER_DRIVERS,
    SIM_DOOR,
    SIM_LOCKERS,
    SIMULATED,
    DoorSpec,
    LockerSpec,
    PrinterSpec,
)
from kiosk.config.schema import Key, PerProfile, Section
from kiosk.config.types import Bool, Choice, Int, IntList, Str

PRINTER_PATH = "/dev/kiosk-printer"
# Pins the MFRC522 holds on SPI0 (CE0, MISO, MOSI, SCLK, CE1): never a latch or a sensor.
SPI0_PINS = frozenset({7, 8, 9, 10, 11})

_printer = PrinterSpec()
_lockers = SIM_LOCKERS
_door = SIM_DOOR


def _sim(profile: str) -> bool:
    return profile == "sim"


def _spec_problems(values: Mapping[str, Any], make: Any, keys: tuple[str, ...]
                   ) -> list[tuple[str, str, dict[str, Any]]]:
    """Build the spec from the section's values; its ValueError ("field: why") becomes a
    problem at that key."""
    if not values.get("enabled", True) or not all(k in values for k in keys):
        return []
    try:
        make(**{k: values[k] for k in keys})
    except ValueError as exc:
        field, _, why = str(exc).partition(": ")
        key = field if field in keys else keys[0]
        return [(key, "config.problem.hardware", {"detail": why or str(exc)})]
    problems = []
    for key in keys:
        pins = values[key] if isinstance(values[key], tuple) else (values[key],)
        if key.endswith(("pin", "pins")) and SPI0_PINS & set(pins):
            problems.append((key, "config.problem.spi_pin",
                             {"pins": ", ".join(str(p) for p in sorted(SPI0_PINS & set(pins)))}))
    return problems


LOCKER_KEYS = ("latch_pins", "sensor_pins", "bank_size", "max_energised", "pulse_ms",
               "open_timeout_ms", "debounce_ms", "latch_active_high", "sensor_open_when_high",
               "left_open_after_s", "simulated")
DOOR_KEYS = ("latch_pin", "sensor_pin", "pulse_ms", "open_timeout_ms", "left_open_after_s",
             "debounce_ms", "latch_active_high", "sensor_open_when_high", "simulated")

SECTIONS = (
    Section("printer", (
        Key("driver", Choice(PRINTER_DRIVERS), _printer.driver),
        Key("url", Str(r"sim|/\S+|[a-z0-9+]+://\S+", example=PRINTER_PATH),
            PerProfile(lambda p: SIMULATED if _sim(p) else PRINTER_PATH)),
        Key("baudrate", Int(1200, 921600), _printer.baudrate),
        Key("parity", Choice(("N", "E", "O")), _printer.parity),
        Key("paper_dots", Int(200, 1000), _printer.paper_dots),
        Key("chars_per_line", Int(16, 72), _printer.chars_per_line),
        Key("timeout_ms", Int(100, 30_000), _printer.timeout_ms),
        Key("encoding", Choice(("gb18030", "gbk", "gb2312")), _printer.encoding),
        Key("confirm_printed", Bool(), _printer.confirm_printed),
        Key("print_timeout_ms", Int(1000, 120_000), _printer.print_timeout_ms),
    )),
    Section("lockers", (
        Key("enabled", Bool(), PerProfile(lambda p: p != "van")),
        Key("latch_pins", IntList(0, 27), _lockers.latch_pins),
        Key("sensor_pins", IntList(0, 27), _lockers.sensor_pins),
        Key("bank_size", Int(1, 99), _lockers.bank_size),
        Key("max_energised", Int(1, 99), _lockers.max_energised),
        Key("pulse_ms", Int(10, 2000), _lockers.pulse_ms),
        Key("open_timeout_ms", Int(10, 120_000), _lockers.open_timeout_ms),
        Key("debounce_ms", Int(0, 1000), _lockers.debounce_ms),
        Key("latch_active_high", Bool(), _lockers.latch_active_high),
        Key("sensor_open_when_high", Bool(), _lockers.sensor_open_when_high),
        Key("left_open_after_s", Int(1, 3600), int(_lockers.left_open_after_s)),
        Key("simulated", Bool(), PerProfile(_sim)),
    ), check=lambda v: _spec_problems(v, LockerSpec, LOCKER_KEYS)),
    Section("door", (
        Key("enabled", Bool(), PerProfile(lambda p: p != "van")),
        Key("latch_pin", Int(0, 27), _door.latch_pin),
        Key("sensor_pin", Int(0, 27), _door.sensor_pin),
        Key("pulse_ms", Int(10, 10_000), _door.pulse_ms),
        Key("open_timeout_ms", Int(10, 120_000), _door.open_timeout_ms),
        Key("left_open_after_s", Int(1, 3600), int(_door.left_open_after_s)),
        Key("debounce_ms", Int(0, 1000), _door.debounce_ms),
        Key("latch_active_high", Bool(), _door.latch_active_high),
        Key("sensor_open_when_high", Bool(), _door.sensor_open_when_high),
        Key("simulated", Bool(), PerProfile(_sim)),
    ), check=lambda v: _spec_problems(v, DoorSpec, DOOR_KEYS)),
)


def build(values: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The printer, lockers and door specs (None where disabled) from resolved values."""
    lockers = values["lockers"]
    door = values["door"]
    return {
        "printer": PrinterSpec(**values["printer"]),
        "lockers": LockerSpec(**{k: lockers[k] for k in LOCKER_KEYS})
        if lockers["enabled"] else None,
        "door": DoorSpec(**{k: door[k] for k in DOOR_KEYS}) if door["enabled"] else None,
    }


def pins_used_twice(values: Mapping[str, Mapping[str, Any]]
                    ) -> list[tuple[str, str, str, dict[str, Any]]]:
    """A GPIO pin wired to two things (a locker latch and the door sensor, the card reader's
    reset line and a latch...) is a wiring mistake that would open doors at random."""
    owners: dict[int, str] = {}
    problems = []
    uses: list[tuple[str, str, tuple[int, ...]]] = []
    for section in ("card_reader", "entrance_reader"):
        table = values.get(section, {})
        reset = table.get("reset_pin")
        if reset is not None and table.get("spi") != SIMULATED and table.get("enabled", True):
            uses.append((section, "reset_pin", (reset,)))
    for section, keys in (("lockers", ("latch_pins", "sensor_pins")),
                          ("door", ("latch_pin", "sensor_pin"))):
        table = values.get(section, {})
        if not table.get("enabled"):
            continue
        for key in keys:
            if key in table:
                pins = table[key] if isinstance(table[key], tuple) else (table[key],)
                uses.append((section, key, pins))
    for section, key, pins in uses:
        for pin in pins:
            where = f"{section}.{key}"
            if pin in owners and owners[pin] != where:
                problems.append((section, key, "config.problem.pin_twice",
                                 {"pin": pin, "other": owners[pin]}))
            owners.setdefault(pin, where)
    return problems


def entrance_problems(values: Mapping[str, Mapping[str, Any]]
                      ) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The entrance card reader opens the entrance door, so it needs one; and it cannot share
    the SPI device (the chip select) of the card reader at the kiosk."""
    entrance = values.get("entrance_reader", {})
    if not entrance.get("enabled"):
        return []
    problems = []
    if values.get("door", {}).get("enabled") is False:
        problems.append(("entrance_reader", "enabled", "config.problem.entrance_without_door", {}))
    spi, kiosk_spi = entrance.get("spi"), values.get("card_reader", {}).get("spi")
    if spi is not None and spi != SIMULATED and spi == kiosk_spi:
        problems.append(("entrance_reader", "spi", "config.problem.spi_twice", {"spi": spi}))
    return problems
