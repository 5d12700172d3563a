"""What the simulated FEIG reader does with each request: the tags' answers, the reader's
status and reply data, and the modelled RF air time.

Requests are decoded here from the byte layouts in the FEIG manuals, independently of the
driver's encoders (drivers/feig_iso.py), so a layout mistake on one side shows up as a failing
test rather than cancelling out. Only :class:`~drivers.feig_iso.BlockOrder` and the frame layer
are shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from drivers.feig_frames import Command, Frame, Status
from hardware.sim import iso15693 as air

if TYPE_CHECKING:  # pragma: no cover
    from hardware.sim.feig import FeigSimulator

TR_TYPE_ISO15693 = 0x03  # 13.56 MHz, ISO 15693
RF_RESET_OFF_TIME = 6e-3  # the manuals: [0x69] switches the field off for about 6 ms

_ISO_KINDS = {0x01: "inventory", 0x02: "stay_quiet", 0x23: "read_blocks",
              0x24: "write_blocks", 0x25: "select", 0x26: "reset_to_ready",
              0x27: "write_afi", 0x2B: "system_info"}
_NXP_KINDS = {0xA2: "set_eas", 0xA3: "reset_eas", 0xA5: "eas_alarm"}
_READER_KINDS = {Command.BAUD_RATE_DETECTION: "ping", Command.GET_SOFTWARE_VERSION: "version",
                 Command.RF_RESET: "rf_reset", Command.RF_ON_OFF: "rf_on_off"}
# an EAS Alarm answer carries a 256-bit EAS sequence; the driver does not interpret it
EAS_SEQUENCE = bytes(range(0x10, 0x30))


@dataclass(frozen=True)
class Outcome:
    status: int
    data: bytes
    rf_seconds: float


def kind_of(frame: Frame) -> tuple[str, bytes | None]:
    """A name for the request (for fault targeting) and the UID it addresses, if any."""
    data = frame.data
    if frame.command == Command.ISO_HOST and data:
        addressed = len(data) >= 10 and data[1] & 0x07 == 0x01 and data[0] != 0x01
        return _ISO_KINDS.get(data[0], "iso_unknown"), bytes(data[2:10]) if addressed else None
    if frame.command == Command.ISO_CUSTOM and len(data) >= 2:
        addressed = len(data) >= 11 and data[2] & 0x07 == 0x01
        return _NXP_KINDS.get(data[1], "custom_unknown"), bytes(data[3:11]) if addressed else None
    return _READER_KINDS.get(frame.command, "unknown"), None


def execute(sim: FeigSimulator, frame: Frame, fault: str | None) -> Outcome:
    """Carry out ``frame`` on ``sim`` (its lock held) and say what the reader answers."""
    if frame.command == Command.ISO_HOST:
        return _iso_host(sim, frame.data, fault)
    if frame.command == Command.ISO_CUSTOM:
        return _iso_custom(sim, frame.data)
    if frame.command == Command.BAUD_RATE_DETECTION:
        return Outcome(Status.OK, b"", 0.0)
    if frame.command == Command.GET_SOFTWARE_VERSION:
        return Outcome(Status.OK, sim.version, 0.0)
    if frame.command == Command.RF_RESET:
        _everyone_ready(sim)
        return Outcome(Status.OK, b"", RF_RESET_OFF_TIME)
    if frame.command == Command.RF_ON_OFF and len(frame.data) == 1:
        sim.rf_on = bool(frame.data[0] & 0x01)
        if not sim.rf_on:
            _everyone_ready(sim)  # tags lose power
        return Outcome(Status.OK, b"", 0.0)
    return Outcome(Status.UNKNOWN_COMMAND, b"", 0.0)


def _everyone_ready(sim: FeigSimulator) -> None:
    for tag in sim.tags:
        tag.quiet = False
    sim.selected = None
    sim.pending_inventory = []


def _fail(code: int, request: int) -> Outcome:
    """The tag answered with ISO error ``code`` (response: flags, code, CRC)."""
    return Outcome(Status.ISO_ERROR, bytes([code]), air.exchange_time(request, 4))


def _target(sim: FeigSimulator, mode: int, uid: bytes) -> tuple[air.VirtualTag | None, int]:
    """The tag a request is for, or None with the reader status to answer."""
    if not sim.rf_on:
        return None, Status.NO_TRANSPONDER
    addressing = mode & 0x07
    if addressing == 0x01:
        tag = sim.field.get(uid)
        return (tag, Status.OK) if tag else (None, Status.NO_TRANSPONDER)
    if addressing == 0x02:
        tag = sim.field.get(sim.selected) if sim.selected else None
        return (tag, Status.OK) if tag else (None, Status.NO_TRANSPONDER)
    present = [t for t in sim.field.values() if not t.quiet]
    if len(present) == 1:
        return present[0], Status.OK
    # nobody answers, or several answer at once and their frames collide
    return None, Status.NO_TRANSPONDER if not present else Status.DATA_FALSE


def _iso_host(sim: FeigSimulator, data: bytes, fault: str | None) -> Outcome:
    if len(data) < 2:
        return Outcome(Status.LENGTH_ERROR, b"", 0.0)
    sub, mode = data[0], data[1]
    if sub == 0x01:
        return _inventory(sim, data)
    addressed = mode & 0x07 == 0x01
    uid = bytes(data[2:10]) if addressed else b""
    rest = data[10:] if addressed else data[2:]
    if addressed and len(uid) != 8:
        return Outcome(Status.LENGTH_ERROR, b"", 0.0)
    head = 2 + (8 if addressed else 0)  # flags and command, UID: the ISO request's start
    tag, status = _target(sim, mode, uid)
    if tag is None:
        return Outcome(status, b"", air.silent_time(head + 2 + len(rest)))
    if sub == 0x23 and len(rest) == 2:
        return _read(sim, tag, rest[0], rest[1], bool(mode & 0x08), head)
    if sub == 0x24 and len(rest) >= 3:
        return _write(sim, tag, rest, head)
    if sub == 0x27 and len(rest) == 1:
        request = head + 1 + 2
        if fault == "afi_write_fails":
            return _fail(air.NOT_PROGRAMMED, request)
        error = None if fault == "afi_not_stick" else tag.write_afi(rest[0])
        if error is not None:
            return _fail(error, request)
        return Outcome(Status.OK, b"", air.exchange_time(request, 3, write=True))
    if sub == 0x2B and not rest:
        info = (bytes([tag.dsfid]) + tag.uid + bytes([tag.afi, (tag.block_size - 1) & 0x1F,
                                                      tag.block_count - 1, tag.ic_ref]))
        return Outcome(Status.OK, info, air.exchange_time(head + 2, 15))
    if sub in (0x02, 0x25, 0x26) and not rest and addressed:
        return _state(sim, tag, sub, head)
    return Outcome(Status.UNKNOWN_COMMAND, b"", 0.0)


def _inventory(sim: FeigSimulator, data: bytes) -> Outcome:
    mode = data[1]
    with_afi = bool(mode & 0x10)
    if len(data) != (3 if with_afi else 2):
        return Outcome(Status.LENGTH_ERROR, b"", 0.0)
    if mode & 0x80:  # MORE: the rest of the last inventory, no new RF exchange
        records, rf = sim.pending_inventory, 0.0
    else:
        if not sim.rf_on:
            return Outcome(Status.NO_TRANSPONDER, b"", 0.0)
        tags = [t for t in sim.field.values()
                if not t.quiet and (not with_afi or air.afi_matches(data[2], t.afi))]
        run = air.inventory_time([t.uid for t in tags], afi=with_afi)
        # Tags are found slot by slot: order them by their UID nibbles from the lowest.
        tags.sort(key=lambda t: [(int.from_bytes(t.uid, "big") >> s) & 0xF
                                 for s in range(0, 64, 4)])
        records = [bytes([TR_TYPE_ISO15693, t.dsfid]) + t.uid for t in tags]
        rf = run.seconds
        if not records:
            sim.pending_inventory = []
            return Outcome(Status.NO_TRANSPONDER, b"", rf)
    page, sim.pending_inventory = records[:sim.inventory_page], records[sim.inventory_page:]
    status = Status.MORE_DATA if sim.pending_inventory else Status.OK
    return Outcome(status, bytes([len(page)]) + b"".join(page), rf)


def _read(sim: FeigSimulator, tag: air.VirtualTag, first: int, count: int, security: bool,
          head: int) -> Outcome:
    single = count == 1  # the reader sends Read Single Block for one block
    request = head + (1 if single else 2) + 2
    memory = tag.read(first, count)
    if isinstance(memory, int):
        return _fail(memory, request)
    size = tag.block_size
    out = bytearray([count, size])
    for n in range(count):
        locked = first + n in tag.locked_blocks
        out.append(0x01 if security and locked else 0x00)
        out += sim.block_order.wire(memory[n * size:(n + 1) * size])
    response = 1 + count * (size + (1 if security else 0)) + 2
    return Outcome(Status.OK, bytes(out), air.exchange_time(request, response))


def _write(sim: FeigSimulator, tag: air.VirtualTag, rest: bytes, head: int) -> Outcome:
    first, count, size = rest[0], rest[1], rest[2]
    payload = rest[3:]
    if count == 0 or len(payload) != count * size:
        return Outcome(Status.LENGTH_ERROR, b"", 0.0)
    if size != tag.block_size:
        return Outcome(Status.ADDRESS_ERROR, b"", 0.0)
    rf = 0.0
    request = head + 1 + size + 2  # the reader writes block by block (Write Single Block)
    for n in range(count):
        block = sim.block_order.wire(payload[n * size:(n + 1) * size])
        error = tag.write_block(first + n, block)
        if error is not None:
            rf += air.exchange_time(request, 4)
            return Outcome(Status.ISO_ERROR, bytes([error, (first + n) & 0xFF]), rf)
        rf += air.exchange_time(request, 3, write=True)
    return Outcome(Status.OK, b"", rf)


def _state(sim: FeigSimulator, tag: air.VirtualTag, sub: int, head: int) -> Outcome:
    if sub == 0x02:  # Stay Quiet: the tag never answers it
        tag.quiet = True
        if sim.selected == tag.uid:
            sim.selected = None
        return Outcome(Status.OK, b"", air.vcd_frame(head + 2) + air.T2)
    if sub == 0x25:
        tag.quiet = False
        sim.selected = tag.uid
    else:
        tag.quiet = False
        if sim.selected == tag.uid:
            sim.selected = None
    return Outcome(Status.OK, b"", air.exchange_time(head + 2, 3))


def _iso_custom(sim: FeigSimulator, data: bytes) -> Outcome:
    if len(data) < 3:
        return Outcome(Status.LENGTH_ERROR, b"", 0.0)
    manufacturer, command, mode = data[0], data[1], data[2]
    if manufacturer != 0x04 or command not in (0xA2, 0xA3, 0xA5):
        return Outcome(Status.COMMAND_NOT_AVAILABLE, b"", 0.0)
    addressed = mode & 0x07 == 0x01
    uid = bytes(data[3:11]) if addressed else b""
    if (addressed and len(data) != 11) or (not addressed and len(data) != 3):
        return Outcome(Status.LENGTH_ERROR, b"", 0.0)
    request = 3 + (8 if addressed else 0) + 2  # flags, command, IC manufacturer code
    tag, status = _target(sim, mode, uid)
    if tag is None:
        return Outcome(status, b"", air.silent_time(request))
    if command == 0xA5:
        if not tag.eas:  # a tag without EAS set stays silent
            return Outcome(Status.NO_TRANSPONDER, b"", air.silent_time(request))
        return Outcome(Status.OK, EAS_SEQUENCE, air.exchange_time(request, 1 + 32 + 2))
    error = tag.set_eas(command == 0xA2)
    if error is not None:
        return _fail(error, request)
    return Outcome(Status.OK, b"", air.exchange_time(request, 3, write=True))
