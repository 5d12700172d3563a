"""Driver for FEIG ISO 15693 readers in "ISO Host" mode (OBID i-scan / ID ISC.MR101, MR102,
LRM2500, CPR readers), over any pyserial-like port.

The driver never opens a device: the caller opens the port and hands it in, for example::

    port = serial.serial_for_url("/dev/serial/by-id/usb-FEIG_...", baudrate=38400,
                                 parity=serial.PARITY_EVEN, timeout=1)
    with FeigReader(port) as reader:
        for tag in reader.inventory():
            data = reader.read_blocks(tag.uid, 0, 8)

and stays responsible for closing it; :meth:`FeigReader.close` closes nothing it did not open.

What a caller may rely on:

- UIDs are 8 bytes, most significant byte first (``E0 04 01 ...``), as FEIG readers send them
  and as they are printed.
- Tag memory passed to :meth:`~FeigReader.write_blocks` and returned by
  :meth:`~FeigReader.read_blocks` is in the tag's own byte order: byte 0 of block 0 first.
  FEIG readers in ISO host mode put each block on the wire most significant byte first, that is
  reversed; the driver turns every block round (``block_order=BlockOrder.REVERSED``, the
  default). A reader configured to send blocks as stored takes ``BlockOrder.AS_STORED``.
- Every call either returns its result or raises a :class:`drivers.errors.DriverError` naming
  the reader: :class:`~drivers.errors.DeviceTimeout` when no complete reply came within
  ``timeout`` seconds, :class:`~drivers.errors.FrameError` for a garbled or truncated reply,
  :class:`~drivers.errors.DeviceGone` when the port failed (unplugged),
  :class:`~drivers.errors.NoTag`, :class:`~drivers.errors.TagWriteError` and
  :class:`~drivers.errors.DeviceStatusError` for the reader's status codes. After a timeout or
  a garbled frame the next call first resynchronises (it flushes the input and waits for the
  answer to a [0x52], which the reader sends after any late reply), so the driver stays
  usable. Replies are checked against their command (command byte, address, UID, block
  count, an acknowledgement carrying no data), so a reply that comes after its call timed out
  surfaces as a FrameError, never as the answer to a later command. Writes are still worth
  reading back: a reader may carry out a command whose reply the host gave up on.
- The driver offers no lock command of any kind: a locked AFI or EAS bit could never be
  changed again, and the kiosk flips both on every loan and return.
"""

from __future__ import annotations

import select
import threading
import time

from serial import SerialException

from drivers.errors import (
    DeviceGone,
    DeviceStatusError,
    DeviceTimeout,
    FrameError,
    NoTag,
    TagWriteError,
)
from drivers.feig_frames import (
    BROADCAST,
    Command,
    Frame,
    FrameParser,
    Status,
    build_frame,
    crc16,
    iso_error_text,
    status_text,
)
from drivers.feig_iso import (
    EAS_ALARM,
    MAX_BLOCKS_PER_FRAME,
    RESET_EAS,
    RESET_TO_READY,
    SELECT,
    SET_EAS,
    STAY_QUIET,
    BlockOrder,
    InventoryEntry,
    SoftwareVersion,
    SystemInfo,
    addressed_request,
    check_uid,
    decode_blocks,
    decode_inventory,
    decode_software_version,
    decode_system_info,
    inventory_request,
    nxp_request,
    read_blocks_request,
    system_info_request,
    write_afi_request,
    write_blocks_request,
)

try:  # pyserial lets termios.error through from reset_input_buffer() on a dead tty
    from termios import error as _TermiosError
except ImportError:  # pragma: no cover - not a POSIX system
    _TermiosError = OSError

PORT_ERRORS = (SerialException, OSError, _TermiosError)

__all__ = ["BlockOrder", "FeigReader", "InventoryEntry", "SoftwareVersion", "SystemInfo"]

_MAX_INVENTORY_PAGES = 64  # a reader that keeps saying "more data" beyond this is broken


