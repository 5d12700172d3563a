""":class:`ItemTag`: what a library item's tag says, whichever data model wrote it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from drivers.iso28560.elements import name_of

MODELS = ("part2", "part3")


@dataclass(frozen=True)
class ItemTag:
    """The data elements of one item tag.

    ``model`` is ``"part2"`` (ISO 28560-2, GB/T 35660.2: flexible elements) or ``"part3"``
    (ISO 28560-3, GB/T 35660.3, the Danish model: fixed 32/34-byte basic block).
    ``set_part`` of ``set_parts`` is "part N of M" of a multi-part item.
    ``type_of_usage`` is the class of ISO 28560-1 (0 acquisition, 1 circulation, 2 not for
    circulation, ...); ``usage_qualifier`` its sub-class, which only part 2 can store.
    ``country`` is the ISO 3166 country of the owner: in part 3 it has a field of its own
    (the ISIL prefix); in part 2 it is derived from ``owner_isil`` when that has a country
    prefix. ``other`` holds every further element by relative OID: text where the tag
    holds text, bytes where it holds binary or application-defined data. ``dsfid`` is the
    DSFID the tag was read with or should be written with (None: not known). ``version``
    is the part 3 version nibble.
    """

    primary_item_id: str
    model: str = "part2"
    owner_isil: str | None = None
    set_part: int | None = None
    set_parts: int | None = None
    type_of_usage: int | None = None
    usage_qualifier: int | None = None
    country: str | None = None
    shelf_location: str | None = None
    title: str | None = None
    other: dict[int, bytes | str] = field(default_factory=dict)
    dsfid: int | None = None
    version: int | None = None

    def with_changes(self, **changes: Any) -> ItemTag:
        """A copy with some fields changed (:func:`dataclasses.replace`)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: bytes become hex text, ``other`` is keyed by element name
        (``oid_<n>`` for numbers without a name)."""
        return {
            "model": self.model,
            "primary_item_id": self.primary_item_id,
            "owner_isil": self.owner_isil,
            "country": self.country,
            "set_part": self.set_part,
            "set_parts": self.set_parts,
            "type_of_usage": self.type_of_usage,
            "usage_qualifier": self.usage_qualifier,
            "shelf_location": self.shelf_location,
            "title": self.title,
            "dsfid": None if self.dsfid is None else f"0x{self.dsfid:02X}",
            "version": self.version,
            "other": {name_of(oid): value.hex().upper() if isinstance(value, bytes) else value
                      for oid, value in sorted(self.other.items())},
        }
