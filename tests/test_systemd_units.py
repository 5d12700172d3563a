"""The systemd units in systemd/: `systemd-analyze verify` with any warning failing, and the
daemon's exposure under `systemd-analyze security --offline=true` at most 2.5.

The units name programs of the Pi (/opt/library-kiosk/venv/bin/kiosk, cage, chromium), so
they are verified in a throwaway root that has systemd's own units and a stub for each
program the units start; systemd reads everything else from the unit files themselves.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted(p.name for p in (ROOT / "systemd").iterdir()
               if p.suffix in (".service", ".timer"))
ANALYZE = shutil.which("systemd-analyze")
MAX_EXPOSURE = 2.5


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert ANALYZE is not None, "systemd-analyze is missing: run scripts/setup"
    root = tmp_path_factory.mktemp("root")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system",
                    symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    programs = set()
    for name in UNITS:
        text = (ROOT / "systemd" / name).read_text(encoding="utf-8")
        shutil.copy(ROOT / "systemd" / name, units / name)
        programs |= set(re.findall(r"^Exec\w+=[-@:+!]*(/\S+)", text, re.M))
        programs |= set(re.findall(r"(?:cage -d -- )(/\S+)", text))
    for program in programs:
        stub = root / program.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    return root


def test_the_units_are_there() -> None:
    assert {"library-kiosk.service", "library-kiosk-ui.service",
            "library-kiosk-maintenance.service", "library-kiosk-maintenance.timer"} <= set(UNITS)


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_verifies_without_a_warning(fake_root: Path, unit: str) -> None:
    done = subprocess.run([ANALYZE, "verify", f"--root={fake_root}", unit],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_a_typo_in_a_unit_is_caught(fake_root: Path) -> None:
    """The check above can fail: a misspelt key is a warning, and a warning fails it."""
    broken = fake_root / "etc/systemd/system/broken-kiosk.service"
    text = (ROOT / "systemd/library-kiosk.service").read_text(encoding="utf-8")
    broken.write_text(text.replace("ProtectSystem=strict", "ProtectSytem=strict"))
    try:
        done = subprocess.run([ANALYZE, "verify", f"--root={fake_root}", broken.name],
                              capture_output=True, text=True, timeout=120)
    finally:
        broken.unlink()
    assert "Unknown key 'ProtectSytem'" in done.stdout + done.stderr


def test_the_daemon_is_exposed_at_most_2_5() -> None:
    done = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager",
                           str(ROOT / "systemd/library-kiosk.service")],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r"Overall exposure level for library-kiosk\.service: (\d+\.\d+)",
                      done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


def test_the_daemon_unit_is_notify_with_a_watchdog_and_only_the_kiosk_devices() -> None:
    text = (ROOT / "systemd/library-kiosk.service").read_text(encoding="utf-8")
    for line in ("Type=notify", "Restart=always", "DevicePolicy=closed",
                 "ProtectSystem=strict", "StateDirectory=library-kiosk",
                 "ConfigurationDirectory=library-kiosk"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    assert re.search(r"^WatchdogSec=\d+s$", text, re.M)
    allowed = set(re.findall(r"^DeviceAllow=(\S+)", text, re.M))
    assert allowed == {"char-gpiochip", "char-spidev", "char-ttyUSB", "char-ttyACM",
                       "char-usb", "char-lp"}
