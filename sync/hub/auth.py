"""Tokens: each device has its own bearer token, bound to its device id; staff tokens read
the exception list. The hub stores only a SHA-256 hash of each token, so a copy of its
database does not hand out credentials."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sync.hub.errors import Forbidden, Unauthorized

DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,31}$")


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to: ``kind`` is ``device`` (``name`` is its device id) or
    ``staff``."""

    kind: str
    name: str


def new_token() -> str:
    """A fresh random token (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer ...`` header; :class:`Unauthorized` if none."""
    if not header:
        raise Unauthorized("missing Authorization: Bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    return token.strip()


def require_device(principal: Principal | None, device_id: str,
                   client_cn: str | None = None, mtls: bool = False) -> None:
    """Allow only the device's own token (and, under mTLS, its own certificate)."""
    if principal is None:
        raise Unauthorized("unknown token")
    if principal.kind != "device" or principal.name != device_id:
        raise Forbidden("this token may not act for this device")
    if mtls and client_cn != device_id:
        raise Forbidden("the client certificate's CN is not this device")


def require_staff(principal: Principal | None) -> None:
    if principal is None:
        raise Unauthorized("unknown token")
    if principal.kind != "staff":
        raise Forbidden("staff token required")
