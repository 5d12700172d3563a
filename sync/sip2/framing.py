"""Cutting a SIP2 byte stream into messages, and ending a message for the wire.

:class:`MessageReader` is a protocol object: feed it whatever ``recv()`` returned, in any
pieces, and it returns the complete messages (without terminators) in order. It never
assumes one read is one message.

Terminators: the standard ends a message with a carriage return; many systems send CR LF,
and a few a bare LF. Reading accepts all three (empty lines are skipped, so CR LF is not
read as a message and an empty one). Writing uses the connection's configured terminator.

The three supported character sets never use the bytes CR (0x0D) or LF (0x0A) inside a
multi-byte character (in gb18030 the trailing bytes are 0x30-0x39 and 0x40-0xFE), so cutting
on bytes before decoding is safe.
"""

from __future__ import annotations

from sync.sip2.errors import BadField, MessageTooLong

CR = b"\r"
CRLF = b"\r\n"
TERMINATORS = (CR, CRLF)
DEFAULT_MAX_LENGTH = 16 * 1024


def check_terminator(terminator: bytes) -> bytes:
    if terminator not in TERMINATORS:
        raise BadField(f"terminator must be CR or CR LF, got {terminator!r}")
    return terminator


def frame(message: bytes, terminator: bytes = CR) -> bytes:
    """``message`` ready to send."""
    check_terminator(terminator)
    if b"\r" in message or b"\n" in message:
        raise BadField(f"a SIP2 message cannot contain CR or LF: {message[:40]!r}")
    return message + terminator


class MessageReader:
    """Complete messages out of a byte stream.

    ``max_length`` bounds the bytes of one message. When more arrive without a terminator,
    :meth:`feed` raises :class:`MessageTooLong`, drops the partial message and skips input
    up to the next terminator; complete messages found before the error are returned by
    the next call to :meth:`feed` (``feed(b"")`` will do).
    """

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        if max_length < 2:
            raise BadField(f"max_length must be at least 2, got {max_length}")
        self.max_length = max_length
        self._buffer = bytearray()
        self._ready: list[bytes] = []
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes held of a message not yet complete."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget everything held (after a reconnect)."""
        self._buffer.clear()
        self._ready.clear()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        too_long = 0
        start = 0
        view = bytes(data)
        while start < len(view):
            ends = [i for i in (view.find(b"\r", start), view.find(b"\n", start)) if i >= 0]
            end = min(ends) if ends else len(view)
            piece = view[start:end]
            if not self._skipping:
                self._buffer += piece
                if len(self._buffer) > self.max_length:
                    too_long = max(too_long, len(self._buffer))
                    self._buffer.clear()
                    self._skipping = True
            if not ends:
                break
            if self._skipping:
                self._skipping = False
            elif self._buffer:
                self._ready.append(bytes(self._buffer))
                self._buffer.clear()
            start = end + 1
        if too_long:
            raise MessageTooLong(f"more than {self.max_length} bytes without a terminator "
                                 f"({too_long} so far); the partial message was dropped")
        ready, self._ready = self._ready, []
        return ready
