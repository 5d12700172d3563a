"""Personal data at rest: ID numbers and phone numbers of registered readers.

**What is stored.** An ID number is stored only encrypted (AES-256-GCM, a fresh 96-bit nonce
per value, the purpose as associated data), as ``<key id>:<base64 nonce+ciphertext>``; the
key id lets keys be rotated (new values use the ``current`` key, old ones stay readable while
their key is in the file). Beside it: a masked form for screens (``430102********1234``) and
a duplicate-person hash, HMAC-SHA256 over the normalised ``(type, number)`` under a key
derived from the county-wide secret, so every device and the hub compute the same hash for
the same document and nobody without the secret can test guesses against it. Phone numbers
are validated (mainland mobile), encrypted the same way and kept masked for display.

**Never in plain text.** A number held in memory is a :class:`Sensitive`: its ``str`` and
``repr`` are the masked form, it does not serialise to JSON, and the plain value is reached
only through :meth:`Sensitive.reveal`. Errors raised here never include a number.

**Keys** come from a credentials file outside the database (so a copied database, or a
backup of it, holds nothing readable), readable by its owner only; a file that group or
others may read is refused (:class:`KeyFileUnsafe`). It is TOML::

    # library-kiosk personal-data keys: mode 0600, never in a backup of the database
    current = "k1"             # the key new values are encrypted with
    county_key_id = "c1"       # names the county secret (it changes only with a re-hash)
    county_secret = "<base64 of 32 random bytes, the same on every device and the hub>"
    [keys]
    k1 = "<base64 of 32 random bytes>"

:func:`create_key_file` writes one (mode 0600, never over an existing file),
:func:`rotate_key_file` adds a new current key and keeps the old ones, and ``kiosk keys``
does both on a device (see docs/technician.md).

**Sent to the hub** (the registration event): the hash, the masked form, and the number
*sealed* for the county (:meth:`Keys.seal`: AES-GCM under a key derived from the county
secret), never the plain number. The event payload waits in the outbox, on disk, and the
hub stores it as received; sealing keeps the number unreadable in both places, and the
transport to a real hub is TLS on top.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import stat
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from sync import idnumbers
from sync.files import fsync_dir

KEY_BYTES = 32
NONCE_BYTES = 12


class PersonalDataError(Exception):
    """Root of the errors of personal-data handling. ``message_key`` and ``params`` are for
    the person on site; ``str()`` names the file or key id, never a number."""

    message_key = "registration.keys.error"

    def __init__(self, detail: str, **params: object) -> None:
        super().__init__(detail)
        self.params = {"detail": detail, **params}


class KeyFileMissing(PersonalDataError, FileNotFoundError):
    message_key = "registration.keys.missing"


class KeyFileUnsafe(PersonalDataError, PermissionError):
    """Group or others may read the key file: anyone on the device could decrypt."""

    message_key = "registration.keys.unsafe"


class KeyFileInvalid(PersonalDataError, ValueError):
    message_key = "registration.keys.invalid"


class UnknownKey(PersonalDataError, LookupError):
    """A value was encrypted with a key id no longer in the key file."""

    message_key = "registration.keys.unknown_key"


class Sensitive:
    """A piece of personal data in memory. ``str()``, ``repr()`` and f-strings show only the
    masked form, so it can be passed around and logged by mistake without leaking."""

    __slots__ = ("_masked", "_value")

    def __init__(self, value: str, masked: str | None = None) -> None:
        self._value = value
        self._masked = masked if masked is not None else mask_generic(value)

    def reveal(self) -> str:
        """The plain value: only for validating, hashing and encrypting it."""
        return self._value

    @property
    def masked(self) -> str:
        return self._masked

    def __str__(self) -> str:
        return self._masked

    def __repr__(self) -> str:
        return f"<Sensitive {self._masked}>"

    def __format__(self, spec: str) -> str:
        return format(self._masked, spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sensitive) and secrets.compare_digest(
            self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Sensitive", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> object:
        raise TypeError("personal data is not pickled")


def mask_generic(value: str) -> str:
    if len(value) <= 4:
        return "*" * len(value)
    return value[:2] + "*" * (len(value) - 4) + value[-2:]


def mask_id(id_type: str, number: str) -> str:
    return idnumbers.mask(id_type, number)


# -- phones ------------------------------------------------------------------------------

_MOBILE = re.compile(r"1[3-9]\d{9}")


class InvalidPhone(ValueError):
    message_key = "registration.phone.bad_format"

    def __init__(self) -> None:
        super().__init__("not a mainland mobile number (11 digits starting 13-19)")
        self.reason = "bad_format"


def normalise_phone(raw: str) -> str:
    """The 11-digit mainland mobile number in ``raw`` (spaces, dashes and a +86/0086 prefix
    allowed); :class:`InvalidPhone` otherwise. Landlines are not accepted: the library
    texts readers about holds and overdue books."""
    text = re.sub(r"[\s\-()]", "", unicodedata.normalize("NFKC", raw or ""))
    for prefix in ("+86", "0086"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    if not _MOBILE.fullmatch(text) or not text.isascii():
        raise InvalidPhone()
    return text


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:]


# -- keys --------------------------------------------------------------------------------

def _b64key(value: object, what: str, path: Path) -> bytes:
    try:
        key = base64.b64decode(str(value), validate=True)
    except (ValueError, TypeError):
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileInvalid(f"{path}: {what} must be {KEY_BYTES} bytes in base64",
                             path=str(path))
    return key


# The cryptography library is imported where it is used: it costs a kiosk process about
# 7 MB of memory, and only a registering desk (and the hub) ever encrypts anything.


def _derive(secret: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info
                ).derive(secret)


@dataclass(frozen=True, repr=False)
class Keys:
    """The device's data keys and the county secret, loaded from the key file."""

    current: str
    keys: dict[str, bytes]
    county_key_id: str
    county_secret: bytes

    def __repr__(self) -> str:
        return f"<Keys current={self.current} ids={sorted(self.keys)} county={self.county_key_id}>"

    # A derived key per use, so the HMAC key and the sealing key are never the same bytes.
    @property
    def _hash_key(self) -> bytes:
        return _derive(self.county_secret, b"library-kiosk duplicate-person hash v1")

    @property
    def _seal_key(self) -> bytes:
        return _derive(self.county_secret, b"library-kiosk county seal v1")

    def encrypt(self, value: str, purpose: str) -> str:
        """``<key id>:<base64>`` of ``value`` under the current key; ``purpose`` (e.g.
        ``"id_number"``) is bound to the ciphertext, so it cannot be passed off as another
        field."""
        return _seal(self.current, self.keys[self.current], value, purpose)

    def decrypt(self, stored: str, purpose: str) -> Sensitive:
        key_id, _, _ = stored.partition(":")
        if key_id not in self.keys:
            raise UnknownKey(f"no key {key_id!r} in the key file", key_id=key_id)
        return Sensitive(_open(self.keys[key_id], stored, purpose))

    def seal(self, value: str, purpose: str) -> str:
        """``value`` encrypted for the county (openable with the county secret alone)."""
        return _seal(f"county-{self.county_key_id}", self._seal_key, value, purpose)

    def unseal(self, stored: str, purpose: str) -> Sensitive:
        return Sensitive(_open(self._seal_key, stored, purpose))

    def person_hash(self, id_type: str, number: str) -> str:
        """HMAC-SHA256 (hex) of the normalised document: equal for the same document on any
        device of the county and at the hub."""
        from cryptography.hazmat.primitives import hashes, hmac

        mac = hmac.HMAC(self._hash_key, hashes.SHA256())
        mac.update(f"{id_type}\x1f{idnumbers.normalise(number)}".encode())
        return mac.finalize().hex()


