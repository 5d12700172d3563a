"""Device roles: what the kiosk asks of a card reader and a book-tag reader.

A role is an abstract class; a backend wraps one driver (and its transport) and implements
it. Backends MUST implement every abstract method; they MAY override the ones with a
default (which raise :class:`NotSupported`). Every method may raise the errors of
:mod:`drivers.errors` (each names the device) and :class:`DeviceOffline` while the device is
unplugged; none may block for longer than the backend's configured timeout.
Roles are context managers; ``close()`` is idempotent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType


class HardwareError(Exception):
    """Root of the hardware layer's own errors (drivers raise :class:`DriverError`)."""

    message_key = "device.error"

    def __init__(self, device: str, detail: str, **params: object) -> None:
        super().__init__(f"{device}: {detail}")
        self.device = device
        self.params = {"device": device, "detail": detail, **params}


class DeviceOffline(HardwareError, ConnectionError):
    """The device is unplugged or not answering; it is being reconnected in the background."""

    message_key = "device.offline"


class NotSupported(HardwareError, NotImplementedError):
    """This backend cannot do that (for example EAS on a reader without NXP commands)."""

    message_key = "device.not_supported"


class SecurityNotSet(HardwareError):
    """The security flag was written but did not read back as written: the gate would
    still alarm (or stay silent). The loan or return must not be reported as done."""

    message_key = "device.security_not_set"


@dataclass(frozen=True)
class TagInField:
    """An ISO 15693 tag seen by an inventory. ``uid`` is the 8-byte UID as ISO 15693 prints
    it (most significant byte, 0xE0, first)."""

    uid: bytes
    dsfid: int

    @property
    def uid_hex(self) -> str:
        return self.uid.hex().upper()


@dataclass(frozen=True)
class TagSystemInfo:
    uid: bytes
    dsfid: int | None
    afi: int | None
    block_size: int | None
    block_count: int | None


@dataclass(frozen=True)
class CardInField:
    """An ISO 14443A card: 4-, 7- or 10-byte UID, SAK and ATQA."""

    uid: bytes
    sak: int
    atqa: bytes

    @property
    def uid_hex(self) -> str:
        return self.uid.hex().upper()


class _Role(ABC):
    name: str

    @abstractmethod
    def close(self) -> None:
        """Release the device; idempotent."""

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """What the device says it is (model, firmware) — asks the device."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class TagReader(_Role):
    """Reads and writes ISO 15693 book tags on the pad (ISO 28560 data, AFI, EAS)."""

    @abstractmethod
    def inventory(self) -> list[TagInField]:
        """Every tag in the field now (empty list when none)."""

    @abstractmethod
    def read_blocks(self, uid: bytes, first: int, count: int) -> bytes:
        """``count`` blocks from block ``first``, in the tag's own byte order."""

    @abstractmethod
    def write_blocks(self, uid: bytes, first: int, data: bytes) -> None:
        """Write whole blocks from block ``first``; ``data`` is a multiple of the block size."""

    @abstractmethod
    def system_info(self, uid: bytes) -> TagSystemInfo:
        """The tag's DSFID, AFI and memory layout."""

    @abstractmethod
    def write_afi(self, uid: bytes, afi: int) -> None:
        """Write the AFI. Backends never offer Lock AFI: a locked AFI cannot be flipped
        again, and the security flag would be stuck for the book's life."""

    def set_eas(self, uid: bytes, on: bool) -> None:
        raise NotSupported(self.name, "EAS commands")

    def eas_alarm(self, uid: bytes) -> bool:
        raise NotSupported(self.name, "EAS commands")

    def rf_reset(self) -> None:
        """Switch the field off and on (tags forget their state)."""


class CardReader(_Role):
    """Reads patron cards; a card writer also writes library-card numbers."""

    @abstractmethod
    def poll(self) -> CardInField | None:
        """The card in the field now, or None."""

    @abstractmethod
    def read_card_number(self, card: CardInField) -> str | None:
        """The library-card number stored on the card (MIFARE Classic block), or None when
        the card carries none (the UID is then the card's identity)."""

    def write_card_number(self, card: CardInField, number: str) -> None:
        raise NotSupported(self.name, "writing cards")

    @abstractmethod
    def self_test(self) -> dict[str, object]:
        """Run the device's own self-test; raise :class:`drivers.errors.SelfTestFailed`."""


