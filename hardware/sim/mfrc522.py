"""A simulated NXP MFRC522 at the SPI-register level, with virtual ISO 14443 A cards.

:class:`SimulatedMFRC522` has the ``xfer2()`` of ``spidev.SpiDev`` and answers the way the
chip does (datasheet Rev. 3.9): the SPI address byte, the 64-byte FIFO with its level and
overflow, the commands and their IRQ bits (Set1/Set2 write semantics), ErrorReg, the bit
framing (TxLastBits, RxAlign, RxLastBits), CollReg, Status2Reg's MFCrypto1On, the timer (TAuto,
prescaler, reload; it runs on the monotonic clock, so "no answer" takes as long as on a real
chip), the CRC coprocessor with its preset, SoftReset and the digital self-test, whose output is
the datasheet's reference for the version the chip claims.

On the RF side, :class:`VirtualCard` is a MIFARE Classic 1K (or any ISO 14443-3 A card) with
the ISO 14443-3 states IDLE, READY, ACTIVE, HALT and the MIFARE AUTHENTICATED state, bit-level
anticollision over 4-, 7- and 10-byte UIDs and 64 blocks of 16 bytes. Simplifications, stated
so nobody relies on them: MFAuthent checks the key against the sector trailer directly (both
sides are simulated, so there is no Crypto1 and the traffic after authentication is modelled in
plain text); access bits are kept but not enforced, except that a trailer with invalid access
bits locks its sector as on a real card and block 0 is read-only; hardware CRC on the air
(TxCRCEn/RxCRCEn) and data rates other than 106 kBd are not modelled.

Faults for tests and the demo: see :data:`FAULTS` and :meth:`SimulatedMFRC522.inject`.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from drivers import iso14443a as iso
from drivers.mfrc522 import SELF_TEST_REFERENCE
from hardware.sim.iso14443a import BLOCKS_1K, TRANSPORT_TRAILER, State, VirtualCard

__all__ = ["BLOCKS_1K", "FAULTS", "TRANSPORT_TRAILER", "SimulatedMFRC522", "State",
           "VirtualCard"]

LOG_SIZE = 1000  # the demo runs for days: keep the latest commands only

FAULTS = {
    "no_card": "cards in the field stop answering, as if the field were empty",
    "collision": "anticollision replies collide outside the UID (CollPosNotValid): RF noise",
    "leave_after_select": "the card leaves the field right after answering SELECT",
    "leave_after_auth": "the card leaves the field right after a successful authentication",
    "wrong_key": "authentication fails as with a wrong key",
    "crc": "card replies carry a wrong CRC_A",
    "garble": "one data bit of each card reply flips (its CRC_A no longer matches)",
    "parity": "receptions report a parity error",
    "miso_low": "MISO reads 0x00, as with a loose MISO wire or no supply",
    "miso_high": "MISO reads 0xFF, as with MISO floating high",
    "self_test": "the self-test output differs from the reference in byte 17",
}


class Sent(NamedTuple):
    """One entry of :attr:`SimulatedMFRC522.log`: a command the chip executed, with the frame
    it sent (for Transceive) and the valid bits of its last byte (0 = 8). MFAuthent entries
    hold the auth command, block and UID bytes but never the key."""

    command: str
    data: bytes = b""
    last_bits: int = 0


COMMANDS = {0x0: "Idle", 0x1: "Mem", 0x2: "GenerateRandomID", 0x3: "CalcCRC", 0x4: "Transmit",
            0x7: "NoCmdChange", 0x8: "Receive", 0xC: "Transceive", 0xE: "MFAuthent",
            0xF: "SoftReset"}
RESET = {0x01: 0x20, 0x02: 0x80, 0x04: 0x14, 0x0B: 0x08, 0x0E: 0xA0, 0x11: 0x3F, 0x14: 0x80,
         0x16: 0x10, 0x17: 0x84, 0x18: 0x84, 0x19: 0x4D, 0x1C: 0x62, 0x1F: 0xEB, 0x21: 0xFF,
         0x22: 0xFF, 0x24: 0x26, 0x26: 0x48, 0x27: 0x88, 0x28: 0x20, 0x29: 0x20, 0x36: 0x40}
CRC_PRESETS = (0x0000, 0x6363, 0xA671, 0xFFFF)
COMMAND, COM_IEN, DIV_IEN, COM_IRQ, DIV_IRQ, ERROR, STATUS1, STATUS2 = range(1, 9)
FIFO_DATA, FIFO_LEVEL, CONTROL, BIT_FRAMING, COLL = 0x09, 0x0A, 0x0C, 0x0D, 0x0E
MODE, TX_CONTROL, CRC_H, CRC_L, T_MODE, T_PRESCALER, T_RELOAD_H, T_RELOAD_L = (
    0x11, 0x14, 0x21, 0x22, 0x2A, 0x2B, 0x2C, 0x2D)
T_COUNTER_H, T_COUNTER_L, AUTO_TEST, VERSION = 0x2E, 0x2F, 0x36, 0x37
TX_IRQ, RX_IRQ, IDLE_IRQ, HI_ALERT_IRQ, LO_ALERT_IRQ, ERR_IRQ, TIMER_IRQ = (
    0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01)
CRC_IRQ, BUFFER_OVFL, COLL_ERR, PARITY_ERR, PROTOCOL_ERR, CRYPTO1_ON = 4, 0x10, 8, 2, 1, 8


class SimulatedMFRC522:
    """The chip on the other end of the SPI bus; pass it to the driver as its ``spi``.

    ``version`` is what VersionReg says (0x91, 0x92, or a clone's value); ``clock`` drives the
    timer. Not thread-safe, like the SPI bus it stands for.
    """

    def __init__(self, version: int = 0x92, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.version = version
        self.log: deque[Sent] = deque(maxlen=LOG_SIZE)
        self._clock = clock
        self._cards: list[VirtualCard] = []
        self._faults: dict[str, int | None] = {}
        self._buffer = bytearray(25)  # the internal buffer survives a soft reset
        self._random = random.Random(version)
        self._powered = True
        self._hard_reset()

    # -- the world around the chip -------------------------------------------------------

    @property
    def field(self) -> list[VirtualCard]:
        """The cards in the field now."""
        return list(self._cards)

    def place(self, card: VirtualCard) -> VirtualCard:
        """Put a card in the field (it powers up in IDLE if the antenna is on)."""
        card.power_off()
        self._cards.append(card)
        return card

    def remove(self, uid: bytes) -> VirtualCard:
        """Take the card with ``uid`` out of the field; raises KeyError if it is not there."""
        for card in self._cards:
            if card.uid == bytes(uid):
                self._cards.remove(card)
                card.power_off()
                return card
        raise KeyError(bytes(uid).hex())

    def inject(self, fault: str, times: int | None = None) -> None:
        """Inject a fault from :data:`FAULTS` for ``times`` occasions (SPI transfers for the
        MISO faults, replies or commands for the others), or until :meth:`clear_faults`."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self._faults[fault] = times

    def clear_faults(self) -> None:
        self._faults.clear()

    def nrstpd(self, high: bool) -> None:
        """Drive the NRSTPD pin: low powers the chip down (MISO reads 0x00), the rising edge
        resets it. Wire a reset line here to let the driver's hard reset reach the chip."""
        if high and not self._powered:
            self._hard_reset()
        self._powered = high

    @property
    def irq_pending(self) -> bool:
        """What the IRQ pin reports: an enabled interrupt request is set."""
        return bool(self._com_irq & self.regs[COM_IEN] & 0x7F
                    or self._div_irq & self.regs[DIV_IEN] & 0x14)

    def _fault(self, name: str) -> bool:
        if name not in self._faults:
            return False
        left = self._faults[name]
        if left is not None:
            if left <= 1:
                del self._faults[name]
            else:
                self._faults[name] = left - 1
        return True

    # -- SPI -----------------------------------------------------------------------------

    def xfer2(self, data: list[int]) -> list[int]:
        """One SPI transfer with CS held low: a read of several registers (MOSI: address
        bytes then 0x00) or a write of several bytes to one register (datasheet 8.1.2)."""
        data = list(data)
        if any(not isinstance(b, int) or not 0 <= b <= 255 for b in data):
            raise ValueError("SPI bytes are integers 0..255")
        out = [0] * len(data)
        if data and self._powered:
            self._tick()
            reg = (data[0] >> 1) & 0x3F
            if data[0] & 0x80:
                for i in range(len(data) - 1):
                    out[i + 1] = self._read((data[i] >> 1) & 0x3F)
            else:
                for value in data[1:]:
                    self._write(reg, value)
        if self._fault("miso_low"):
            return [0x00] * len(data)
        if self._fault("miso_high"):
            return [0xFF] * len(data)
        return out

    def _hard_reset(self) -> None:
        self._soft_reset()
        self._buffer[:] = bytes(25)

    def _soft_reset(self) -> None:
        self.regs = bytearray(64)
        for reg, value in RESET.items():
            self.regs[reg] = value
        self._com_irq, self._div_irq, self._error = 0x14, 0x00, 0x00
        self._command, self._fifo, self._rx_last_bits = 0, bytearray(), 0
        self._crc, self._crc_ready, self._timer_end = 0xFFFF, True, None
        self._antenna_changed()

    def _read(self, reg: int) -> int:
        if reg == COMMAND:
            return (self.regs[COMMAND] & 0x30) | self._command
        if reg == COM_IRQ:
            return self._com_irq & 0x7F
        if reg == DIV_IRQ:
            return self._div_irq & 0x7F
        if reg == ERROR:
            return self._error
        if reg == STATUS1:
            level = len(self._fifo)
            running = self._timer_end is not None
            return ((0x40 if self._crc == 0 else 0) | (0x20 if self._crc_ready else 0)
                    | (0x10 if self.irq_pending else 0) | (0x08 if running else 0)
                    | (0x02 if 64 - level <= self.regs[0x0B] else 0)
                    | (0x01 if level <= self.regs[0x0B] else 0))
        if reg == FIFO_DATA:
            return self._fifo.pop(0) if self._fifo else 0x00
        if reg == FIFO_LEVEL:
            return len(self._fifo)
        if reg == CONTROL:
            return 0x10 | self._rx_last_bits
        if reg in (CRC_H, CRC_L):
            return self._crc >> 8 if reg == CRC_H else self._crc & 0xFF
        if reg in (T_COUNTER_H, T_COUNTER_L):
            left = max(0.0, (self._timer_end or 0.0) - self._clock())
            ticks = min(0xFFFF, int(left / self._timer_tick()))
            return ticks >> 8 if reg == T_COUNTER_H else ticks & 0xFF
        if reg == VERSION:
            return self.version
        return self.regs[reg]

    def _write(self, reg: int, value: int) -> None:
        if reg == COMMAND:
            self.regs[COMMAND] = value & 0x30
            if (value & 0x0F) != 0x07:
                self._start(value & 0x0F)
        elif reg in (COM_IRQ, DIV_IRQ):
            old = self._com_irq if reg == COM_IRQ else self._div_irq
            new = old | (value & 0x7F) if value & 0x80 else old & ~value & 0x7F
            if reg == COM_IRQ:
                self._com_irq = new
            else:
                self._div_irq = new
        elif reg == FIFO_DATA:
            self._push([value])
            if self._command == 0x3 and not self._self_test_mode():
                self._calc_crc()
        elif reg == FIFO_LEVEL:
            if value & 0x80:
                self._fifo.clear()
                self._error &= ~BUFFER_OVFL
                self._alerts()
        elif reg == CONTROL:
            if value & 0x80:
                self._timer_end = None
            if value & 0x40:
                self._start_timer(force=True)
        elif reg == STATUS2:
            self.regs[STATUS2] = (self.regs[STATUS2] & value & CRYPTO1_ON) | (value & 0xC0)
        elif reg == BIT_FRAMING:
            self.regs[BIT_FRAMING] = value & 0x77
            if value & 0x80 and self._command == 0xC:
                self._transceive()
        elif reg not in (ERROR, STATUS1, FIFO_DATA, VERSION, CRC_H, CRC_L):
            self.regs[reg] = value
            if reg == TX_CONTROL:
                self._antenna_changed()

    def _push(self, data: bytes | list[int]) -> None:
        for byte in data:
            if len(self._fifo) >= 64:
                self._error |= BUFFER_OVFL
                self._com_irq |= ERR_IRQ
                break
            self._fifo.append(byte)
        self._alerts()

    def _alerts(self) -> None:
        level = len(self._fifo)
        if level <= self.regs[0x0B]:
            self._com_irq |= LO_ALERT_IRQ
        if 64 - level <= self.regs[0x0B]:
            self._com_irq |= HI_ALERT_IRQ

    def _antenna_changed(self) -> None:
        if not self.regs[TX_CONTROL] & 0x03:
            for card in self._cards:
                card.power_off()  # no field, no power: cards forget everything

    # -- commands ------------------------------------------------------------------------

    def _start(self, command: int) -> None:
        name = COMMANDS.get(command)
        if command not in (0x0, 0x4, 0xC, 0xE):  # these log with the frame they send
            self.log.append(Sent(name or f"unknown 0x{command:X}"))
        self._command = command
        if command == 0:
            return
        self._error = 0
        if name is None:  # an unknown command ends at once with IdleIRq (datasheet 10.3)
            self._finish()
        elif command == 0x1:
            if self._fifo:
                self._buffer[:] = bytes(self._fifo[:25]).ljust(25, b"\x00")
                del self._fifo[:25]
            else:
                self._push(self._buffer)
            self._finish()
        elif command == 0x2:
            self._buffer[:10] = bytes(self._random.randrange(256) for _ in range(10))
            self._finish()
        elif command == 0x3:
            self._crc = CRC_PRESETS[self.regs[MODE] & 0x03]
            if self._self_test_mode():
                self._self_test()
            else:
                self._calc_crc()
        elif command == 0x4:
            self._send(bytes(self._fifo))
            self._fifo.clear()
            self._com_irq |= TX_IRQ
            self._finish()
        elif command == 0xE:
            self._authenticate()
        elif command == 0xF:
            self._soft_reset()

    def _finish(self) -> None:
        self._command = 0
        self._com_irq |= IDLE_IRQ

    def _self_test_mode(self) -> bool:
        return (self.regs[AUTO_TEST] & 0x0F) == 0x09

    def _calc_crc(self) -> None:
        crc = self._crc
        for byte in self._fifo:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        self._fifo.clear()
        if self.regs[MODE] & 0x80:  # MSBFirst: the result comes out bit-reversed
            crc = int(f"{crc:016b}"[::-1], 2)
        self._crc, self._crc_ready = crc, True
        self._div_irq |= CRC_IRQ

    def _self_test(self) -> None:
        reference = SELF_TEST_REFERENCE.get(self.version)
        if reference is None:  # a clone: its own bytes, which the datasheet does not list
            reference = b"\x00" + hashlib.sha256(bytes([self.version])).digest() * 2
        output = bytearray(reference[:64])
        if bytes(self._buffer) != bytes(25) or bytes(self._fifo) != b"\x00":
            output = bytearray(hashlib.sha256(bytes(self._buffer + self._fifo)).digest() * 2)
        if self._fault("self_test"):
            output[17] ^= 0x01
        self._fifo[:] = output

    # -- the timer and the air -----------------------------------------------------------

    def _timer_tick(self) -> float:
        prescaler = ((self.regs[T_MODE] & 0x0F) << 8) | self.regs[T_PRESCALER]
        return (2 * prescaler + 1) / 13.56e6

    def _start_timer(self, force: bool = False) -> None:
        if force or self.regs[T_MODE] & 0x80:  # TAuto: starts when transmission ends
            reload = (self.regs[T_RELOAD_H] << 8) | self.regs[T_RELOAD_L]
            self._timer_end = self._clock() + (reload + 1) * self._timer_tick()

    def _tick(self) -> None:
        if self._timer_end is not None and self._clock() >= self._timer_end:
            self._com_irq |= TIMER_IRQ
            self._timer_end = None
            if self.regs[T_MODE] & 0x10:  # TAutoRestart
                self._start_timer(force=True)

    def _send(self, frame: bytes, last_bits: int = 0) -> list[tuple[VirtualCard, bytes, int]]:
        """Put a frame on the air; the replies of the cards that answer."""
        self.log.append(Sent(COMMANDS[self._command], frame, last_bits))
        nbits = len(frame) * 8 - ((8 - last_bits) % 8)
        if not self.regs[TX_CONTROL] & 0x03 or not frame or self._fault("no_card"):
            return []
        replies = []
        for card in list(self._cards):
            reply = card.receive(frame, nbits)
            if reply is not None:
                replies.append((card, *reply))
                if card.state == State.ACTIVE and self._fault("leave_after_select"):
                    self._cards.remove(card)
                    card.power_off()
        return replies

    def _transceive(self) -> None:
        framing = self.regs[BIT_FRAMING]
        rx_align, tx_last = (framing >> 4) & 0x07, framing & 0x07
        frame = bytes(self._fifo)
        self._fifo.clear()
        replies = self._send(frame, tx_last)
        self._com_irq |= TX_IRQ
        self._start_timer()
        if not replies:
            return  # the timer tells the host that nobody answered
        self._timer_end = None  # stops at the first received bit
        streams = [iso.to_bits(data, n) for _card, data, n in replies]
        length = max(len(s) for s in streams)
        bits, collision = [], None
        for i in range(length):
            column = {s[i] if i < len(s) else None for s in streams}
            if len(column) > 1 and collision is None:
                collision = i
            bits.append(0 if collision is not None and not self.regs[COLL] & 0x80
                        else max(b or 0 for b in column))
        if length > 16 and collision is None:  # frames guarded by a CRC_A or BCC
            if self._fault("crc"):
                bits[-1] ^= 1
            elif self._fault("garble"):
                bits[3] ^= 1
        if length > 16 and self._fault("collision"):
            collision = 40
        coll = 0x20
        if collision is not None:
            self._error |= COLL_ERR
            position = rx_align + collision + 1
            coll = (position & 0x1F) if position <= 32 else 0x20
        self.regs[COLL] = (self.regs[COLL] & 0x80) | coll
        if self._fault("parity"):
            self._error |= PARITY_ERR
        self._push(iso.from_bits(bits, rx_align))
        self._rx_last_bits = (rx_align + len(bits)) % 8
        self._com_irq |= RX_IRQ | (ERR_IRQ if self._error else 0)

    def _authenticate(self) -> None:
        payload = bytes(self._fifo)
        self._fifo.clear()
        if len(payload) != 12:
            self._error |= PROTOCOL_ERR
            self._com_irq |= ERR_IRQ
            return
        command, block, key, uid4 = payload[0], payload[1], payload[2:8], payload[8:12]
        self.log.append(Sent("MFAuthent", bytes([command, block]) + uid4))
        field_on = bool(self.regs[TX_CONTROL] & 0x03) and not self._fault("no_card")
        for card in self._cards if field_on else []:
            if card.state in (State.ACTIVE, State.AUTHENTICATED):
                wrong = self._fault("wrong_key")
                if card.authenticate(command, block, b"" if wrong else key, uid4):
                    self.regs[STATUS2] |= CRYPTO1_ON
                    self._finish()
                    if self._fault("leave_after_auth"):
                        self._cards.remove(card)
                        card.power_off()
                    return
        self._start_timer()  # the card stays silent; only the timer ends the command
