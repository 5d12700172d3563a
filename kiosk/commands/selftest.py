"""``kiosk selftest [DEVICE...] [--json]``: test the hardware, device by device.

When the daemon runs, the self-tests run inside it: each device is tested on its own worker,
whose polling pauses meanwhile, instead of a second process fighting the daemon for the
port. No latch is released unless ``--latches`` is given (the doors pop open): without it,
the lockers' and the door's sensors are read and the report says the latches were not
tested. Without a daemon the command opens the devices itself. Without a config it tests the
simulated kiosk. Exit code 0 only if every check of every device passed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hardware import build
from kiosk import exitcodes
from kiosk.app import App
from kiosk.control_client import daemon_for
from kiosk.daemon.selftests import DEVICES, check_device

# Every latch pulsed (--latches) and every device asked: the lockers of a big wall take a while.
SELFTEST_WAIT_S = 300.0
# What may be named: the devices, and the link to the library system ([sip2]).
CHOICES = (*DEVICES, "sip2")


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("selftest", help=t("cli.help.selftest"),
                       description=t("cli.help.selftest"), epilog=t("cli.example.selftest"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    def device(name: str) -> str:
        if name not in CHOICES:
            raise argparse.ArgumentTypeError(
                t("selftest.unknown_device", name=name, devices=", ".join(CHOICES)))
        return name

    p.add_argument("devices", nargs="*", metavar="DEVICE", type=device,
                   help=t("cli.opt.selftest_devices", devices=", ".join(CHOICES)))
    p.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    p.add_argument("--latches", action="store_true", help=t("cli.opt.selftest_latches"))
    p.add_argument("--watch", action="store_true", help=t("cli.opt.selftest_watch"))
    p.add_argument("--interval", type=float, default=0.5, metavar="S",
                   help=t("cli.opt.selftest_interval"))
    p.add_argument("--rounds", type=int, default=0, metavar="N",
                   help=t("cli.opt.selftest_rounds"))
    p.set_defaults(handler=_selftest)


def run(app: App, wanted: list[str], latches: bool = False) -> list[dict[str, Any]]:
    """The reports (as :meth:`hardware.selftest.DeviceReport.as_dict`) of the ``wanted``
    devices the kiosk has, from the daemon when it runs. Latches are released only with
    ``latches`` (``--latches``); else the lockers' and the door's sensors are read."""
    client = daemon_for(app, db=False)
    if client is not None:
        with client:
            return client.request("selftest", devices=wanted, latches=latches,
                                  timeout=SELFTEST_WAIT_S)["devices"]
    spec = app.settings().hardware
    with tempfile.TemporaryDirectory(prefix="kiosk-selftest-") as runtime, \
            build.build(spec, Path(runtime), wait=0) as devices:
        reports = [check_device(devices, name, latches) for name in wanted]
        return [r.as_dict() for r in reports if r is not None]


# Devices the watch may ask again and again without side effects: the latches are left
# alone (each check would pop a door open).
QUIET = ("tag_reader", "card_reader", "printer", "entrance_reader")


def watch_states(app: App, wanted: list[str]) -> dict[str, tuple[bool, str]]:
    """One look at each wanted device: online or not, and why not. From the daemon's
    status when it runs (it watches every device anyway), else a quiet self-test."""
    client = daemon_for(app, db=False)
    if client is not None:
        with client:
            devices = client.request("status")["devices"]
        return {name: (bool(d["online"]), d.get("detail") or d.get("where") or "")
                for name, d in devices.items() if name in wanted}
    quiet = [name for name in wanted if name in QUIET]
    states = {}
    for report in run(app, quiet):
        failed = [c for c in report["checks"] if not c["ok"]]
        detail = report["where"]
        if failed:
            first = failed[0]
            detail = (app.t(first["hint"], **first["hint_params"]) if first["hint"]
                      else first["detail"])
        states[report["device"]] = (bool(report["ok"]), detail)
    return states


def _watch(app: App, wanted: list[str]) -> int:
    """Print each device's state, then a line whenever one changes, until Ctrl-C (or
    ``--rounds``): for wiggling cables. Exit code 0 when all were fine at the end."""
    seen: dict[str, tuple[bool, str]] = {}
    rounds = 0
    try:
        while True:
            states = watch_states(app, wanted)
            for name, (ok, detail) in states.items():
                if seen.get(name) != (ok, detail):
                    stamp = time.strftime("%H:%M:%S")
                    device = app.t(f"selftest.device.{name}")
                    if app.json:
                        app.emit_json({"at": stamp, "device": name, "ok": ok,
                                       "detail": detail})
                    else:
                        app.line(f"{stamp} {app.mark(ok)} {device}  {detail}")
                    app.out.flush()
            seen = states
            rounds += 1
            if app.args.rounds and rounds >= app.args.rounds:
                break
            time.sleep(max(0.1, app.args.interval))
    except KeyboardInterrupt:
        pass
    return exitcodes.OK if seen and all(ok for ok, _ in seen.values()) else exitcodes.REFUSED


def _selftest(app: App) -> int:
    wanted = list(dict.fromkeys(app.args.devices)) or list(CHOICES)
    if app.args.latches and app.args.watch:
        app.warn("selftest.latches_not_with_watch")
        return exitcodes.USAGE
    hardware = [name for name in wanted if name in DEVICES]
    if app.args.watch:
        return _watch(app, hardware)
    reports = run(app, hardware, latches=app.args.latches) if hardware else []
    if "sip2" in wanted and app.settings().sip2.enabled:
        from kiosk.sip2check import check_sip2

        reports.append(check_sip2(app.settings().sip2).as_dict())
    ok = bool(reports) and all(r["ok"] for r in reports)
    if app.json:
        app.emit_json({"ok": ok, "devices": reports})
    else:
        for report in reports:
            mark = app.mark(report["ok"])
            device = app.t(f"selftest.device.{report['device']}")
            app.line(f"{mark} {device}  {report['where']}")
            for check in report["checks"]:
                sign = app.mark(check["ok"])
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