class FeigReader:
    """One FEIG reader on an open port.

    ``address`` is the reader's bus address (COM-ADR); 0xFF reaches any reader. ``timeout`` is
    the longest one command may take, from sending the request to the last byte of the reply.
    ``char_timeout`` is the longest silence tolerated inside a reply before it counts as
    truncated (the readers send a frame's bytes back to back; USB adapters add some latency).
    ``advanced`` sends the advanced frame format instead of the standard one. Calls are
    serialised with a lock; the daemon drives each reader from one worker thread anyway.
    """

    def __init__(self, port, *, address: int = BROADCAST, timeout: float = 1.0,
                 block_order: BlockOrder = BlockOrder.REVERSED, advanced: bool = False,
                 char_timeout: float = 0.1) -> None:
        if not 0 <= address <= 0xFF:
            raise ValueError(f"bus address must be 0..255, got {address!r}")
        if timeout <= 0 or char_timeout <= 0:
            raise ValueError("timeouts must be positive")
        self._port = port
        self.address = address
        self.timeout = timeout
        self.char_timeout = char_timeout
        self.block_order = block_order
        self.advanced = advanced
        self._lock = threading.Lock()
        self._closed = False
        self._dirty = False  # the line may hold leftovers of a failed exchange

    # -- identity and lifetime -------------------------------------------------------------

    @property
    def port_name(self) -> str:
        name = getattr(self._port, "name", None) or getattr(self._port, "port", None)
        return str(name) if name else type(self._port).__name__

    def __repr__(self) -> str:
        return f"<FeigReader {self.port_name} addr 0x{self.address:02X}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop using the port. Idempotent; the port itself stays open (the caller owns it)."""
        self._closed = True

    def __enter__(self) -> FeigReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reader commands -------------------------------------------------------------------

    def ping(self) -> None:
        """[0x52] Baud Rate Detection: returns when the reader answers at this speed."""
        self._command(Command.BAUD_RATE_DETECTION, b"\x00", "baud rate detection")

    def software_version(self) -> SoftwareVersion:
        """[0x65] Get Software Version."""
        reply = self._command(Command.GET_SOFTWARE_VERSION, b"", "get software version")
        return self._decoded(decode_software_version, reply.data)

    def rf_reset(self) -> None:
        """[0x69] RF Reset: the field goes off for a few ms; every tag returns to ready."""
        self._command(Command.RF_RESET, b"", "RF reset")

    def rf_on(self, on: bool) -> None:
        """[0x6A] RF On/Off: switch the antenna field on or off."""
        self._command(Command.RF_ON_OFF, b"\x01" if on else b"\x00", "RF on/off")

    # -- ISO 15693 host commands -----------------------------------------------------------

    def inventory(self, afi: int | None = None) -> list[InventoryEntry]:
        """Every ISO 15693 tag in the field, once each; an empty list when there is none.

        With ``afi`` only tags of that application family answer (0x07 on the shelf, 0xC2
        on loan, in this project). Readers that hold more records than fit one reply answer
        0x94 "more data"; the driver asks for the rest until it has them all.
        """
        entries: list[InventoryEntry] = []
        more = False
        for _ in range(_MAX_INVENTORY_PAGES):
            reply = self._command(Command.ISO_HOST, inventory_request(more=more, afi=afi),
                                  "inventory", ok=(Status.OK, Status.MORE_DATA,
                                                   Status.NO_TRANSPONDER))
            if reply.status == Status.NO_TRANSPONDER:
                return entries
            entries += self._decoded(decode_inventory, reply.data)
            if reply.status == Status.OK:
                return entries
            more = True
        raise DeviceStatusError(repr(self), f"inventory: still 'more data' after "
                                f"{_MAX_INVENTORY_PAGES} replies", Status.MORE_DATA)

    def read_blocks(self, uid: bytes, first: int, count: int) -> bytes:
        """``count`` blocks from block ``first`` of the tag ``uid``, in the tag's byte order."""
        return b"".join(chunk for chunk, _ in self._read(uid, first, count, security=False))

    def block_security(self, uid: bytes, first: int, count: int) -> list[int]:
        """The security status byte of each block (bit 0 set: the block is locked)."""
        return [s for _, sec in self._read(uid, first, count, security=True) for s in sec]

    def _read(self, uid: bytes, first: int, count: int, *, security: bool):
        check_uid(uid)
        if count < 1 or first < 0 or first + count > 256:
            raise ValueError(f"blocks {first}..{first + count - 1} are not 0..255")
        for start in range(first, first + count, MAX_BLOCKS_PER_FRAME):
            n = min(MAX_BLOCKS_PER_FRAME, first + count - start)
            reply = self._command(Command.ISO_HOST,
                                  read_blocks_request(uid, start, n, security=security),
                                  f"read blocks {start}..{start + n - 1}", uid=uid)
            memory, sec, _size = self._decoded(decode_blocks, reply.data, self.block_order)
            if len(sec) != n:
                self._dirty = True
                raise FrameError(repr(self), f"asked for {n} blocks, the reply holds "
                                 f"{len(sec)}")
            yield memory, sec

    def write_blocks(self, uid: bytes, first: int, data: bytes, block_size: int = 4) -> None:
        """Write ``data`` (tag byte order, whole blocks) from block ``first`` of tag ``uid``.

        A write the tag refuses (locked block, not programmed) raises TagWriteError; the
        caller should read back what matters, since a tag leaving mid-write can leave some
        blocks written.
        """
        check_uid(uid)
        if block_size < 1 or not data or len(data) % block_size:
            raise ValueError(f"{len(data)} bytes are not whole blocks of {block_size}")
        per_frame = MAX_BLOCKS_PER_FRAME * block_size
        for offset in range(0, len(data), per_frame):
            chunk = data[offset:offset + per_frame]
            start = first + offset // block_size
            self._command(Command.ISO_HOST,
                          write_blocks_request(uid, start, chunk, block_size, self.block_order),
                          f"write blocks from {start}", uid=uid, write=True)

    def write_afi(self, uid: bytes, afi: int) -> None:
        """Write the tag's AFI (never locks it). Read it back with :meth:`system_info`: some
        tags answer OK to a write that did not stick."""
        self._command(Command.ISO_HOST, write_afi_request(uid, afi), f"write AFI 0x{afi:02X}",
                      uid=uid, write=True)

    def system_info(self, uid: bytes) -> SystemInfo:
        """Get System Information of tag ``uid``: DSFID, AFI, block size and count, IC ref."""
        reply = self._command(Command.ISO_HOST, system_info_request(uid),
                              "get system information", uid=uid)
        info = self._decoded(decode_system_info, reply.data)
        if info.uid != bytes(uid):
            self._dirty = True
            raise FrameError(repr(self), f"asked tag {bytes(uid).hex()}, tag {info.uid.hex()} "
                             "answered")
        return info

    def select(self, uid: bytes) -> None:
        """Put tag ``uid`` in the selected state (other tags leave it)."""
        self._command(Command.ISO_HOST, addressed_request(SELECT, uid), "select", uid=uid,
                      ack=True)

    def reset_to_ready(self, uid: bytes) -> None:
        self._command(Command.ISO_HOST, addressed_request(RESET_TO_READY, uid),
                      "reset to ready", uid=uid, ack=True)

    def stay_quiet(self, uid: bytes) -> None:
        """Tag ``uid`` stops answering inventories until an RF reset or reset to ready."""
        self._command(Command.ISO_HOST, addressed_request(STAY_QUIET, uid), "stay quiet",
                      uid=uid, ack=True)

    def set_eas(self, uid: bytes, on: bool) -> None:
        """NXP ICODE SLIX Set EAS / Reset EAS (never Lock EAS)."""
        command = SET_EAS if on else RESET_EAS
        self._command(Command.ISO_CUSTOM, nxp_request(command, uid),
                      "set EAS" if on else "reset EAS", uid=uid, write=True)

    def eas_alarm(self, uid: bytes) -> bool:
        """NXP EAS Alarm: True when the tag answers, i.e. its EAS bit is set. A tag with EAS
        off stays silent, exactly like an absent tag, so False means "no alarm from this
        UID"; check presence with :meth:`inventory` when that matters."""
        reply = self._command(Command.ISO_CUSTOM, nxp_request(EAS_ALARM, uid), "EAS alarm",
                              uid=uid, ok=(Status.OK, Status.NO_TRANSPONDER))
        return reply.status == Status.OK

    # -- the exchange ------------------------------------------------------------------------

    def _decoded(self, decode, *args):
        try:
            return decode(*args)
        except FrameError as exc:
            self._dirty = True
            extra = {k: v for k, v in exc.params.items() if k not in ("device", "detail")}
            raise FrameError(repr(self), exc.detail, **extra) from exc

    def _command(self, command: int, data: bytes, action: str, *, uid: bytes | None = None,
                 write: bool = False, ack: bool = False,
                 ok: tuple[int, ...] = (Status.OK,)) -> Frame:
        """One exchange; a status outside ``ok`` raises. ``write`` makes a refusal a
        TagWriteError; ``write`` and ``ack`` say an OK reply carries no data, so that a late
        reply to an earlier read is never taken for this command's acknowledgement."""
        reply = self._exchange(command, data)
        if reply.status not in ok:
            raise self._status_error(reply, action, uid, write)
        if (write or ack) and reply.data:
            self._dirty = True
            raise FrameError(repr(self), f"{action}: an acknowledgement carrying "
                             f"{len(reply.data)} data bytes (a late reply to an earlier "
                             "command?)")
        return reply

    def _status_error(self, reply: Frame, action: str, uid: bytes | None, write: bool):
        device, status = repr(self), reply.status
        where = f" (tag {bytes(uid).hex()})" if uid is not None else ""
        if status == Status.NO_TRANSPONDER:
            return NoTag(device, f"{action}{where}: no tag answered", status)
        if status == Status.ISO_ERROR and reply.data:
            code = reply.data[0]
            detail = f"{action}{where}: the tag said 0x{code:02X} ({iso_error_text(code)})"
            if not write:
                return DeviceStatusError(device, detail, status, iso_error=f"0x{code:02X}")
            # Write Multiple Blocks names the first block that failed (DB-ADR-E)
            extra = {"failed_block": reply.data[1]} if len(reply.data) > 1 else {}
            return TagWriteError(device, detail, status, iso_error=f"0x{code:02X}", **extra)
        detail = f"{action}{where}: reader status 0x{status:02X} ({status_text(status)})"
        if status == Status.WRITE_ERROR or (write and status == Status.ISO_ERROR):
            extra = {"failed_block": reply.data[0]} if reply.data else {}
            return TagWriteError(device, detail, status, **extra)
        return DeviceStatusError(device, detail, status)

    def _exchange(self, command: int, data: bytes) -> Frame:
        with self._lock:
            if self._closed:
                raise DeviceGone(repr(self), "the driver was closed")
            request = build_frame(self.address, command, data, advanced=self.advanced)
            try:
                if self._dirty:
                    self._resync()
                self._port.reset_input_buffer()
                self._port.write(request)
            except PORT_ERRORS as exc:
                raise self._gone(exc) from exc
            try:
                reply = self._receive(time.monotonic() + self.timeout)
            except (FrameError, DeviceTimeout):
                self._dirty = True
                raise
            if reply.command != command or (self.address != BROADCAST
                                            and reply.address != self.address):
                self._dirty = True
                raise FrameError(repr(self), f"reply to command 0x{reply.command:02X} from "
                                 f"address 0x{reply.address:02X} does not answer command "
                                 f"0x{command:02X}")
            return reply

    def _receive(self, deadline: float) -> Frame:
        parser = FrameParser("reply", repr(self))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                got = f", {parser.pending} bytes of it arrived" if parser.pending else ""
                raise DeviceTimeout(repr(self), f"no complete reply within {self.timeout:g} s"
                                    f"{got}", timeout=self.timeout)
            wait = min(left, self.char_timeout) if parser.pending else left
            try:
                chunk = self._read_some(parser.needed(), wait)
            except PORT_ERRORS as exc:
                raise self._gone(exc) from exc
            if chunk:
                frames = parser.feed(chunk)
                if frames:
                    return frames[0]
            elif parser.pending and wait < left:
                raise FrameError(repr(self), f"reply truncated: {parser.pending} bytes, then "
                                 f"silence for {self.char_timeout:g} s")

    def _read_some(self, need: int, wait: float) -> bytes:
        """Up to ``need`` bytes, waiting at most ``wait`` seconds for the first of them.

        The port's own timeout is left alone: pyserial reconfigures the tty to change it,
        which some ttys refuse once open (a pty rejects even an unchanged PARENB). A port
        with a file descriptor is waited on with select(); any other port (``loop://``)
        waits as long as its own timeout says, which should then be short.
        """
        fd = self._fileno()
        if fd is None:
            return self._port.read(need)
        ready, _, _ = select.select([fd], [], [], max(0.0, wait))
        if not ready:
            return b""
        # Readable with nothing waiting means the line hung up; read() then raises.
        return self._port.read(max(1, min(need, self._port.in_waiting)))

    def _fileno(self) -> int | None:
        try:
            return self._port.fileno()
        except (AttributeError, NotImplementedError, ValueError, OSError, SerialException):
            return None

    def _resync(self) -> None:
        """Bring the line back in step after a failed exchange.

        The reader answers commands in order, so after sending [0x52] every late reply to the
        failed command arrives before the [0x52] answer: everything up to that answer is
        discarded. Raises DeviceTimeout if the reader does not answer within ``timeout``.
        """
        self._port.reset_input_buffer()
        self._port.write(build_frame(self.address, Command.BAUD_RATE_DETECTION, b"\x00"))
        deadline = time.monotonic() + self.timeout
        seen = bytearray()
        while time.monotonic() < deadline:
            seen += self._read_some(64, deadline - time.monotonic())
            # the answer is LEN=6, COM-ADR, 0x52, STATUS, CRC: look for it anywhere, since
            # what comes before it may be the middle of a late frame
            for i in range(len(seen) - 5):
                if seen[i] == 6 and seen[i + 2] == Command.BAUD_RATE_DETECTION \
                        and crc16(seen[i:i + 6]) == 0:
                    self._port.reset_input_buffer()
                    self._dirty = False
                    return
            del seen[:-5]
        raise DeviceTimeout(repr(self), "no answer while resynchronising after a failed "
                            f"exchange ({self.timeout:g} s)", timeout=self.timeout)

    def _gone(self, exc: BaseException) -> DeviceGone:
        return DeviceGone(repr(self), f"the port failed ({exc}); unplugged?",
                          error=type(exc).__name__)
