"""Helpers for the hub tests: devices that make events like a kiosk's outbox, HTTP clients
with their token, and TLS certificates made on the spot with the ``openssl`` command."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from sync.sample import EDGE_CASES

SPACE = "CN-431121-0002"
CENTRAL = "CN-431121-0001"
E = EDGE_CASES
SECOND = 1_000_000_000


def token_for(device_id: str) -> str:
    return f"token-of-{device_id}-0123456789"


STAFF = "staff-token-0123456789"


@dataclass
class Device:
    """A device's outbox, by hand: gap-free seqs, one boot, times the test chooses."""

    device_id: str
    branch: str = SPACE
    boot_id: str = "boot-1"
    seq: int = 0
    mono_ns: int = 5 * SECOND
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, kind: str, *, wall_ns: int | None = None, clock_synced: bool = True,
              mono_ns: int | None = None, **payload: Any) -> dict[str, Any]:
        self.seq += 1
        self.mono_ns = mono_ns if mono_ns is not None else self.mono_ns + SECOND
        ev = {
            "txn_id": uuid.uuid4().hex, "seq": self.seq, "kind": kind, "boot_id": self.boot_id,
            "mono_ns": self.mono_ns, "wall_ns": time.time_ns() if wall_ns is None else wall_ns,
            "clock_synced": clock_synced, "hlc": self.seq,
            "payload": {"branch": self.branch, "station": "kiosk", **payload},
        }
        self.events.append(ev)
        return ev

    def checkout(self, card: str, item: str, **kw: Any) -> dict[str, Any]:
        return self.event("checkout", card=card, item=item, due_date="2027-01-05",
                          flags=["offline"], **kw)

    def checkin(self, item: str, **kw: Any) -> dict[str, Any]:
        return self.event("checkin", item=item, flags=[], **kw)


class Client:
    """A device talking to the hub with its token (a fresh Idempotency-Key per push)."""

    def __init__(self, url: str, device_id: str, token: str | None = None,
                 **session: Any) -> None:
        self.url = url
        self.device_id = device_id
        self.http = requests.Session()
        # REQUESTS_CA_BUNDLE in the environment would override the session's own `verify`
        # (requests merges environment settings over session ones); the hub is on loopback.
        self.http.trust_env = False
        for key, value in session.items():
            setattr(self.http, key, value)
        self.http.headers["Authorization"] = f"Bearer {token or token_for(device_id)}"

    def path(self, tail: str) -> str:
        return f"{self.url}/devices/{self.device_id}/{tail}"

    def push(self, events: list[dict[str, Any]], *, key: str | None = None,
             anchors: list[dict[str, Any]] | None = None, gzipped: bool = False
             ) -> requests.Response:
        body: dict[str, Any] = {"device_id": self.device_id, "events": events}
        if anchors is not None:
            body["anchors"] = anchors
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json",
                   "Idempotency-Key": key or uuid.uuid4().hex}
        if gzipped:
            data = gzip.compress(data)
            headers["Content-Encoding"] = "gzip"
        return self.http.post(self.path("events"), data=data, headers=headers, timeout=30)

    def pull_all(self, cursor: str | None = None, limit: int = 1000
                 ) -> tuple[list[dict[str, Any]], str]:
        """Every change after ``cursor`` and the cursor to resume from."""
        out: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            r = self.http.get(self.path("changes"), params=params, timeout=30)
            assert r.status_code == 200, r.text
            page = r.json()
            out += page["changes"]
            cursor = page["cursor"]
            if not page["has_more"]:
                return out, cursor

    def verdicts(self) -> dict[str, dict[str, Any]]:
        """Latest verdict data by txn id."""
        changes, _ = self.pull_all()
        return {c["key"]: c["data"] for c in changes if c["feed"] == "verdict"}


def latest(changes: list[dict[str, Any]], feed: str) -> dict[str, dict[str, Any]]:
    """The newest data per key of one feed."""
    return {c["key"]: c["data"] for c in changes if c["feed"] == feed and c["op"] == "upsert"}


# -- certificates ------------------------------------------------------------------------

@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    folder: Path

    def client(self, cn: str) -> tuple[str, str]:
        """(cert, key) of a client certificate with subject CN ``cn``, signed by the CA."""
        return _sign(self.folder, f"client-{cn}", cn, self.ca, self.folder / "ca.key",
                     client=True)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _sign(folder: Path, name: str, cn: str, ca: Path, ca_key: Path, *, client: bool
          ) -> tuple[str, str]:
    key, csr, cert = (folder / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
    ext = folder / f"{name}.ext"
    ext.write_text("extendedKeyUsage=clientAuth\n" if client else
                   "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(ext))
    return str(cert), str(key)


def make_certs(folder: Path) -> Certs:
    """A self-signed CA, a server certificate for 127.0.0.1, all in ``folder``."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
             "-subj", "/CN=Test County Library CA")
    cert, key = _sign(folder, "server", "127.0.0.1", ca, ca_key, client=False)
    return Certs(ca, Path(cert), Path(key), folder)
