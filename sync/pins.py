"""PIN hashes: how a patron's (and later a staff member's) PIN is stored, here and at the hub.

A PIN has four to six digits: ten thousand to a million choices, so a fast hash of it is
reversed in moments by anyone holding the database. The hash is scrypt (memory-hard, in
Python's standard library), with a random salt per PIN:

    scrypt$<log2 N>$<r>$<p>$<salt, base64>$<hash, base64>

The parameters travel with the hash, so a county can raise them later and old hashes still
verify. The default (N = 2**14, r = 8: 16 MiB, about 50 ms on a Raspberry Pi 4) is slow for
an attacker and unnoticeable for a patron. The limit on wrong tries, which matters most
with so few choices, is the kiosk's (``[ui] pin_attempts``), not this module's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

PIN = re.compile(r"[0-9]{4,6}")
LOG2_N, R, P = 14, 8, 1
_B64 = r"([A-Za-z0-9+/=]+)"
_FORMAT = re.compile(rf"scrypt\$(\d{{1,2}})\$(\d{{1,2}})\$(\d{{1,2}})\${_B64}\${_B64}")


class BadPinHash(ValueError):
    """A stored hash this module cannot read (a corrupt row, or another scheme)."""


def valid_pin(pin: str) -> bool:
    return PIN.fullmatch(pin) is not None


def _scrypt(pin: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode("ascii"), salt=salt, n=1 << log2_n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=32)


def hash_pin(pin: str, *, log2_n: int = LOG2_N, r: int = R, p: int = P) -> str:
    if not valid_pin(pin):
        raise ValueError("a PIN is 4 to 6 digits")
    salt = secrets.token_bytes(16)
    digest = _scrypt(pin, salt, log2_n, r, p)
    b64 = base64.b64encode
    return f"scrypt${log2_n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_pin(pin: str, stored: str) -> bool:
    """Whether ``pin`` is the PIN of ``stored``; BadPinHash when ``stored`` is unreadable."""
    match = _FORMAT.fullmatch(stored or "")
    if match is None:
        raise BadPinHash("not a scrypt PIN hash")
    log2_n, r, p = (int(g) for g in match.groups()[:3])
    if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 4):
        raise BadPinHash("scrypt parameters out of range")
    try:
        salt = base64.b64decode(match.group(4), validate=True)
        expected = base64.b64decode(match.group(5), validate=True)
    except ValueError as exc:
        raise BadPinHash(f"bad base64: {exc}") from None
    if not valid_pin(pin):
        return False
    return hmac.compare_digest(_scrypt(pin, salt, log2_n, r, p), expected)