class DoorNotOpened(HardwareError, TimeoutError):
    """A latch was released but its door sensor never saw the door open within the bound:
    the latch may be jammed, the sensor wire cut, or nobody pushed the door."""

    message_key = "device.door_not_opened"


class PrinterProblem(HardwareError):
    """The printer cannot print now; ``params['problems']`` lists what its status said
    (paper_out, cover_open, offline, cutter_error, ...). Nothing was printed, or not all:
    the caller must report the receipt as not printed."""

    message_key = "device.printer_problem"


@dataclass(frozen=True)
class OpenResult:
    """A latch pulse that opened a door: when the sensor saw it open, after the pulse began."""

    name: str
    opened_after_s: float


class Locker(_Role):
    """A bank (or several) of locker slots, each a latch and a door sensor on GPIO.

    Backends MUST keep every latch released (locked) except during a bounded pulse, never
    energise more than the configured number of latches of one bank at once, and report a
    slot as opened only when its sensor saw the door open. ``close()`` leaves every latch in
    its safe (locked) state.
    """

    @property
    @abstractmethod
    def slots(self) -> list[str]:
        """Slot names, e.g. ``A01``."""

    @abstractmethod
    def open(self, slot: str, timeout: float | None = None) -> OpenResult:
        """Release ``slot``'s latch and wait for its sensor to see the door open. Raises
        :class:`DoorNotOpened` when it does not within ``timeout`` (the configured bound)."""

    @abstractmethod
    def is_open(self, slot: str) -> bool:
        """What the slot's (debounced) door sensor says now."""

    @abstractmethod
    def wait_closed(self, slot: str, timeout: float) -> bool:
        """Wait until the slot's door is closed; False if still open after ``timeout``."""


class Door(_Role):
    """The entrance door of a 24-hour space: a latch and a door sensor. Same rules as a
    locker slot; ``left_open`` says the door has stayed open longer than allowed."""

    @abstractmethod
    def open(self, timeout: float | None = None) -> OpenResult:
        """Release the latch and wait for the sensor to see the door open."""

    @abstractmethod
    def is_open(self) -> bool:
        """What the (debounced) sensor says now."""

    @abstractmethod
    def wait_closed(self, timeout: float) -> bool:
        """Wait until the door is closed; False if still open after ``timeout``."""

    @property
    @abstractmethod
    def left_open(self) -> bool:
        """The door has been open longer than the configured limit (an alarm state)."""


@dataclass(frozen=True)
class PrinterStatus:
    """A receipt printer's state from its real-time status (ESC/POS DLE EOT 1-4)."""

    online: bool
    cover_open: bool = False
    paper_near_end: bool = False
    paper_out: bool = False
    cutter_error: bool = False
    unrecoverable_error: bool = False
    autorecoverable_error: bool = False
    feed_button: bool = False

    @property
    def problems(self) -> list[str]:
        """What stops printing now, as names (empty when the printer can print)."""
        names = [name for name in ("cover_open", "paper_out", "cutter_error",
                                   "unrecoverable_error", "autorecoverable_error")
                 if getattr(self, name)]
        if not self.online and not names:
            names.append("offline")
        return names

    @property
    def ready(self) -> bool:
        return not self.problems


class ReceiptPrinter(_Role):
    """A receipt printer. ``print_receipt`` takes a document of the ESC/POS driver's items
    (text, QR code, feed, cut) and returns only when the printer took it with a good status;
    otherwise it raises (PrinterProblem, DeviceOffline or a driver error) and the caller
    reports the receipt as not printed: a receipt is never dropped silently."""

    @abstractmethod
    def status(self) -> PrinterStatus:
        """Ask the printer (DLE EOT)."""

    @abstractmethod
    def print_receipt(self, document: list[object]) -> object:
        """Print ``document``; raise if the printer cannot (see class docstring). Returns
        what the backend knows of the print (ESC/POS: which characters printed as 〓)."""
