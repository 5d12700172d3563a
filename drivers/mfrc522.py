"""NXP MFRC522 contactless reader IC (ISO/IEC 14443 A, MIFARE Classic) over SPI.

The driver takes an open SPI object with the ``spidev.SpiDev`` interface (``xfer2(list[int])
-> list[int]``, mode 0, up to 10 MHz) and, optionally, the NRSTPD reset line as an object with
gpiozero's ``DigitalOutputDevice`` interface (``on()``/``off()``), so the reset goes through
the GPIO layer. It never opens a device path and imports neither spidev nor RPi.GPIO.

What the driver relies on, with the MFRC522 datasheet (Rev. 3.9) sections:

- SPI address byte (8.1.2.3): bit 7 = 1 to read, address in bits 6..1, bit 0 = 0. One transfer
  reads several registers (MISO answers each address with a byte's delay) or writes several
  values to one register (the FIFO).
- Every wait ends by the chip's own timer (TAuto: the timer starts when transmission ends and
  TimerIRq says "nobody answered") and, as a backstop, by a monotonic deadline of at least
  ``timeout`` seconds; no loop runs unbounded.
- CRC_A is computed by the chip's coprocessor (CalcCRC, preset 0x6363 via ModeReg); the
  software :func:`drivers.iso14443a.crc_a` is there for tests and the simulator.

Not thread-safe: one worker thread owns one reader (DESIGN.md 3a).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from drivers import iso14443a as iso
from drivers.errors import (
    DeviceGone,
    DeviceStatusError,
    DeviceTimeout,
    FrameError,
    NoTag,
    SelfTestFailed,
    TagWriteError,
)
from drivers.iso14443a import Card

__all__ = ["MFRC522", "SELF_TEST_REFERENCE", "VERSIONS", "Card"]

# Registers (datasheet 9.2).
COMMAND, COM_IRQ, DIV_IRQ, ERROR, STATUS2 = 0x01, 0x04, 0x05, 0x06, 0x08
FIFO_DATA, FIFO_LEVEL, CONTROL, BIT_FRAMING, COLL = 0x09, 0x0A, 0x0C, 0x0D, 0x0E
MODE, TX_MODE, RX_MODE, TX_CONTROL, TX_ASK = 0x11, 0x12, 0x13, 0x14, 0x15
CRC_RESULT_H, CRC_RESULT_L, MOD_WIDTH = 0x21, 0x22, 0x24
T_MODE, T_PRESCALER, T_RELOAD_H, T_RELOAD_L = 0x2A, 0x2B, 0x2C, 0x2D
AUTO_TEST, VERSION = 0x36, 0x37

# Commands (datasheet 10.3).
IDLE, MEM, CALC_CRC, TRANSCEIVE, MF_AUTHENT, SOFT_RESET = 0x00, 0x01, 0x03, 0x0C, 0x0E, 0x0F

POWER_DOWN = 0x10  # CommandReg
RX_IRQ, IDLE_IRQ, TIMER_IRQ = 0x20, 0x10, 0x01  # ComIrqReg; bit 7 (Set1) is write-only
CRC_IRQ = 0x04  # DivIrqReg
WR_ERR, TEMP_ERR, BUFFER_OVFL, COLL_ERR = 0x80, 0x40, 0x10, 0x08  # ErrorReg
CRC_ERR, PARITY_ERR, PROTOCOL_ERR = 0x04, 0x02, 0x01
MF_CRYPTO1_ON = 0x08  # Status2Reg
FLUSH_BUFFER, START_SEND = 0x80, 0x80
VALUES_AFTER_COLL, COLL_POS_NOT_VALID = 0x80, 0x20  # CollReg
ANTENNA_ON = 0x03  # TxControlReg: Tx1RFEn | Tx2RFEn
FIFO_SIZE = 64

# 13.56 MHz / (2 * 169 + 1) = 40 kHz: one timer tick is 25 us (datasheet 8.5).
PRESCALER = 0x0A9
TICKS_PER_MS = 40
SHORT_MS = 5  # REQA, anticollision, SELECT, HLTA: cards answer within about 0.1 ms
MIFARE_MS = 25  # authentication, READ, WRITE (a write waits for the card's EEPROM)
POLL_S = 0.0002
RESET_PULSE_S = 0.001  # datasheet 8.8.1 asks for 100 ns low on NRSTPD
STARTUP_S = 0.05  # crystal start-up plus 37.74 us (8.8.2); generous like other drivers
RESET_BUDGET_S = 0.15

VERSIONS = {
    0x91: "MFRC522 v1.0",
    0x92: "MFRC522 v2.0",
    0x88: "FM17522 (clone)",
    0x89: "FM17522E (clone)",
    0x12: "clone 0x12",
    0xB2: "clone 0xB2",
}

# The FIFO after the digital self-test, datasheet 16.1.1 ("Self test"), for the two versions
# the datasheet covers. Clones produce other bytes; see MFRC522.self_test.
SELF_TEST_REFERENCE = {
    0x91: bytes.fromhex(
        "00C637D532B7575CC2D87C4DD970C77310E6D2AA5EA13E5A14AF3061C970DB2E"
        "642272B5BD65F4EC22BCD37235CDAA411FA7F35314DE7E02D90FB55E251D2979"
    ),
    0x92: bytes.fromhex(
        "00EB66BA57BF2395D0E30D3D27895CDE9D3BA700215B8982513AEB020CA50049"
        "7C844DB3CCD21B815D4876D5716121A986968338CF9D5B6DDC15BA3E7D953B2F"
    ),
}


class SpiDevice(Protocol):
    def xfer2(self, data: list[int]) -> list[int]: ...


class ResetLine(Protocol):
    def on(self) -> None: ...
    def off(self) -> None: ...


@dataclass(frozen=True)
class _Reply:
    data: bytes
    last_bits: int  # RxLastBits: valid bits in the last byte, 0 = all 8
    coll: int | None  # CollReg when ErrorReg said CollErr


class MFRC522:
    """One MFRC522 on an open SPI bus.

    ``timeout`` is the backstop for any wait on the chip, in seconds (the chip's own timer ends
    a normal "no answer" sooner). ``name`` appears in every error and in ``repr``. Call
    :meth:`init` before anything else. :meth:`close` switches the RF field off; it does not
    close ``spi`` or ``reset``, which belong to the caller.
    """

    def __init__(self, spi: SpiDevice, *, reset: ResetLine | None = None,
                 timeout: float = 0.05, name: str = "mfrc522 spi0.0") -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self.name = name
        self.timeout = timeout
        self._spi = spi
        self._reset = reset
        self._version: int | None = None
        self._timer_ms: int | None = None
        self._atqa = b""
        self._closed = False

    # -- SPI ---------------------------------------------------------------------------------

    def _xfer(self, data: list[int]) -> list[int]:
        if self._closed:
            raise DeviceGone(self.name, "the reader is closed")
        try:
            out = self._spi.xfer2(data)
        except OSError as exc:
            raise DeviceGone(self.name, f"SPI transfer failed: {exc}") from exc
        if len(out) != len(data):
            raise DeviceGone(self.name, f"SPI returned {len(out)} bytes for {len(data)}")
        return out

    def _read(self, *regs: int) -> bytes:
        out = self._xfer([0x80 | (r << 1) for r in regs] + [0])
        return bytes(b & 0xFF for b in out[1:])

    def _reg(self, reg: int) -> int:
        return self._read(reg)[0]

    def _write(self, reg: int, *values: int) -> None:
        self._xfer([reg << 1, *values])

    def _update(self, reg: int, set_bits: int = 0, clear_bits: int = 0) -> None:
        self._write(reg, (self._reg(reg) | set_bits) & ~clear_bits & 0xFF)

    # -- the chip ----------------------------------------------------------------------------

    def init(self) -> int:
        """Reset the chip (hard through the reset line if given, else SoftReset), set the timer,
        100 % ASK and the CRC preset, switch the antenna on. Returns VersionReg.

        Raises DeviceGone if the chip does not answer on SPI (VersionReg 0x00 or 0xFF, or a
        register that does not read back as written): a loose wire or no power.
        """
        self._reset_chip()
        version = self.version()
        if version in (0x00, 0xFF):
            self._gone(f"VersionReg reads 0x{version:02X}")
        self._version = version
        self._write(TX_MODE, 0x00)  # 106 kBd, no hardware CRC: the driver adds CRC_A itself
        self._write(RX_MODE, 0x00)
        self._write(MOD_WIDTH, 0x26)
        self._write(T_MODE, 0x80 | (PRESCALER >> 8))  # TAuto: timer starts when sending ends
        self._write(T_PRESCALER, PRESCALER & 0xFF)
        self._timer_ms = None
        self._set_timer(MIFARE_MS)
        self._write(TX_ASK, 0x40)  # Force100ASK, as ISO 14443 A needs
        self._write(MODE, 0x3D)  # CRCPreset = 01: 0x6363, the CRC_A preset
        self._update(COLL, clear_bits=VALUES_AFTER_COLL)  # bits after a collision read as 0
        if self._read(T_PRESCALER, MODE) != bytes((PRESCALER & 0xFF, 0x3D)):
            self._gone("registers do not read back as written")
        self.antenna(True)
        return version

    def _reset_chip(self) -> None:
        if self._reset is not None:
            self._reset.off()
            time.sleep(RESET_PULSE_S)
            self._reset.on()
            time.sleep(STARTUP_S)
        else:
            self._write(COMMAND, SOFT_RESET)
        self._wait_powered_up("the reset")

    def _wait_powered_up(self, what: str) -> None:
        time.sleep(0.001)
        deadline = time.monotonic() + max(self.timeout, RESET_BUDGET_S)
        while self._reg(COMMAND) & POWER_DOWN:  # set while the oscillator starts up
            if time.monotonic() >= deadline:
                self._stuck(what)
            time.sleep(0.001)

    @property
    def chip(self) -> str | None:
        """What VersionReg said at :meth:`init` ("MFRC522 v2.0", "FM17522 (clone)", ...)."""
        if self._version is None:
            return None
        return VERSIONS.get(self._version, f"unknown version 0x{self._version:02X}")

    def version(self) -> int:
        """VersionReg: 0x91 = v1.0, 0x92 = v2.0; clones report 0x88, 0x89, 0x12 or 0xB2."""
        return self._reg(VERSION)

    def antenna(self, on: bool) -> None:
        """Switch the 13.56 MHz field on or off (off resets every card in the field)."""
        if on:
            self._update(TX_CONTROL, set_bits=ANTENNA_ON)
        else:
            self._update(TX_CONTROL, clear_bits=ANTENNA_ON)

    def self_test(self) -> None:
        """Run the digital self-test of datasheet 16.1.1 and re-initialise the chip.

        The 64 FIFO bytes must equal the datasheet's reference for the chip's version; raises
        SelfTestFailed naming the first differing byte. Clones (no published reference) get a
        functional test instead: the coprocessor must compute the CRC_A check value 0xBF05.
        """
        version = self.version()
        reference = SELF_TEST_REFERENCE.get(version)
        if reference is None:
            if version in (0x00, 0xFF):
                self._gone(f"VersionReg reads 0x{version:02X}")
            got = self.crc_a(b"123456789")
            if got != iso.crc_a(b"123456789"):
                raise SelfTestFailed(self.name, f"CRC coprocessor gave {got.hex()} for "
                                     "'123456789', not 05bf", version=f"0x{version:02X}")
            return
        result = self._run_self_test()
        self.init()  # the self-test leaves the chip in test mode with the antenna off
        if len(result) < FIFO_SIZE:
            raise SelfTestFailed(self.name, f"self-test gave {len(result)} of 64 bytes")
        for i, (got_byte, want) in enumerate(zip(result, reference, strict=True)):
            if got_byte != want:
                raise SelfTestFailed(
                    self.name, f"self-test byte {i} is 0x{got_byte:02X}, the datasheet "
                    f"(16.1.1) gives 0x{want:02X} for {VERSIONS[version]}", byte=i)

    def _run_self_test(self) -> bytes:
        self._write(COMMAND, SOFT_RESET)
        self._wait_powered_up("the soft reset")
        self._write(FIFO_LEVEL, FLUSH_BUFFER)
        self._write(FIFO_DATA, *bytes(25))
        self._write(COMMAND, MEM)  # the 25 zero bytes go to the internal buffer
        self._write(AUTO_TEST, 0x09)
        self._write(FIFO_DATA, 0x00)
        self._write(COMMAND, CALC_CRC)
        # CRCIRq is unreliable in self-test mode on some chips, so wait for the FIFO to fill.
        deadline = time.monotonic() + self.timeout
        level = 0
        while (level := self._reg(FIFO_LEVEL) & 0x7F) < FIFO_SIZE:
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        self._write(COMMAND, IDLE)
        return self._read(*[FIFO_DATA] * min(level, FIFO_SIZE))

    def crc_a(self, data: bytes) -> bytes:
        """CRC_A of ``data`` (at most 64 bytes) computed by the chip, low byte first."""
        if len(data) > FIFO_SIZE:
            raise ValueError(f"the FIFO holds 64 bytes, not {len(data)}")
        self._write(COMMAND, IDLE)
        self._write(DIV_IRQ, CRC_IRQ)  # Set2 = 0: clear CRCIRq
        self._write(FIFO_LEVEL, FLUSH_BUFFER)
        if data:
            self._write(FIFO_DATA, *data)
        self._write(COMMAND, CALC_CRC)
        deadline = time.monotonic() + self.timeout
        while True:
            irq = self._reg(DIV_IRQ)
            if irq == 0xFF:
                self._gone("DivIrqReg reads 0xFF")
            if irq & CRC_IRQ:
                break
            if time.monotonic() >= deadline:
                self._stuck("the CRC coprocessor")
            time.sleep(POLL_S)
        self._write(COMMAND, IDLE)
        return self._read(CRC_RESULT_L, CRC_RESULT_H)

    def _set_timer(self, ms: int) -> None:
        if ms != self._timer_ms:
            reload = ms * TICKS_PER_MS
            self._write(T_RELOAD_H, reload >> 8)
            self._write(T_RELOAD_L, reload & 0xFF)
            self._timer_ms = ms

    def _wait_irq(self, mask: int, timer_ms: int) -> int:
        """ComIrqReg once a bit of ``mask`` or TimerIRq (the card did not answer) is set."""
        deadline = time.monotonic() + max(self.timeout, 2 * timer_ms / 1000)
        while True:
            irq = self._reg(COM_IRQ)
            if irq == 0xFF:  # Set1 is write-only, so no real chip reads as 0xFF
                self._gone("ComIrqReg reads 0xFF")
            if irq & (mask | TIMER_IRQ):
                return irq
            if time.monotonic() >= deadline:
                self._stuck("the command")
            time.sleep(POLL_S)

    def _gone(self, why: str) -> None:
        raise DeviceGone(self.name, f"no sensible answer on SPI ({why}): check the wiring "
                         "(MISO, MOSI, SCK, SDA/CS), the 3.3 V supply and the reset line")

    def _stuck(self, what: str) -> None:
        version = self.version()
        if version in (0x00, 0xFF):
            self._gone(f"VersionReg reads 0x{version:02X}")
        raise DeviceTimeout(self.name, f"{what} did not finish within {self.timeout} s")

    def _check_errors(self, err: int) -> None:
        if err & TEMP_ERR:
            raise DeviceStatusError(self.name, "the chip overheated and switched the antenna "
                                    "off", status=err)
        bad = err & (WR_ERR | BUFFER_OVFL | CRC_ERR | PARITY_ERR | PROTOCOL_ERR)
        if bad:
            names = [n for bit, n in ((WR_ERR, "WrErr"), (BUFFER_OVFL, "BufferOvfl"),
                                      (CRC_ERR, "CRCErr"), (PARITY_ERR, "ParityErr"),
                                      (PROTOCOL_ERR, "ProtocolErr")) if bad & bit]
            raise FrameError(self.name, f"the card's reply was garbled ({', '.join(names)})",
                             error_reg=f"0x{err:02X}")

    def _transceive(self, frame: bytes, *, tx_last_bits: int = 0, rx_align: int = 0,
                    timer_ms: int = SHORT_MS) -> _Reply | None:
        """Send ``frame`` and return the card's reply, or None if nobody answered in time."""
        framing = (rx_align << 4) | tx_last_bits
        self._write(COMMAND, IDLE)
        self._write(COM_IRQ, 0x7F)  # Set1 = 0: clear every request bit
        self._write(FIFO_LEVEL, FLUSH_BUFFER)
        self._write(FIFO_DATA, *frame)
        self._write(BIT_FRAMING, framing)
        self._set_timer(timer_ms)
        self._write(COMMAND, TRANSCEIVE)
        self._write(BIT_FRAMING, framing | START_SEND)
        irq = self._wait_irq(RX_IRQ | IDLE_IRQ, timer_ms)
        if not irq & (RX_IRQ | IDLE_IRQ):
            return None
        err = self._reg(ERROR)
        # Collided bits also break parity, so with CollErr the collision is the news.
        self._check_errors(err & TEMP_ERR if err & COLL_ERR else err)
        level = self._reg(FIFO_LEVEL) & 0x7F
        if level > FIFO_SIZE:
            raise FrameError(self.name, f"FIFOLevelReg says {level} bytes; the FIFO holds 64")
        data = self._read(*[FIFO_DATA] * level) if level else b""
        last_bits = self._reg(CONTROL) & 0x07
        coll = self._reg(COLL) if err & COLL_ERR else None
        return _Reply(data, last_bits, coll)

    # -- ISO/IEC 14443-3 type A --------------------------------------------------------------

    def request(self, wakeup: bool = False) -> bytes | None:
        """Send REQA (or WUPA, which also wakes halted cards). Returns the ATQA, or None if no
        card answered. A collision in the ATQA still means cards are there."""
        reply = self._transceive(bytes([iso.WUPA if wakeup else iso.REQA]),
                                 tx_last_bits=iso.SHORT_FRAME_BITS)
        if reply is None:
            return None
        if len(reply.data) != 2 or reply.last_bits:
            raise FrameError(self.name, f"ATQA must be 16 bits, got {reply.data.hex()} "
                             f"(last byte {reply.last_bits or 8} bits)")
        self._atqa = reply.data
        return reply.data

    def select(self) -> Card:
        """Anticollision and SELECT through every cascade level (4-, 7- and 10-byte UIDs).

        Call after :meth:`request` answered. With several cards in the field, one is chosen
        by the collision bit (the one with a 1 there); halt it and request again for the next.
        Raises NoTag if the card left, FrameError if a reply was garbled (wrong BCC or CRC_A).
        """
        levels: list[bytes] = []
        for level in (1, 2, 3):
            uid_cln, sak = self._select_level(level)
            levels.append(uid_cln)
            if not sak & iso.SAK_CASCADE:
                break
        else:
            raise FrameError(self.name, "the card asks for a fourth cascade level")
        try:
            uid = iso.assemble_uid(levels)
        except ValueError as exc:
            raise FrameError(self.name, str(exc)) from None
        return Card(uid=uid, sak=sak, atqa=self._atqa)

    def _select_level(self, level: int) -> tuple[bytes, int]:
        known = bytearray(5)  # UID CLn and BCC as far as learnt
        known_bits = 0
        while known_bits < 32:  # every round learns at least one bit
            frame, tx_last = iso.anticollision_frame(level, bytes(known), known_bits)
            start = known_bits // 8
            reply = self._transceive(frame, tx_last_bits=tx_last, rx_align=known_bits % 8)
            if reply is None:
                raise NoTag(self.name, "the card left the field during anticollision",
                            status=TIMER_IRQ)
            if reply.coll is None:
                if len(reply.data) != 5 - start or reply.last_bits:
                    raise FrameError(self.name, f"anticollision reply {reply.data.hex()} has "
                                     "the wrong length")
                self._merge(known, reply.data, start, known_bits, 40)
                if iso.bcc(bytes(known[:4])) != known[4]:
                    raise FrameError(self.name, f"BCC of UID part {known[:4].hex()} is wrong")
                break
            if reply.coll & COLL_POS_NOT_VALID:
                raise FrameError(self.name, "collision outside the UID (RF noise?)")
            # CollPos counts FIFO bits from bit 0 of the first byte, RxAlign included
            # (as the MFRC631 datasheet states for its RxColl and NXP's reader library assumes).
            bit = start * 8 + ((reply.coll & 0x1F) or 32) - 1
            if not known_bits <= bit < 32:
                raise FrameError(self.name, f"collision at impossible bit {bit}")
            self._merge(known, reply.data, start, known_bits, bit)
            iso.set_bit(known, bit, 1)
            known_bits = bit + 1
        frame = iso.select_frame(level, bytes(known[:4]))
        reply = self._transceive(frame + self.crc_a(frame))
        if reply is None:
            raise NoTag(self.name, "the card left the field before SELECT", status=TIMER_IRQ)
        if reply.coll is not None or len(reply.data) != 3 or reply.last_bits:
            raise FrameError(self.name, f"SAK must be 24 bits, got {reply.data.hex()}")
        if self.crc_a(reply.data[:1]) != reply.data[1:]:
            raise FrameError(self.name, f"CRC_A of SAK {reply.data.hex()} is wrong")
        return bytes(known[:4]), reply.data[0]

    def _merge(self, known: bytearray, data: bytes, start: int, first: int, end: int) -> None:
        for i in range(first, end):
            j = i - start * 8
            if j >= len(data) * 8:
                raise FrameError(self.name, f"anticollision reply {data.hex()} is too short")
            iso.set_bit(known, i, iso.get_bit(data, j))

    def halt(self) -> None:
        """Send HLTA to the selected card and stop Crypto1. The card stays silent until it
        leaves the field or is woken by WUPA. Raises DeviceStatusError if it answers."""
        frame = bytes([iso.HLTA, 0x00])
        reply = self._transceive(frame + self.crc_a(frame))
        self.stop_crypto()
        if reply is not None:  # ISO 14443-3: any answer to HLTA means "not acknowledged"
            raise DeviceStatusError(self.name, "the card answered HLTA", status=reply.data[0]
                                    if reply.data else 0)

    def poll(self, wakeup: bool = False) -> Card | None:
        """REQA and SELECT: the card in the field, or None if there is none (or it left)."""
        if self.request(wakeup) is None:
            return None
        try:
            return self.select()
        except NoTag:
            return None

    # -- MIFARE Classic ----------------------------------------------------------------------

    def authenticate(self, card: Card, block: int, key: bytes, key_type: str = "A") -> None:
        """Authenticate the sector of ``block`` with a 6-byte key A or B (MFAuthent).

        Raises DeviceStatusError if the card does not accept: a wrong key, or the card left.
        """
        if len(key) != iso.KEY_SIZE or key_type not in ("A", "B") or not 0 <= block <= 255:
            raise ValueError("authenticate needs a block 0..255, a 6-byte key and type A or B")
        command = iso.MF_AUTH_KEY_A if key_type == "A" else iso.MF_AUTH_KEY_B
        self._write(COMMAND, IDLE)
        self._write(COM_IRQ, 0x7F)
        self._write(FIFO_LEVEL, FLUSH_BUFFER)
        self._write(FIFO_DATA, command, block, *key, *card.uid[-4:])
        self._write(BIT_FRAMING, 0x00)
        self._set_timer(MIFARE_MS)
        self._write(COMMAND, MF_AUTHENT)
        try:
            irq = self._wait_irq(IDLE_IRQ, MIFARE_MS)
        except DeviceTimeout:  # the chip is alive (else DeviceGone): the card never agreed
            irq = 0
        err, status2 = self._read(ERROR, STATUS2)
        if err & (TEMP_ERR | WR_ERR):
            self._check_errors(err)
        if not irq & IDLE_IRQ or not status2 & MF_CRYPTO1_ON:
            self._write(COMMAND, IDLE)
            raise DeviceStatusError(
                self.name, f"card {card.uid_hex} refused key {key_type} for block {block}: "
                "wrong key, or the card left the field", status=err, block=block)

    def stop_crypto(self) -> None:
        """Leave the authenticated state (clear MFCrypto1On) so a new card can be talked to."""
        self._update(STATUS2, clear_bits=MF_CRYPTO1_ON)

    def read_block(self, block: int) -> bytes:
        """The 16 bytes of ``block`` (its sector must be authenticated). Raises NoTag if the
        card left, DeviceStatusError on a NAK, FrameError if the CRC_A is wrong."""
        frame = bytes([iso.MF_READ, block])
        reply = self._transceive(frame + self.crc_a(frame), timer_ms=MIFARE_MS)
        if reply is None:
            raise NoTag(self.name, f"no answer to READ of block {block}: the card left the "
                        "field", status=TIMER_IRQ, block=block)
        if len(reply.data) == 1 and reply.last_bits == 4:
            raise DeviceStatusError(self.name, f"the card refused READ of block {block} (NAK)",
                                    status=reply.data[0] & 0x0F, block=block)
        if reply.coll is not None or len(reply.data) != 18 or reply.last_bits:
            raise FrameError(self.name, f"READ of block {block} returned {len(reply.data)} "
                             "bytes, not 16 + CRC_A", block=block)
        if self.crc_a(reply.data[:16]) != reply.data[16:]:
            raise FrameError(self.name, f"CRC_A of block {block} is wrong", block=block)
        return reply.data[:16]

    def write_block(self, block: int, data: bytes, *, sector_trailer: bool = False) -> None:
        """Write 16 bytes to ``block`` (its sector must be authenticated).

        Refuses block 0 (manufacturer data) and sector trailers unless ``sector_trailer`` is
        true; even then the access bits must be valid, since bad ones lock the sector for good.
        Raises TagWriteError if the card answers NAK, NoTag if it left (the block's content
        is then unknown).
        """
        if len(data) != iso.BLOCK_SIZE or not 1 <= block <= 255:
            raise ValueError("write_block needs a block 1..255 and 16 bytes")
        if iso.is_sector_trailer(block):
            if not sector_trailer:
                raise ValueError(f"block {block} is a sector trailer (keys and access bits)")
            if not iso.access_bits_valid(data):
                raise ValueError(f"the access bits in {data.hex()} would lock the sector")
        self._mifare_step(bytes([iso.MF_WRITE, block]), block)
        self._mifare_step(bytes(data), block)

    def _mifare_step(self, payload: bytes, block: int) -> None:
        reply = self._transceive(payload + self.crc_a(payload), timer_ms=MIFARE_MS)
        if reply is None:
            raise NoTag(self.name, f"no answer while writing block {block}: the card left the "
                        "field", status=TIMER_IRQ, block=block)
        if len(reply.data) != 1 or reply.last_bits != 4:
            raise FrameError(self.name, f"writing block {block}: expected a 4-bit ACK, got "
                             f"{reply.data.hex()}", block=block)
        if (reply.data[0] & 0x0F) != iso.MF_ACK:
            raise TagWriteError(self.name, f"the card refused writing block {block} (NAK)",
                                status=reply.data[0] & 0x0F, block=block)

    # -- library cards -----------------------------------------------------------------------

    def read_card_number(self, card: Card, block: int, key: bytes,
                         key_type: str = "A") -> str | None:
        """The library card number stored in ``block`` (see iso14443a.encode_card_number),
        or None if the block holds none (a blank or foreign card: its UID is its identity).
        """
        self.authenticate(card, block, key, key_type)
        try:
            data = self.read_block(block)
        finally:
            self.stop_crypto()
        try:
            return iso.decode_card_number(data)
        except ValueError:
            return None

    def write_card_number(self, card: Card, block: int, key: bytes, number: str,
                          key_type: str = "A") -> None:
        """Write a library card number to ``block``, read it back and compare.

        Returns only when the card holds the number. Any exception means it is not confirmed;
        TagWriteError when the card refused or read back something else.
        """
        data = iso.encode_card_number(number)
        if block == 0 or iso.is_sector_trailer(block):
            raise ValueError(f"block {block} cannot hold a card number")
        self.authenticate(card, block, key, key_type)
        try:
            self.write_block(block, data)
            back = self.read_block(block)
        finally:
            self.stop_crypto()
        if back != data:
            raise TagWriteError(self.name, f"block {block} reads back {back.hex()} after "
                                f"writing {data.hex()}", status=0, block=block)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Switch the RF field off. Idempotent; leaves ``spi`` and ``reset`` to the caller."""
        if self._closed:
            return
        try:
            if self._version is not None:
                self.antenna(False)
        except (DeviceGone, DeviceTimeout):
            pass  # the chip is gone already; closing must still succeed
        finally:
            self._closed = True

    def __enter__(self) -> MFRC522:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MFRC522 {self.name!r} {self.chip or 'not initialised'} {state}>"
