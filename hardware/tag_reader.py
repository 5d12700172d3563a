"""The book-tag reader role on a FEIG ISO Host reader, kept connected by a :class:`Link`.

The transport is opened here, from the configured URL (a device path, ``socket://``,
``spy://`` ...), with pyserial's exclusive lock so a second process cannot talk over the
daemon; the driver only ever gets the open port.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import serial

from drivers.feig import FeigReader
from hardware.link import Link, StateListener
from hardware.roles import TagInField, TagReader, TagSystemInfo
from hardware.specs import TagReaderSpec

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
T = TypeVar("T")


@dataclass(frozen=True)
class _Open:
    """A connected reader and the port this module opened for it (the driver does not own
    the port, so closing is done here)."""

    reader: FeigReader
    port: serial.SerialBase


class FeigTagReader(TagReader):
    """A FEIG reader at ``url`` (the simulator's path when the spec says ``sim``).

    ``start()`` connects (or keeps trying in the background); every role method then runs
    on the reader through the link, so an unplugged reader fails fast with DeviceOffline
    and is re-initialised by itself once it is back.
    """

    def __init__(self, spec: TagReaderSpec, url: str, *,
                 on_change: StateListener | None = None) -> None:
        self.spec = spec
        self.url = url
        self.name = f"tag reader {url}"
        self.link: Link[_Open] = Link(self.name, self._connect, self._disconnect,
                                      on_change=on_change)

    def __repr__(self) -> str:
        return f"<FeigTagReader {self.url} {'online' if self.link.online else 'offline'}>"

    def start(self, wait: float = 0.0) -> bool:
        return self.link.start(wait)

    def _connect(self) -> _Open:
        port = serial.serial_for_url(
            self.url, baudrate=self.spec.baudrate, parity=_PARITY[self.spec.parity],
            bytesize=serial.EIGHTBITS, stopbits=serial.STOPBITS_ONE,
            timeout=self.spec.timeout_ms / 1000, exclusive=True,
        )
        try:
            reader = FeigReader(port, address=self.spec.address,
                                timeout=self.spec.timeout_ms / 1000)
            # Proves the reader answers at this speed, and leaves every tag in a fresh state.
            reader.software_version()
            reader.rf_reset()
        except BaseException:
            port.close()
            raise
        return _Open(reader, port)

    @staticmethod
    def _disconnect(device: _Open) -> None:
        try:
            device.reader.close()
        finally:
            device.port.close()

    def _call(self, action: Callable[[FeigReader], T]) -> T:
        return self.link.call(lambda device: action(device.reader))

    def close(self) -> None:
        self.link.close()

    def describe(self) -> dict[str, object]:
        version = self._call(lambda r: r.software_version())
        return {"driver": "feig", "url": self.url, "firmware": version.firmware,
                "hardware_type": f"0x{version.hw_type:02X}",
                "software_type": f"0x{version.sw_type:02X}"}

    def inventory(self) -> list[TagInField]:
        return [TagInField(e.uid, e.dsfid) for e in self._call(lambda r: r.inventory())]

    def read_blocks(self, uid: bytes, first: int, count: int) -> bytes:
        return self._call(lambda r: r.read_blocks(uid, first, count))

    def write_blocks(self, uid: bytes, first: int, data: bytes) -> None:
        self._call(lambda r: r.write_blocks(uid, first, data))

    def system_info(self, uid: bytes) -> TagSystemInfo:
        info = self._call(lambda r: r.system_info(uid))
        return TagSystemInfo(info.uid, info.dsfid, info.afi, info.block_size, info.block_count)

    def write_afi(self, uid: bytes, afi: int) -> None:
        self._call(lambda r: r.write_afi(uid, afi))

    def set_eas(self, uid: bytes, on: bool) -> None:
        self._call(lambda r: r.set_eas(uid, on))

    def eas_alarm(self, uid: bytes) -> bool:
        return self._call(lambda r: r.eas_alarm(uid))

    def rf_reset(self) -> None:
        self._call(lambda r: r.rf_reset())
