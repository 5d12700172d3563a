"""`kiosk selftest`: every device checked, failures named with what to do."""

from __future__ import annotations

import json
import time

import serial

from hardware import build, selftest
from hardware.sim.feig import FeigSimulator
from hardware.specs import CardReaderSpec, GpioFactory
from kiosk.cli import main


def run(capsys, *args):
    code = main(["--lang", "en", *args])
    return code, capsys.readouterr()


def write_config(tmp_path, url: str):
    path = tmp_path / "kiosk.toml"
    path.write_text(f'[device]\nid = "van-01"\nbranch = "CN-431121-0100"\nprofile = "van"\n'
                    f'[tag_reader]\nurl = "{url}"\ntimeout_ms = 300\n'
                    f'[card_reader]\nspi = "sim"\n[gpio]\nfactory = "mock"\n')
    return path


def test_the_simulated_kiosk_passes(capsys):
    code, out = run(capsys, "selftest")
    assert code == 0
    assert "book-tag reader" in out.out and "patron-card reader" in out.out
    assert "entrance card reader" in out.out
    assert "Self-test passed: 6/6" in out.out
    code, out = run(capsys, "selftest", "card_reader", "--json")
    data = json.loads(out.out)
    assert code == 0 and data["ok"] is True
    assert [d["device"] for d in data["devices"]] == ["card_reader"]
    checks = {c["check"]: c for c in data["devices"][0]["checks"]}
    assert checks["version"]["detail"] == "MFRC522 v2.0"
    assert checks["digital_self_test"]["ok"]


def test_a_missing_reader_fails_with_a_hint_and_skips_the_rest(capsys, tmp_path):
    config = write_config(tmp_path, str(tmp_path / "kiosk-tag-reader"))
    code, out = run(capsys, "--config", str(config), "selftest", "tag_reader", "--json")
    data = json.loads(out.out)
    assert code == 1 and data["ok"] is False
    checks = data["devices"][0]["checks"]
    assert checks[0]["check"] == "connect" and not checks[0]["ok"]
    assert checks[0]["hint"] == "selftest.hint.not_found"
    assert [c["hint"] for c in checks[1:]] == ["selftest.hint.skipped"] * 3
    code, out = run(capsys, "--config", str(config), "selftest", "tag_reader")
    assert "does not exist: check the USB cable" in out.out


def test_a_port_held_by_another_process_says_so(capsys, tmp_path):
    with FeigSimulator(tmp_path / "sim") as sim:
        holder = serial.serial_for_url(str(sim.path), exclusive=True)
        try:
            config = write_config(tmp_path, str(sim.path))
            code, out = run(capsys, "--config", str(config), "selftest", "tag_reader")
        finally:
            holder.close()
    assert code == 1
    assert "held by another process" in out.out and "systemctl stop library-kiosk" in out.out


def test_a_failing_chip_self_test_names_the_part(tmp_path):
    pins = build.pin_factory(GpioFactory.MOCK)
    reader, chip = build.card_reader(CardReaderSpec(), pins)
    reader.start(wait=2)
    chip.inject("self_test", times=1)
    report = selftest.check_card_reader(reader, "spi0.0")
    reader.close()
    pins.close()
    assert not report.ok
    failed = [c for c in report.checks if not c.ok]
    assert [c.name for c in failed] == ["digital_self_test"]
    assert failed[0].hint == "selftest.hint.replace"


def test_unknown_device_is_a_usage_error(capsys):
    try:
        main(["--lang", "en", "selftest", "toaster"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "no device called toaster" in capsys.readouterr().err


def test_printer_paper_out_and_a_jammed_locker_fail_with_their_hints(tmp_path):
    from hardware.specs import HardwareSpec

    with build.build(HardwareSpec(), tmp_path) as devices:
        devices.sims.printer.inject("paper_out")
        printer = selftest.check_printer(devices.printer, "ttyPRN0")
        devices.sims.locker_doors.inject("A02", "jammed")
        lockers = selftest.check_lockers(devices.lockers, "lockers", latches=True)
        door = selftest.check_door(devices.door, "entrance", latches=True)
    assert not printer.ok
    assert [(c.name, c.hint) for c in printer.checks if not c.ok] == [
        ("paper", "selftest.hint.paper_out")]
    assert not lockers.ok
    assert [(c.name, c.hint) for c in lockers.checks if not c.ok] == [
        ("latch:A02", "selftest.hint.jammed")]
    assert [c.ok for c in lockers.checks] == [True, False, True, True]  # the rest still tested
    assert door.ok


def _wait(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_without_latches_no_latch_is_released_and_the_sensors_are_read(tmp_path):
    from hardware.specs import HardwareSpec

    with build.build(HardwareSpec(), tmp_path) as devices:
        doors = devices.sims.locker_doors
        doors.open_by_hand("A03")  # someone left a slot open
        assert _wait(lambda: devices.lockers.is_open("A03"))
        lockers = selftest.check_lockers(devices.lockers, "lockers")
        door = selftest.check_door(devices.door, "entrance")
        events = {**doors.events, **devices.sims.entrance.events}
    assert all("energised" not in [e.what for e in history] for history in events.values())
    assert lockers.ok and door.ok  # an open door is said, but is not a broken device
    checks = {c.name: c for c in lockers.checks}
    assert list(checks) == ["sensor:A01", "sensor:A02", "sensor:A03", "sensor:A04", "latches"]
    assert checks["sensor:A01"].detail == "closed" and checks["sensor:A01"].hint is None
    assert checks["sensor:A03"].detail == "open"
    assert checks["sensor:A03"].hint == "selftest.hint.door_open"
    assert checks["latches"].hint == "selftest.hint.latches_not_tested"
    assert [c.name for c in door.checks] == ["sensor", "latches"]
    assert door.checks[-1].hint == "selftest.hint.latches_not_tested"


def test_the_command_releases_latches_only_with_the_option(capsys):
    code, out = run(capsys, "selftest", "lockers", "door")
    assert code == 0
    assert "door sensor A01: door closed" in out.out and "latch A01" not in out.out
    assert out.out.count("latches not tested: run kiosk selftest --latches while standing"
                         " at the lockers") == 2
    code, out = run(capsys, "selftest", "--latches", "lockers", "door", "--json")
    data = json.loads(out.out)
    assert code == 0 and data["ok"]
    names = [c["check"] for d in data["devices"] for c in d["checks"]]
    assert names == ["latch:A01", "latch:A02", "latch:A03", "latch:A04", "latch"]
    assert all(c["detail_key"] == "selftest.detail.opened"
               for d in data["devices"] for c in d["checks"])
    code, out = run(capsys, "selftest", "--latches", "--watch", "--rounds", "1")
    assert code == 2 and "--latches cannot be used with --watch" in out.err
