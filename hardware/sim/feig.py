"""A simulated FEIG ISO host reader on a pseudo-terminal, with a field of virtual tags.

It speaks the same frames as a real ID ISC reader (see drivers/feig_frames.py), so the kiosk and
the tests run the real driver against it::

    with FeigSimulator(tmp_path) as sim:
        sim.place(VirtualTag(make_uid(1), bytes(112)))
        port = serial.serial_for_url(str(sim.path), baudrate=38400, parity="E", timeout=1)
        reader = FeigReader(port)

Each command takes as long as on a real reader: the serial bytes move at line speed
(:mod:`hardware.sim.pty`) and the RF exchange with the tags takes its modelled air time
(:mod:`hardware.sim.iso15693`) plus ``processing_time``; :attr:`FeigSimulator.stats` records
bytes and modelled seconds so a benchmark can compute the least time an exchange could take.

Tests change the world while it runs: :meth:`~FeigSimulator.place` and
:meth:`~FeigSimulator.remove` tags, :meth:`~FeigSimulator.unplug` and
:meth:`~FeigSimulator.replug` the reader, and :meth:`~FeigSimulator.inject` faults into the
next commands (see :data:`FAULTS`).

The simulator's command handling lives in :mod:`hardware.sim.feig_commands`; it decodes the
requests itself rather than reusing the driver's encoders, so the two sides check each other.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from pathlib import Path

from drivers.errors import FrameError
from drivers.feig_frames import BROADCAST, Frame, FrameParser, Status, build_frame
from drivers.feig_iso import BlockOrder
from hardware.sim.feig_commands import Outcome, execute, kind_of
from hardware.sim.iso15693 import VirtualTag
from hardware.sim.pty import PtyDevice

FAULTS = {
    "unplug": "the reader is unplugged after it receives the next command (no reply)",
    "no_reply": "the command is executed but no reply is sent",
    "garble": "one bit of the reply (after its length byte) is flipped: bad CRC",
    "truncate": "only the first half of the reply is sent",
    "tag_leaves": "the addressed tag leaves the field between command and reply",
    "afi_write_fails": "Write AFI fails: ISO error 0x13, the AFI is unchanged",
    "afi_not_stick": "Write AFI answers OK but the AFI is unchanged",
    "rf_noise": "RF noise: status 0x83, the command has no effect",
    "late_reply": "the reply comes late_by seconds late (after the host's timeout)",
}

# A published [0x65] reply (SW-REV 3.3, D-REV 0, HW-TYPE 0x44, SW-TYPE 0x53, TR-TYPE 0x0D30).
DEFAULT_VERSION = bytes.fromhex("03 03 00 44 53 0D 30")


@dataclass(frozen=True)
class SimStats:
    """Counters since start or :meth:`FeigSimulator.reset_stats`."""

    commands: int
    bytes_in: int
    bytes_out: int
    rf_seconds: float  # modelled air time of the commands' RF exchanges
    processing_seconds: float  # modelled reader processing on top
    baud: int
    bits_per_byte: int

    @property
    def serial_seconds(self) -> float:
        """Time the bytes exchanged occupy the serial line, both directions."""
        return (self.bytes_in + self.bytes_out) * self.bits_per_byte / self.baud

    @property
    def lower_bound(self) -> float:
        """The exchange cannot be faster than its serial bytes plus its RF air time."""
        return self.serial_seconds + self.rf_seconds


class FeigSimulator:
    """A FEIG ISO host reader with bus address ``address`` behind the stable path
    ``link_dir/link_name``. ``inventory_page`` is how many records one inventory reply holds
    before the reader answers 0x94 "more data". ``realtime=False`` skips all waiting.
    """

    def __init__(self, link_dir: str | Path, *, baud: int = 38400, bits_per_byte: int = 11,
                 link_name: str = "ttyFEIG0", address: int = 0x00,
                 block_order: BlockOrder = BlockOrder.REVERSED, processing_time: float = 2e-4,
                 inventory_page: int = 24, realtime: bool = True,
                 version: bytes = DEFAULT_VERSION, seed: int | None = None) -> None:
        self.address = address
        self.block_order = block_order
        self.processing_time = processing_time
        self.inventory_page = inventory_page
        self.realtime = realtime
        self.version = version
        self.rf_on = True
        self.late_by = 0.5  # seconds a "late_reply" fault holds the reply back
        self.selected: bytes | None = None
        self.pending_inventory: list[bytes] = []  # records not yet sent after a 0x94
        # the tags on the pad by UID; change it through place() and remove()
        self.field: dict[bytes, VirtualTag] = {}
        self._faults: list[list] = []  # [name, remaining, on]
        self._lock = threading.RLock()
        self._random = random.Random(seed)
        self._parser = FrameParser("request", "FEIG simulator")
        self._pty = PtyDevice(self._on_bytes, baud=baud, bits_per_byte=bits_per_byte,
                              link_dir=link_dir, link_name=link_name, pace=realtime)
        self.bad_requests = 0
        self._counts = [0, 0.0, 0.0]  # commands, rf seconds, processing seconds
        self._base = (0, 0)  # pty byte counters at the last reset_stats()

    # -- lifetime ------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The stable path to open (a symlink to the current /dev/pts/N while plugged)."""
        return self._pty.path

    @property
    def plugged(self) -> bool:
        return self._pty.plugged

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside the model; a test should find this empty."""
        return self._pty.errors

    def start(self) -> FeigSimulator:
        self._parser.reset()
        self._pty.start()
        return self

    def stop(self) -> None:
        self._pty.stop()

    def unplug(self) -> None:
        """Pull the USB cable: the host's open port fails and the path disappears."""
        self._pty.unplug()

    def replug(self) -> FeigSimulator:
        """Plug back in on a new pty behind the same path (the host must reopen it)."""
        self._pty.unplug()
        return self.start()

    def __enter__(self) -> FeigSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<FeigSimulator {self.path} addr 0x{self.address:02X} {len(self.field)} tags>"

    # -- the field ---------------------------------------------------------------------------

    def place(self, tag: VirtualTag) -> VirtualTag:
        """Put ``tag`` on the pad (it answers from the next command on)."""
        with self._lock:
            if tag.uid in self.field:
                raise ValueError(f"a tag with UID {tag.uid.hex()} is already in the field")
            self.field[tag.uid] = tag
        return tag

    def remove(self, uid: bytes) -> VirtualTag | None:
        """Take the tag ``uid`` off the pad; it comes back to ready state if placed again."""
        with self._lock:
            tag = self.field.pop(bytes(uid), None)
            if tag is not None:
                tag.quiet = False
                if self.selected == tag.uid:
                    self.selected = None
            return tag

    def clear(self) -> None:
        with self._lock:
            for uid in list(self.field):
                self.remove(uid)

    @property
    def tags(self) -> list[VirtualTag]:
        """The tags in the field now (the live objects: their memory shows every write)."""
        with self._lock:
            return list(self.field.values())

    def tag(self, uid: bytes) -> VirtualTag:
        with self._lock:
            return self.field[bytes(uid)]

    # -- faults and statistics ---------------------------------------------------------------

    def inject(self, fault: str, count: int = 1, on: str | None = None) -> None:
        """Make the next ``count`` commands (of kind ``on``, e.g. "read_blocks", if given)
        suffer ``fault``, one of :data:`FAULTS`. AFI faults wait for a Write AFI and
        "tag_leaves" for a command addressed to a tag."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(sorted(FAULTS))}")
        with self._lock:
            self._faults.append([fault, count, on])

    @property
    def pending_faults(self) -> list[tuple[str, int]]:
        with self._lock:
            return [(f, n) for f, n, _ in self._faults]

    def _take_fault(self, kind: str, addressed: bool) -> str | None:
        with self._lock:
            for entry in self._faults:
                fault, _, on = entry
                if on is not None and on != kind:
                    continue
                if fault.startswith("afi_") and kind != "write_afi":
                    continue
                if fault == "tag_leaves" and not addressed:
                    continue
                entry[1] -= 1
                if entry[1] <= 0:
                    self._faults.remove(entry)
                return fault
        return None

    @property
    def stats(self) -> SimStats:
        commands, rf, processing = self._counts
        return SimStats(commands, self._pty.bytes_in - self._base[0],
                        self._pty.bytes_out - self._base[1], rf, processing, self._pty.baud,
                        self._pty.bits_per_byte)

    def reset_stats(self) -> None:
        self._counts = [0, 0.0, 0.0]
        self._base = (self._pty.bytes_in, self._pty.bytes_out)

    # -- the device thread ----------------------------------------------------------------------

    def _on_bytes(self, data: bytes, device: PtyDevice) -> None:
        try:
            frames = self._parser.feed(data)
        except FrameError:
            self.bad_requests += 1  # a real reader ignores a request it cannot read
            return
        for frame in frames:
            if frame.address in (BROADCAST, self.address):
                self._answer(frame, device)

    def _answer(self, frame: Frame, device: PtyDevice) -> None:
        kind, uid = kind_of(frame)
        with self._lock:
            fault = self._take_fault(kind, uid is not None)
            if fault == "tag_leaves" and uid is not None:
                self.remove(uid)
            if fault == "rf_noise":
                outcome = Outcome(Status.RF_COMMUNICATION_ERROR, b"", 0.002)
            else:
                outcome = execute(self, frame, fault)
        self._counts[0] += 1
        self._counts[1] += outcome.rf_seconds
        self._counts[2] += self.processing_time
        if fault == "unplug":
            device.unplug()
            return
        busy = outcome.rf_seconds + self.processing_time
        if fault == "late_reply":
            busy += self.late_by
        if self.realtime and not device.sleep(busy):
            return
        if fault == "no_reply":
            return
        reply = bytearray(build_frame(self.address, frame.command, outcome.data,
                                      status=outcome.status,
                                      advanced=True if frame.advanced else None))
        if fault == "garble":
            start = 3 if reply[0] == 0x02 else 1
            reply[self._random.randrange(start, len(reply))] ^= 1 << self._random.randrange(8)
        elif fault == "truncate":
            reply = reply[:max(1, len(reply) // 2)]
        device.send(bytes(reply))