def _seal(key_id: str, key: bytes, value: str, purpose: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    ct = AESGCM(key).encrypt(nonce, value.encode("utf-8"), purpose.encode())
    return f"{key_id}:{base64.b64encode(nonce + ct).decode('ascii')}"


def _open(key: bytes, stored: str, purpose: str) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key_id, _, body = stored.partition(":")
    try:
        raw = base64.b64decode(body, validate=True)
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                   purpose.encode()).decode("utf-8")
    except (ValueError, InvalidTag):
        raise PersonalDataError(f"a stored {purpose} under key {key_id!r} cannot be"
                                " decrypted (wrong key or damaged)", key_id=key_id) from None


def load_keys(path: str | os.PathLike[str]) -> Keys:
    """Read the key file; refuse one that group or others can read or write."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise KeyFileMissing(f"{path}: no key file", path=str(path)) from None
    except OSError as exc:
        raise KeyFileInvalid(f"{path}: {exc.strerror}", path=str(path)) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileInvalid(f"{path}: not a regular file", path=str(path))
        if st.st_mode & 0o077:
            raise KeyFileUnsafe(
                f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read the keys;"
                f" run: chmod 600 {path}", path=str(path), mode=f"{stat.S_IMODE(st.st_mode):04o}")
        data = f.read()
    return parse_keys(data, path)


def parse_keys(data: bytes, path: str | os.PathLike[str]) -> Keys:
    """The keys in ``data``, the text of the key file at ``path`` (named in errors only);
    :class:`KeyFileInvalid` when it is not a valid key file. Checks no permissions:
    :func:`load_keys` does."""
    path = Path(path)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KeyFileInvalid(f"{path}: not TOML ({exc})", path=str(path)) from None
    table = doc.get("keys")
    current = doc.get("current")
    if not isinstance(table, dict) or not table or current not in table:
        raise KeyFileInvalid(f"{path}: needs [keys] and `current` naming one of them",
                             path=str(path))
    keys = {str(k): _b64key(v, f"key {k!r}", path) for k, v in table.items()}
    if any(":" in k for k in keys):
        raise KeyFileInvalid(f"{path}: a key id may not contain ':'", path=str(path))
    county = _b64key(doc.get("county_secret"), "county_secret", path)
    return Keys(str(current), keys, str(doc.get("county_key_id") or "c1"), county)


def _key_file_text(current: str, keys: dict[str, bytes], county_key_id: str,
                   county_secret: bytes) -> str:
    lines = ["# library-kiosk personal-data keys: mode 0600, never in a backup of the database",
             f'current = "{current}"', f'county_key_id = "{county_key_id}"',
             f'county_secret = "{base64.b64encode(county_secret).decode()}"', "[keys]"]
    lines += [f'{key_id} = "{base64.b64encode(key).decode()}"' for key_id, key in keys.items()]
    return "\n".join(lines) + "\n"


def _write_new(path: Path, text: str) -> None:
    """Write ``text`` to a new file ``path`` (mode 0600; refused if it exists), on disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def create_key_file(path: str | os.PathLike[str], county_secret: bytes | None = None,
                    key_id: str = "k1") -> Path:
    """Write a new key file (mode 0600, refused if the file exists). ``county_secret`` is
    the county's shared secret (given to every device); a new random one when None, which
    suits a county of one device or a test."""
    path = Path(path)
    secret = county_secret if county_secret is not None else os.urandom(KEY_BYTES)
    if len(secret) != KEY_BYTES:
        raise ValueError(f"county secret must be {KEY_BYTES} bytes")
    _write_new(path, _key_file_text(key_id, {key_id: os.urandom(KEY_BYTES)}, "c1", secret))
    return path


