"""Payloads of FEIG's ISO 15693 host commands ([0xB0], [0xB1]) and reader commands, as pure
functions: request data the host sends and decoders for the reader's reply data.

Conventions a caller may rely on:

- A UID is 8 bytes, most significant byte first (``E0 04 01 ...`` for an NXP ICODE SLIX), the
  order in which FEIG readers send and expect it and in which UIDs are printed. (On the air the
  tag sends the least significant byte first; the reader turns it round.)
- Tag memory handed to and returned by these functions is in the tag's own order: byte 0 of
  block 0 first. FEIG readers in ISO host mode send each data block "MSB first", that is with
  the bytes of every block reversed relative to the tag's memory; :class:`BlockOrder` says
  which the reader does, and the block codecs here turn it round.

Decoders raise :class:`drivers.errors.FrameError` naming "FEIG frame" when a reply's data is
shorter or longer than its own counts say; the driver re-raises it with its own name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from drivers.errors import FrameError

# ISO 15693 host sub-commands of [0xB0]
INVENTORY = 0x01
STAY_QUIET = 0x02
READ_MULTIPLE_BLOCKS = 0x23
WRITE_MULTIPLE_BLOCKS = 0x24
SELECT = 0x25
RESET_TO_READY = 0x26
WRITE_AFI = 0x27
GET_SYSTEM_INFORMATION = 0x2B

# NXP ICODE SLIX custom commands, sent with [0xB1] and manufacturer code 0x04
NXP = 0x04
SET_EAS = 0xA2
RESET_EAS = 0xA3
EAS_ALARM = 0xA5

# MODE byte of addressed commands: bits 0-2 say how the tag is addressed, bit 3 (SEC) asks
# Read Multiple Blocks for each block's security status.
NON_ADDRESSED = 0x00
ADDRESSED = 0x01
SELECTED = 0x02
MODE_SEC = 0x08
# MODE byte of Inventory: bit 7 (MORE) asks for the rest of the last inventory's records after
# status 0x94; bit 4 (AFI) says an AFI byte follows and only tags of that family answer.
INVENTORY_MORE = 0x80
INVENTORY_AFI = 0x10

TR_TYPE_ISO15693 = 0x03
UID_LEN = 8
MAX_BLOCKS_PER_FRAME = 32  # readers move at most 128 bytes of 4-byte blocks per command


class BlockOrder(Enum):
    """How a reader puts a data block's bytes on the wire."""

    REVERSED = "reversed"  # FEIG ISO host mode: each block MSB first, i.e. byte 3, 2, 1, 0
    AS_STORED = "as-stored"  # byte 0 first, as the tag stores and sends them

    def wire(self, block: bytes) -> bytes:
        """A block in tag order as it goes on the wire (and back: the mapping is its own
        inverse)."""
        return block[::-1] if self is BlockOrder.REVERSED else bytes(block)


@dataclass(frozen=True)
class InventoryEntry:
    """One tag found by an inventory. ``uid`` most significant byte first."""

    uid: bytes
    dsfid: int
    tr_type: int = TR_TYPE_ISO15693


@dataclass(frozen=True)
class SystemInfo:
    """A tag's Get System Information answer. ``uid`` most significant byte first."""

    uid: bytes
    dsfid: int
    afi: int
    block_size: int
    block_count: int
    ic_ref: int

    @property
    def memory_size(self) -> int:
        return self.block_size * self.block_count


@dataclass(frozen=True)
class SoftwareVersion:
    """The reader's [0x65] answer. Fields follow the manuals; ``raw`` keeps every byte."""

    sw_rev: int  # two bytes: major, minor
    d_rev: int
    hw_type: int
    sw_type: int
    tr_types: int  # bit field of the transponder families the firmware supports
    raw: bytes

    @property
    def firmware(self) -> str:
        return f"{self.sw_rev >> 8}.{self.sw_rev & 0xFF}.{self.d_rev}"


def _malformed(detail: str, data: bytes) -> FrameError:
    return FrameError("FEIG frame", detail, received=data[:64].hex(" "))


def check_uid(uid: bytes) -> bytes:
    uid = bytes(uid)
    if len(uid) != UID_LEN:
        raise ValueError(f"an ISO 15693 UID has 8 bytes, got {len(uid)}: {uid.hex()}")
    return uid


def _byte(name: str, value: int) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must be 0..255, got {value!r}")
    return value


def _addressing(uid: bytes | None) -> bytes:
    """MODE byte and UID: addressed when a UID is given, else non-addressed."""
    if uid is None:
        return bytes([NON_ADDRESSED])
    return bytes([ADDRESSED]) + check_uid(uid)


# -- requests (the DATA of a [0xB0] or [0xB1] frame) -------------------------------------

def inventory_request(*, more: bool = False, afi: int | None = None) -> bytes:
    mode = (INVENTORY_MORE if more else 0) | (INVENTORY_AFI if afi is not None else 0)
    return bytes([INVENTORY, mode]) + (b"" if afi is None else bytes([_byte("afi", afi)]))


