"""SIP2 (3M Standard Interchange Protocol 2.00) connector: messages, framing and a client.

Layers, each usable alone:

- :mod:`~sync.sip2.messages` and :mod:`~sync.sip2.fields`: every message as a dataclass;
- :mod:`~sync.sip2.codec`: messages to bytes and back, with the AY/AZ error detection and
  the connection's character set;
- :mod:`~sync.sip2.framing`: a byte stream cut into messages;
- :mod:`~sync.sip2.client`: a blocking client over TCP or TLS returning
  :mod:`~sync.sip2.results`.

- :mod:`~sync.sip2.replay`: the outbox replayed to the library system, each event once,
  with the per-system assumptions of :mod:`~sync.sip2.profiles` (see docs/sip2.md).
"""

from sync.sip2.client import Sip2Client
from sync.sip2.codec import Decoded, checksum, decode, encode
from sync.sip2.errors import (
    BadCharset,
    BadChecksum,
    BadField,
    ConnectionLost,
    LoginRefused,
    MessageTooLong,
    MissingChecksum,
    Sip2Error,
    Sip2FormatError,
    Sip2LinkError,
    Sip2Timeout,
    TooManyResends,
    Truncated,
    UnexpectedReply,
    UnknownMessage,
)
from sync.sip2.framing import CR, CRLF, MessageReader, frame

__all__ = [
    "CR", "CRLF", "BadCharset", "BadChecksum", "BadField", "ConnectionLost", "Decoded",
    "LoginRefused", "MessageReader", "MessageTooLong", "MissingChecksum", "Sip2Client",
    "Sip2Error", "Sip2FormatError", "Sip2LinkError", "Sip2Timeout", "TooManyResends",
    "Truncated", "UnexpectedReply", "UnknownMessage", "checksum", "decode", "encode", "frame",
]
