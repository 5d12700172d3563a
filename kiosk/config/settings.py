"""The kiosk's effective settings, as typed, validated data.

:func:`kiosk.config.load` builds a :class:`Settings` from a TOML file (or from a profile's
defaults when no file is given); everything else in the kiosk reads settings only from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from hardware.specs import HardwareSpec
from kiosk.config.desk import DeskSettings
from kiosk.config.sip2 import Sip2Settings
from sync.circulation import Identity
from sync.policy import OfflineLimits, Policy, Station

PROFILES = ("24h-space", "van", "sim")

# The sample county (see sync.sample) is the simulated world of the `sim` profile.
SIM_BRANCH = "CN-431121-0002"


def default_database_path(profile: str) -> Path:
    """Where the cache lives when the config does not say: the systemd StateDirectory on an
    installed kiosk, the user's state folder for the simulated one."""
    if profile != "sim":
        return Path("/var/lib/library-kiosk/kiosk.db")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "library-kiosk" / "kiosk.db"


def default_runtime_dir(profile: str) -> Path:
    """Where the daemon keeps its control socket and runtime files: systemd's
    ``RuntimeDirectory`` on an installed kiosk; a private folder of this user's for the
    simulated one (``$XDG_RUNTIME_DIR/library-kiosk``, else ``/tmp/library-kiosk-UID``), so
    a developer's demo and its ``kiosk sim ...`` commands find each other without a config."""
    if profile != "sim":
        return Path("/run/library-kiosk")
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return Path(base) / "library-kiosk"
    return Path(f"/tmp/library-kiosk-{os.getuid()}")


@dataclass(frozen=True)
class DeviceSettings:
    id: str = "sim-01"
    branch: str = SIM_BRANCH
    profile: str = "sim"
    timezone: str = "Asia/Shanghai"
    language: str = "zh-CN"


@dataclass(frozen=True)
class DatabaseSettings:
    path: Path = field(default_factory=lambda: default_database_path("sim"))


@dataclass(frozen=True)
class HubSettings:
    """The ``[hub]`` section: where the county hub is and how to talk to it. An empty
    ``url`` means no hub: sync is off, and ``kiosk sync`` says so."""

    url: str = ""
    token_file: Path | None = None
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    batch_size: int = 500
    page_size: int = 1000
    connect_timeout_ms: int = 5000
    read_timeout_ms: int = 30_000
    retry_initial_ms: int = 1000
    retry_max_s: int = 300
    retry_after_max_s: int = 3600
    sync_interval_s: int = 60
    probe_interval_s: int = 15

    @property
    def enabled(self) -> bool:
        return bool(self.url)


@dataclass(frozen=True)
class DaemonSettings:
    """The ``[daemon]`` section; defaults are the simulated kiosk's (see
    :func:`default_runtime_dir` for the other profiles).

    ``session_timeout_s``: a patron session with nothing happening for this long ends (a card
    left on the reader does not count as something happening); ``session_warning_s``: when
    the patron is warned. Poll intervals are how often each worker asks its device.
    ``worker_stall_s``: a device worker that has not come round its loop for this long is
    taken as hung, and the systemd watchdog is no longer fed. ``pin``: whether a card's
    holder types a PIN before lending (see :mod:`kiosk.daemon.pin`).
    """

    control_socket: Path = field(
        default_factory=lambda: default_runtime_dir("sim") / "control.sock")
    runtime_dir: Path | None = None  # None: the control socket's folder
    session_timeout_s: int = 60
    session_warning_s: int = 45
    card_poll_ms: int = 100
    tag_poll_ms: int = 150
    printer_poll_ms: int = 2000
    watchdog: bool = True
    worker_stall_s: int = 30
    pin: str = "off"
    pin_attempts: int = 3
    pin_lockout_min: int = 15

    @property
    def runtime_path(self) -> Path:
        """``runtime_dir`` as configured, else the control socket's folder."""
        return self.runtime_dir or self.control_socket.parent


@dataclass(frozen=True)
class UiSettings:
    """The ``[ui]`` section: the touchscreen's web server, served by the daemon.

    ``listen``/``port``: where the page is served; loopback only by default, since Chromium
    on the Pi's own screen is its one intended visitor. ``language``: what the idle screen
    starts in (``[device] language`` when empty). ``rating``: ask for a 1-5 rating after a
    session. ``speech``: offer spoken prompts (``espeak`` is the espeak-ng program).
    ``done_s``: how long the "thank you" screen stays before going back to idle.
    """

    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = 8080
    language: str = ""
    rating: bool = True
    speech: bool = True
    espeak: str = "espeak-ng"
    done_s: int = 20


# The [circulation] section is the library's policy itself: one dataclass, no copy to keep
# in step.
CirculationSettings = Policy
OfflineSettings = OfflineLimits


@dataclass(frozen=True)
class Settings:
    device: DeviceSettings = field(default_factory=DeviceSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    circulation: CirculationSettings = field(default_factory=CirculationSettings)
    hardware: HardwareSpec = field(default_factory=HardwareSpec)
    hub: HubSettings = field(default_factory=HubSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    desk: DeskSettings = field(default_factory=DeskSettings)
    sip2: Sip2Settings = field(default_factory=Sip2Settings)
    source: Path | None = None

    def policy(self) -> Policy:
        return self.circulation

    def identity(self, station: Station = Station.KIOSK) -> Identity:
        return Identity(
            device_id=self.device.id,
            branch=self.device.branch,
            timezone=ZoneInfo(self.device.timezone),
            station=station,
        )
