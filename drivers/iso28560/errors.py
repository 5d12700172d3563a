"""The one error of the tag data codecs: :class:`TagDataError`.

A reader that hands us the bytes of a book tag can get anything: a blank tag, a tag written
by another vendor's model, a half-written tag after the book left the field, RF noise. Every
such case ends in a :class:`TagDataError` with a ``reason`` saying which rule was broken and
``params`` saying where; nothing else escapes the decoders.
"""

from __future__ import annotations

# English texts for str(exc) and logs. The kiosk shows the catalogue text
# ``tag.error.<reason>`` instead, filled from the same params.
_ENGLISH = {
    "empty": "the tag holds no data (all bytes are zero)",
    "crc": "CRC mismatch: the tag holds {stored}, the data gives {computed}",
    "truncated": "the data element at byte {offset} (OID {oid}) runs past the end of the data",
    "precursor": "byte {offset} is not a valid precursor (relative OID 0)",
    "length": "the length at byte {offset} (OID {oid}) is longer than 3 bytes",
    "compaction": "the data element at byte {offset} (OID {oid}) is not valid {scheme} data",
    "duplicate": "the data element OID {oid} appears twice (second at byte {offset})",
    "no_item_id": "the tag has no primary item identifier",
    "extension": "the extension block at byte {offset} is damaged (length or checksum)",
    "not_recognised": "the data is neither an ISO 28560-2 nor an ISO 28560-3 tag",
    "too_long": "OID {oid} does not fit: {size} bytes where at most {limit} can be written",
    "bad_value": "OID {oid} cannot hold the value {value!r}",
    "capacity": "the encoded data needs {need} bytes; the tag holds {capacity}",
    "model": "unknown data model {model!r} (use part2 or part3)",
}

REASONS = tuple(_ENGLISH)


class TagDataError(ValueError):
    """Tag data that is malformed, damaged or cannot be written as asked.

    ``reason`` is one of :data:`REASONS`; ``message_key`` is ``tag.error.<reason>`` in the
    message catalogue and ``params`` fills its placeholders (byte offsets, relative OIDs,
    CRC values as text). For the person at the kiosk it means: this tag's data is not
    usable here, hand the book to staff.
    """

    message_key = "tag.error.invalid"

    def __init__(self, reason: str, **params: object) -> None:
        if reason not in _ENGLISH:
            raise ValueError(f"unknown TagDataError reason {reason!r}")
        self.reason = reason
        self.message_key = f"tag.error.{reason}"
        self.params = {k: ("-" if v is None else v) for k, v in params.items()}
        super().__init__(_ENGLISH[reason].format_map(_Fill(self.params)))


class _Fill(dict):
    def __missing__(self, key: str) -> str:
        return "?"
