"""Errors of the SIP2 connector.

One root, :class:`Sip2Error`; every leaf also inherits the matching built-in exception, so a
caller that only knows Python's own hierarchy (``except ValueError``, ``except OSError``)
still catches it. Messages name the message code and the field involved, so a log line says
what the library system sent or refused without a packet capture.

Two families matter to callers:

- wire and data errors (:class:`Sip2FormatError` and below): the bytes were not a valid SIP2
  message. The connection itself may be fine.
- link and session errors (:class:`Sip2LinkError` and below): the conversation with the
  library system failed; nothing is known about a request that was sent but not answered.
"""

from __future__ import annotations


class Sip2Error(Exception):
    """Root of every error raised by ``sync.sip2``."""


class Sip2FormatError(Sip2Error, ValueError):
    """Bytes or values that are not a valid SIP2 message."""


class BadChecksum(Sip2FormatError):
    """The AZ checksum does not match the bytes received."""


class MissingChecksum(Sip2FormatError):
    """Error detection is required but the message carries no AZ checksum."""


class Truncated(Sip2FormatError):
    """The message is shorter than the fixed-length part of its type."""


class UnknownMessage(Sip2FormatError):
    """The two-character command identifier is not a SIP2 message this package knows."""


class BadField(Sip2FormatError):
    """A field value cannot be written (wrong length, a '|' or a line break in it) or read
    (a date or a number that is not one)."""


class BadCharset(Sip2FormatError):
    """Text cannot be encoded in, or bytes cannot be decoded from, the connection's
    character set (or the character set itself is unknown)."""


class MessageTooLong(Sip2FormatError):
    """More bytes arrived without a terminator than the configured maximum."""


class Sip2LinkError(Sip2Error, ConnectionError):
    """The connection to the library system failed or was closed."""


class ConnectionLost(Sip2LinkError):
    """The peer closed or reset the connection while a request was outstanding."""


class Sip2Timeout(Sip2Error, TimeoutError):
    """No complete reply within the timeout; the request's outcome is unknown."""


class TooManyResends(Sip2LinkError):
    """Replies kept arriving corrupted (or the peer kept asking for a resend) beyond the
    configured number of resends."""


class LoginRefused(Sip2Error, PermissionError):
    """The library system answered the login (93) with ok=0."""


class UnexpectedReply(Sip2Error, ValueError):
    """A well-formed message arrived, but not the one answering the request."""
