"""Which self-test each device gets, for ``kiosk selftest`` with and without a daemon.

Inside the daemon a self-test runs as a job on its device's worker (:data:`WORKER_OF`), so
the worker's polling pauses for it and nothing else talks to the device meanwhile.
"""

from __future__ import annotations

from hardware import selftest
from hardware.build import Devices

DEVICES = ("tag_reader", "card_reader", "printer", "lockers", "door", "entrance_reader")
WORKER_OF = {"tag_reader": "tag_reader", "card_reader": "card_reader", "printer": "printer",
             "lockers": "doors", "door": "doors", "entrance_reader": "entrance_reader"}


def check_device(devices: Devices, name: str, latches: bool = False
                 ) -> selftest.DeviceReport | None:
    """The report of one device, or None when the kiosk has no such device (a van has no
    lockers, entrance door or entrance card reader). Only with ``latches`` are the lockers'
    and the door's latches released (the doors pop open); else their sensors are read."""
    if name == "tag_reader":
        reader = devices.tag_reader
        return selftest.check_tag_reader(reader, reader.url)  # type: ignore[attr-defined]
    if name == "card_reader":
        return selftest.check_card_reader(devices.card_reader, devices.card_reader.name)
    if name == "printer" and devices.printer is not None:
        printer = devices.printer
        return selftest.check_printer(printer, printer.url)  # type: ignore[attr-defined]
    if name == "lockers" and devices.lockers is not None:
        return selftest.check_lockers(devices.lockers, devices.lockers.name,
                                       latches=latches)
    if name == "door" and devices.door is not None:
        return selftest.check_door(devices.door, devices.door.name, latches=latches)
    if name == "entrance_reader" and devices.entrance_reader is not None:
        return selftest.check_card_reader(devices.entrance_reader, devices.entrance_reader.name,
                                          device="entrance_reader")
    return None
