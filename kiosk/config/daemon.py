"""The ``[daemon]`` section: where ``kiosk run`` keeps its control socket and runtime files,
how often it polls the devices, how long a patron session may stay idle, and the watchdog.

Defaults follow the profile (see :func:`kiosk.config.settings.default_runtime_dir`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiosk.config.schema import Key, PerProfile, Section
from kiosk.config.settings import DaemonSettings, default_runtime_dir
from kiosk.config.types import Bool, Choice, Int, OptionalPath, PathType

_daemon = DaemonSettings()


def _check(values: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    warning, timeout = values.get("session_warning_s"), values.get("session_timeout_s")
    if warning is not None and timeout is not None and warning >= timeout:
        return [("session_warning_s", "daemon.config.warning_after_timeout",
                 {"warning": warning, "timeout": timeout})]
    return []


SECTION = Section("daemon", (
    Key("control_socket", PathType(),
        PerProfile(lambda profile: default_runtime_dir(profile) / "control.sock")),
    Key("runtime_dir", OptionalPath(), None),
    Key("session_timeout_s", Int(10, 3600), _daemon.session_timeout_s),
    Key("session_warning_s", Int(5, 3600), _daemon.session_warning_s),
    Key("card_poll_ms", Int(20, 2000), _daemon.card_poll_ms),
    Key("tag_poll_ms", Int(50, 5000), _daemon.tag_poll_ms),
    Key("printer_poll_ms", Int(200, 60_000), _daemon.printer_poll_ms),
    Key("watchdog", Bool(), _daemon.watchdog),
    Key("worker_stall_s", Int(2, 600), _daemon.worker_stall_s),
    Key("pin", Choice(("off", "if_set", "always")), _daemon.pin),
    Key("pin_attempts", Int(1, 10), _daemon.pin_attempts),
    Key("pin_lockout_min", Int(1, 1440), _daemon.pin_lockout_min),
), check=_check)


def build(values: Mapping[str, Any]) -> DaemonSettings:
    """The :class:`DaemonSettings` of a problem-free section's values."""
    return DaemonSettings(**values)
