"""Time as the kiosk records it.

A Raspberry Pi has no battery clock: after a power cut it may boot in 1970 or in last
week until NTP answers, if it ever does in a village. So every event records several kinds
of evidence (wall time, whether the kernel says NTP has synchronised it, the boot id and the
boot-time monotonic clock) and a hybrid logical clock (HLC) that is persisted with each event
and therefore never goes backwards, even across reboots with a wrong wall clock.

Wall time is evidence, not truth; durations and timeouts use the monotonic clock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

HLC_COUNTER_BITS = 16
_HLC_COUNTER_MASK = (1 << HLC_COUNTER_BITS) - 1


class Clock(Protocol):
    """What the cache needs to know about time. Implementations must be cheap to call."""

    def wall_ns(self) -> int: ...

    def monotonic_ns(self) -> int: ...

    def boot_id(self) -> str: ...

    def synchronised(self) -> bool: ...


@dataclass(frozen=True)
class Reading:
    """One reading of every clock, taken together for an event."""

    wall_ns: int
    monotonic_ns: int
    boot_id: str
    synchronised: bool

    def local_date(self, tz: ZoneInfo) -> date:
        return datetime.fromtimestamp(self.wall_ns / 1e9, tz).date()

    def wall_iso(self, tz: ZoneInfo) -> str:
        return datetime.fromtimestamp(self.wall_ns / 1e9, tz).isoformat(timespec="seconds")


def read(clock: Clock) -> Reading:
    return Reading(clock.wall_ns(), clock.monotonic_ns(), clock.boot_id(), clock.synchronised())


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only `status` is read. The trailing padding covers
    # the reserved ints and the larger layout of 64-bit time_t builds.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    ]


_TIME_ERROR = 5
_STA_UNSYNC = 0x0040


class SystemClock:
    """The real clocks of a Linux machine.

    ``synchronised()`` asks the kernel the same question systemd's ``NTPSynchronized``
    does (``adjtimex``: not TIME_ERROR and STA_UNSYNC clear); if the call is impossible the
    answer is "not synchronised", which only makes the kiosk more careful.
    """

    def __init__(self, boot_id_path: str = "/proc/sys/kernel/random/boot_id") -> None:
        self._boot_id_path = Path(boot_id_path)
        self._boot_id: str | None = None
        libc_name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None

    def wall_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def boot_id(self) -> str:
        if self._boot_id is None:
            try:
                self._boot_id = self._boot_id_path.read_text().strip()
            except OSError:
                # Without a boot id, monotonic readings cannot be compared across events;
                # say so rather than invent one that looks real.
                self._boot_id = "unknown"
        return self._boot_id

    def synchronised(self) -> bool:
        if self._libc is None:
            return False
        tx = _Timex()
        state = self._libc.adjtimex(ctypes.byref(tx))
        if state < 0:
            return False
        return state != _TIME_ERROR and not (tx.status & _STA_UNSYNC)

    def __repr__(self) -> str:
        return "<SystemClock>"


def hlc_next(previous: int, wall_ns: int) -> int:
    """The next hybrid logical clock value after ``previous`` at wall time ``wall_ns``.

    The value packs milliseconds in the high bits and a counter in the low 16 bits. It is
    strictly greater than ``previous`` whatever the wall clock says, and follows the wall
    clock when the wall clock is ahead.
    """
    physical = (wall_ns // 1_000_000) << HLC_COUNTER_BITS
    if physical > previous:
        return physical
    return previous + 1


def hlc_parts(hlc: int) -> tuple[int, int]:
    """(milliseconds since the epoch, counter) of an HLC value."""
    return hlc >> HLC_COUNTER_BITS, hlc & _HLC_COUNTER_MASK