def _next_key_id(existing: dict[str, bytes]) -> str:
    numbers = [int(k[1:]) for k in existing if re.fullmatch(r"k\d+", k)]
    n = max(numbers, default=len(existing)) + 1
    while f"k{n}" in existing:
        n += 1
    return f"k{n}"


def rotate_key_file(path: str | os.PathLike[str]) -> str:
    """Add a new random key to the key file at ``path`` and make it ``current``; every old
    key stays, so values encrypted under it remain readable. The file is replaced
    atomically, keeping its mode 0600 and its owner. Returns the new key id. Raises what
    :func:`load_keys` raises for a missing, unsafe or invalid file."""
    path = Path(path)
    keys = load_keys(path)
    new_id = _next_key_id(keys.keys)
    table = {**keys.keys, new_id: os.urandom(KEY_BYTES)}
    st = os.stat(path)
    temp = path.with_name(f".{path.name}.rotate-{secrets.token_hex(4)}")
    try:
        _write_new(temp, _key_file_text(new_id, table, keys.county_key_id, keys.county_secret))
        if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            os.chown(temp, st.st_uid, st.st_gid)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return new_id


# -- the county secret, as handed from device to device ----------------------------------

class CountySecretInvalid(PersonalDataError, ValueError):
    """A county-secret file does not hold one base64 secret of the right length."""

    message_key = "keys.county_secret_invalid"


def write_county_secret(path: str | os.PathLike[str], secret: bytes) -> Path:
    """Write ``secret`` to a new file ``path`` (mode 0600, refused if it exists) in the
    form :func:`read_county_secret` reads: a comment line, then the base64."""
    path = Path(path)
    _write_new(path, "# library-kiosk county secret: the same on every device of the county"
                     " and the hub; keep it secret\n"
                     f"{base64.b64encode(secret).decode()}\n")
    return path


def read_county_secret(path: str | os.PathLike[str]) -> bytes:
    """The county secret in the file at ``path`` (as written by :func:`write_county_secret`:
    base64 of 32 bytes; lines starting with ``#`` and blank lines are ignored)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CountySecretInvalid(f"{path}: no such file", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CountySecretInvalid(f"{path}: {exc}", path=str(path)) from None
    body = "".join(line.strip() for line in text.splitlines()
                   if line.strip() and not line.lstrip().startswith("#"))
    try:
        secret = base64.b64decode(body, validate=True)
    except ValueError:
        secret = b""
    if len(secret) != KEY_BYTES:
        raise CountySecretInvalid(f"{path}: not {KEY_BYTES} bytes in base64", path=str(path))
    return secret
