"""``kiosk selftest [DEVICE...] [--json]``: test the hardware, device by device.

For now the command opens the devices itself (the daemon issue routes it through the daemon,
which pauses the device under test instead of fighting for its port). Without a config it
tests the simulated kiosk. Exit code 0 only if every check of every device passed.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from hardware import build, selftest
from kiosk import exitcodes
from kiosk.app import App

DEVICES = ("tag_reader", "card_reader", "printer", "lockers", "door")


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("selftest", help=t("cli.help.selftest"),
                       description=t("cli.help.selftest"), epilog=t("cli.example.selftest"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    def device(name: str) -> str:
        if name not in DEVICES:
            raise argparse.ArgumentTypeError(
                t("selftest.unknown_device", name=name, devices=", ".join(DEVICES)))
        return name

    p.add_argument("devices", nargs="*", metavar="DEVICE", type=device,
                   help=t("cli.opt.selftest_devices", devices=", ".join(DEVICES)))
    p.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    p.set_defaults(handler=_selftest)


def _check(devices: build.Devices, name: str) -> selftest.DeviceReport | None:
    """The report of one device, or None when the kiosk has no such device (a van has no
    lockers or entrance door)."""
    if name == "tag_reader":
        reader = devices.tag_reader
        return selftest.check_tag_reader(reader, reader.url)  # type: ignore[attr-defined]
    if name == "card_reader":
        return selftest.check_card_reader(devices.card_reader, devices.card_reader.name)
    if name == "printer" and devices.printer is not None:
        printer = devices.printer
        return selftest.check_printer(printer, printer.url)  # type: ignore[attr-defined]
    if name == "lockers" and devices.lockers is not None:
        return selftest.check_lockers(devices.lockers, devices.lockers.name)
    if name == "door" and devices.door is not None:
        return selftest.check_door(devices.door, devices.door.name)
    return None


def run(app: App, wanted: list[str]) -> list[selftest.DeviceReport]:
    spec = app.settings().hardware
    with tempfile.TemporaryDirectory(prefix="kiosk-selftest-") as runtime, \
            build.build(spec, Path(runtime), wait=0) as devices:
        reports = [_check(devices, name) for name in wanted]
        return [r for r in reports if r is not None]


def _selftest(app: App) -> int:
    wanted = list(dict.fromkeys(app.args.devices)) or list(DEVICES)
    reports = run(app, wanted)
    ok = selftest.overall(reports)
    if app.json:
        app.emit_json({"ok": ok, "devices": [r.as_dict() for r in reports]})
    else:
        for report in reports:
            mark = "✔" if report.ok else "✘"
            app.line(f"{mark} {app.t(f'selftest.device.{report.device}')}  {report.where}")
            for check in report.checks:
                sign = "✔" if check.ok else "✘"
                detail = (app.t(check.detail_key, **check.detail_params) if check.detail_key
                          else check.detail)
                kind, _, part = check.name.partition(":")
                label = app.t(f"selftest.check.{kind}") + (f" {part}" if part else "")
                app.line(f"    {sign} {label}: {detail}  ({check.seconds:.2f} s)")
                if check.hint:
                    app.line("      → " + app.t(check.hint, **check.hint_params))
        app.say("selftest.summary_ok" if ok else "selftest.summary_failed",
                passed=sum(r.ok for r in reports), total=len(reports))
    return exitcodes.OK if ok else exitcodes.REFUSED
