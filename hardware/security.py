"""The security flag on a book tag: what makes the gate alarm for a book not lent.

Two schemes, chosen per library: the AFI byte (ISO 28560: 0x07 on the shelf, 0xC2 on loan
by default; configurable), or the NXP EAS bit. Either way the flag is written and then read
back: a loan is reported as done only once the tag says it is on loan. Lock AFI is never
used (a locked AFI can never be flipped again).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hardware.roles import SecurityNotSet, TagReader


class SecurityMode(StrEnum):
    AFI = "afi"
    EAS = "eas"


@dataclass(frozen=True)
class SecurityPolicy:
    mode: SecurityMode = SecurityMode.AFI
    afi_on_shelf: int = 0x07
    afi_on_loan: int = 0xC2

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", SecurityMode(self.mode))
        for value in (self.afi_on_shelf, self.afi_on_loan):
            if not 0 <= value <= 0xFF:
                raise ValueError(f"AFI 0x{value:X} is not a byte")
        if self.afi_on_shelf == self.afi_on_loan:
            raise ValueError("the AFI on loan must differ from the AFI on the shelf")


@dataclass(frozen=True)
class FlagState:
    """What the tag said when read back."""

    on_loan: bool
    afi: int | None
    eas: bool | None


def set_flag(reader: TagReader, uid: bytes, on_loan: bool, policy: SecurityPolicy) -> FlagState:
    """Mark the book with ``uid`` as lent (``on_loan``) or back on the shelf, and verify.

    Raises :class:`~hardware.roles.SecurityNotSet` when the tag does not read back as
    written (the write "did not stick"), and the driver's errors when the tag left the field
    or the reader failed. The caller must not tell the patron the loan is done until this
    returns.
    """
    if policy.mode is SecurityMode.EAS:
        reader.set_eas(uid, on=not on_loan)
        armed = reader.eas_alarm(uid)
        if armed == on_loan:
            raise SecurityNotSet(reader.name, f"EAS of {uid.hex().upper()} reads "
                                 f"{'armed' if armed else 'disarmed'} after writing",
                                 uid=uid.hex().upper())
        return FlagState(on_loan=not armed, afi=None, eas=armed)
    wanted = policy.afi_on_loan if on_loan else policy.afi_on_shelf
    reader.write_afi(uid, wanted)
    got = reader.system_info(uid).afi
    if got != wanted:
        shown = "none" if got is None else f"0x{got:02X}"
        raise SecurityNotSet(reader.name, f"AFI of {uid.hex().upper()} reads {shown} after "
                             f"writing 0x{wanted:02X}", uid=uid.hex().upper())
    return FlagState(on_loan=on_loan, afi=got, eas=None)


def read_flag(reader: TagReader, uid: bytes, policy: SecurityPolicy) -> FlagState:
    """The flag as the tag holds it now (AFI other than both configured values counts as
    "on the shelf": the gate would alarm, which is the safe reading)."""
    if policy.mode is SecurityMode.EAS:
        armed = reader.eas_alarm(uid)
        return FlagState(on_loan=not armed, afi=None, eas=armed)
    afi = reader.system_info(uid).afi
    return FlagState(on_loan=afi == policy.afi_on_loan, afi=afi, eas=None)
