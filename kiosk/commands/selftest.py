"""``kiosk selftest [DEVICE...] [--json]``: test the hardware, device by device.

When the daemon runs, the self-tests run inside it: each device is tested on its own worker,
whose polling pauses meanwhile, instead of a second process fighting the daemon for the
port. Without a daemon the command opens the devices itself. Without a config it tests the
simulated kiosk. Exit code 0 only if every check of every device passed.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hardware import build
from kiosk import exitcodes
from kiosk.app import App
from kiosk.control_client import daemon_for
from kiosk.daemon.selftests import DEVICES, check_device

# Every latch pulsed and every device asked: the lockers of a big wall take a while.
SELFTEST_WAIT_S = 300.0


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


def run(app: App, wanted: list[str]) -> list[dict[str, Any]]:
    """The reports (as :meth:`hardware.selftest.DeviceReport.as_dict`) of the ``wanted``
    devices the kiosk has, from the daemon when it runs."""
    client = daemon_for(app, db=False)
    if client is not None:
        with client:
            return client.request("selftest", devices=wanted, timeout=SELFTEST_WAIT_S)["devices"]
    spec = app.settings().hardware
    with tempfile.TemporaryDirectory(prefix="kiosk-selftest-") as runtime, \
            build.build(spec, Path(runtime), wait=0) as devices:
        reports = [check_device(devices, name) for name in wanted]
        return [r.as_dict() for r in reports if r is not None]


def _selftest(app: App) -> int:
    wanted = list(dict.fromkeys(app.args.devices)) or list(DEVICES)
    reports = run(app, wanted)
    ok = bool(reports) and all(r["ok"] for r in reports)
    if app.json:
        app.emit_json({"ok": ok, "devices": reports})
    else:
        for report in reports:
            mark = "✔" if report["ok"] else "✘"
            device = app.t(f"selftest.device.{report['device']}")
            app.line(f"{mark} {device}  {report['where']}")
            for check in report["checks"]:
                sign = "✔" if check["ok"] else "✘"
                detail = (app.t(check["detail_key"], **check["detail_params"])
                          if check["detail_key"] else check["detail"])
                kind, _, part = check["check"].partition(":")
                label = app.t(f"selftest.check.{kind}") + (f" {part}" if part else "")
                app.line(f"    {sign} {label}: {detail}  ({check['seconds']:.2f} s)")
                if check["hint"]:
                    app.line("      → " + app.t(check["hint"], **check["hint_params"]))
        app.say("selftest.summary_ok" if ok else "selftest.summary_failed",
                passed=sum(r["ok"] for r in reports), total=len(reports))
    return exitcodes.OK if ok else exitcodes.REFUSED
