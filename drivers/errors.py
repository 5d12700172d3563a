"""Errors of the device drivers.

One root, :class:`DriverError`, with a class per kind of trouble; leaf classes also inherit
the matching built-in exception. Every error names the device it happened on (``device``,
usually the driver's ``repr``) so a technician reading a log knows which cable to check,
and carries ``message_key``/``params`` for the message catalogue.
"""

from __future__ import annotations


class DriverError(Exception):
    """Root of every error raised by a driver."""

    message_key = "device.error"

    def __init__(self, device: str, detail: str, **params: object) -> None:
        super().__init__(f"{device}: {detail}")
        self.device = device
        self.detail = detail
        self.params = {"device": device, "detail": detail, **params}


class DeviceTimeout(DriverError, TimeoutError):
    """The device did not answer (completely) within the call's timeout."""

    message_key = "device.timeout"


class DeviceGone(DriverError, ConnectionError):
    """The transport failed: the device was unplugged, or its port closed under us."""

    message_key = "device.gone"


class FrameError(DriverError, ValueError):
    """A frame from the device was garbled: bad checksum, impossible length, truncated."""

    message_key = "device.frame"


class DeviceStatusError(DriverError):
    """The device answered properly, with a status that says the command failed.

    ``status`` is the device's own status code; ``params['status']`` is its hex text.
    """

    message_key = "device.status"

    def __init__(self, device: str, detail: str, status: int, **params: object) -> None:
        super().__init__(device, detail, status=f"0x{status:02X}", **params)
        self.status = status


class NoTag(DeviceStatusError, LookupError):
    """No tag or card answered in the field (or the addressed one has left it)."""

    message_key = "device.no_tag"


class TagWriteError(DeviceStatusError):
    """A write to a tag or card failed, or did not read back as written."""

    message_key = "device.write_failed"


class SelfTestFailed(DriverError):
    """A device's built-in self-test gave a result other than the expected one."""

    message_key = "device.selftest_failed"