def read_blocks_request(uid: bytes | None, first: int, count: int, *,
                        security: bool = False) -> bytes:
    if not 1 <= count <= MAX_BLOCKS_PER_FRAME:
        raise ValueError(f"count must be 1..{MAX_BLOCKS_PER_FRAME}, got {count}")
    head = bytearray([READ_MULTIPLE_BLOCKS]) + _addressing(uid)
    if security:
        head[1] |= MODE_SEC
    return bytes(head) + bytes([_byte("first block", first), count])


def write_blocks_request(uid: bytes | None, first: int, data: bytes, block_size: int,
                         order: BlockOrder) -> bytes:
    if block_size < 1 or len(data) % block_size or not data:
        raise ValueError(f"{len(data)} bytes are not whole blocks of {block_size}")
    count = len(data) // block_size
    if count > MAX_BLOCKS_PER_FRAME:
        raise ValueError(f"at most {MAX_BLOCKS_PER_FRAME} blocks per request, got {count}")
    wire = b"".join(order.wire(data[i:i + block_size]) for i in range(0, len(data), block_size))
    return (bytes([WRITE_MULTIPLE_BLOCKS]) + _addressing(uid)
            + bytes([_byte("first block", first), count, block_size]) + wire)


def write_afi_request(uid: bytes | None, afi: int) -> bytes:
    return bytes([WRITE_AFI]) + _addressing(uid) + bytes([_byte("afi", afi)])


def system_info_request(uid: bytes | None) -> bytes:
    return bytes([GET_SYSTEM_INFORMATION]) + _addressing(uid)


def addressed_request(sub_command: int, uid: bytes) -> bytes:
    """Select, Reset to Ready, Stay Quiet: a sub-command, MODE addressed and the UID."""
    return bytes([sub_command, ADDRESSED]) + check_uid(uid)


def nxp_request(nxp_command: int, uid: bytes | None) -> bytes:
    """Data of a [0xB1] frame for an NXP custom command (Set/Reset EAS, EAS Alarm)."""
    return bytes([NXP, nxp_command]) + _addressing(uid)


# -- reply decoders -----------------------------------------------------------------------

def decode_inventory(data: bytes) -> list[InventoryEntry]:
    """Records of an Inventory reply (status 0x00 or 0x94): DATA-SETS, then per tag TR-TYPE,
    DSFID and UID."""
    if not data:
        raise _malformed("inventory reply without DATA-SETS", data)
    count, pos, entries = data[0], 1, []
    for _ in range(count):
        if pos >= len(data):
            raise _malformed(f"inventory reply says {count} tags but ends early", data)
        tr_type = data[pos]
        if tr_type != TR_TYPE_ISO15693:
            raise _malformed(f"transponder type 0x{tr_type:02X} is not ISO 15693; configure "
                             "the reader for ISO 15693 tags only", data)
        record = data[pos:pos + 2 + UID_LEN]
        if len(record) != 2 + UID_LEN:
            raise _malformed(f"inventory reply says {count} tags but ends early", data)
        entries.append(InventoryEntry(uid=bytes(record[2:]), dsfid=record[1], tr_type=tr_type))
        pos += len(record)
    if pos != len(data):
        raise _malformed(f"{len(data) - pos} bytes after {count} inventory records", data)
    return entries


def decode_blocks(data: bytes, order: BlockOrder) -> tuple[bytes, list[int], int]:
    """A Read Multiple Blocks reply: the memory in tag order, each block's security status
    byte, and the block size. Layout: DB-N, DB-SIZE, then DB-N times SEC-STATUS and DB."""
    if len(data) < 2:
        raise _malformed("read reply without DB-N and DB-SIZE", data)
    count, size = data[0], data[1]
    if size == 0 or len(data) != 2 + count * (size + 1):
        raise _malformed(f"read reply of {len(data)} bytes does not hold {count} blocks of "
                         f"{size} bytes", data)
    memory, security = bytearray(), []
    for i in range(count):
        start = 2 + i * (size + 1)
        security.append(data[start])
        memory += order.wire(data[start + 1:start + 1 + size])
    return bytes(memory), security, size


def decode_system_info(data: bytes) -> SystemInfo:
    """A Get System Information reply: DSFID, UID, AFI, MEM-SIZE (2 bytes), IC-REF.

    MEM-SIZE follows the reader's MSB-first rule: the first byte holds the block size less one
    (low 5 bits), the second the number of blocks less one.
    """
    if len(data) != 1 + UID_LEN + 1 + 2 + 1:
        raise _malformed(f"system information reply of {len(data)} bytes, expected 13", data)
    return SystemInfo(uid=bytes(data[1:9]), dsfid=data[0], afi=data[9],
                      block_size=(data[10] & 0x1F) + 1, block_count=data[11] + 1,
                      ic_ref=data[12])


def decode_software_version(data: bytes) -> SoftwareVersion:
    """[0x65] reply: SW-REV (2), D-REV, HW-TYPE, SW-TYPE, TR-TYPE (2), maybe more."""
    if len(data) < 7:
        raise _malformed(f"software version reply of {len(data)} bytes, expected 7 or more",
                         data)
    return SoftwareVersion(sw_rev=data[0] << 8 | data[1], d_rev=data[2], hw_type=data[3],
                           sw_type=data[4], tr_types=data[5] << 8 | data[6], raw=bytes(data))
