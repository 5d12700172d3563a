"""scripts/install-pi: checked with shellcheck, and run for real into a throwaway root
(``--root``: the files laid out as on the Pi; users, packages and services are left alone
there and printed instead), twice (idempotent, an upgrade), then rolled back.

A full run on Raspberry Pi OS needs the Pi (apt, users, systemctl); that part is covered by
``--dry-run`` below, which prints every command without running any.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "install-pi"


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_shellcheck_finds_nothing_in_the_scripts() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck is not None, "shellcheck is missing: run scripts/setup"
    scripts = [SCRIPT, ROOT / "scripts/setup", ROOT / "scripts/test", ROOT / "scripts/demo",
               ROOT / ".ci/run"]
    done = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_install_upgrade_and_rollback_in_a_throwaway_root(tmp_path: Path) -> None:
    first = install("--root", str(tmp_path))
    assert first.returncode == 0, first.stderr
    opt = tmp_path / "opt/library-kiosk"
    venv = opt / "venv"
    release1 = venv.resolve().parent
    assert release1.parent == (opt / "releases").resolve()
    assert (release1 / "kiosk" / "cli.py").is_file()
    config = tmp_path / "etc/library-kiosk/kiosk.toml"
    assert (config.stat().st_mode & 0o777) == 0o640
    for unit in ("library-kiosk.service", "library-kiosk-ui.service",
                 "library-kiosk-maintenance.timer"):
        assert (tmp_path / "etc/systemd/system" / unit).is_file()
    assert (tmp_path / "etc/udev/rules.d/70-library-kiosk.rules").is_file()
    assert "(skipped under --root) systemctl enable --now library-kiosk.service" in first.stdout
    # The county edits its config; an upgrade must keep it.
    config.write_text(config.read_text() + "\n# edited by the county\n")
    time.sleep(1.1)  # releases are named by the second
    second = install("--root", str(tmp_path))
    assert second.returncode == 0, second.stderr
    release2 = venv.resolve().parent
    assert release2 != release1
    assert (opt / "previous").resolve() == release1
    assert "# edited by the county" in config.read_text()
    back = install("--root", str(tmp_path), "--rollback")
    assert back.returncode == 0, back.stderr
    assert venv.resolve().parent == release1 and not (opt / "previous").exists()
    again = install("--root", str(tmp_path), "--rollback")
    assert again.returncode == 1 and "no previous release" in again.stderr


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path: Path) -> None:
    done = install("--dry-run", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []
    assert "+ install -m 0644" in done.stdout and "apt-get install" in done.stdout


def test_dry_run_on_the_system_shows_the_real_steps() -> None:
    done = install("--dry-run")
    assert done.returncode == 0, done.stderr
    for step in ("apt-get install -y --no-install-recommends", "useradd --system",
                 "usermod -aG gpio,spi,dialout,lp library-kiosk",
                 "systemctl enable --now library-kiosk.service"):
        assert step in done.stdout, step


@pytest.mark.parametrize("bad", ["--frobnicate", "--root"])
def test_a_wrong_option_is_refused(bad: str) -> None:
    done = install(bad)
    assert done.returncode != 0 and done.stderr


def test_registration_without_a_key_file_says_how_to_create_it(tmp_path: Path) -> None:
    assert install("--root", str(tmp_path)).returncode == 0
    config = tmp_path / "etc/library-kiosk/kiosk.toml"
    key_file = tmp_path / "etc/library-kiosk/personal-data.key"
    create = "kiosk --config /etc/library-kiosk/kiosk.toml keys create --county-secret-file"
    # Registration off (the template): the key file is not mentioned.
    assert create not in install("--root", str(tmp_path), "--dry-run").stdout
    config.write_text(config.read_text() + "\n[desk]\nregistration = true\n")
    time.sleep(1.1)
    done = install("--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "personal-data key file /etc/library-kiosk/personal-data.key" in done.stdout
    assert create in done.stdout and "keys create --new-county" in done.stdout
    assert not key_file.exists()  # never made up by the installer
    dry = install("--root", str(tmp_path), "--dry-run")
    assert dry.returncode == 0 and create in dry.stdout
    # Once the technician has made it, nothing more is said.
    key_file.write_text("made by kiosk keys create\n")
    assert create not in install("--root", str(tmp_path), "--dry-run").stdout
