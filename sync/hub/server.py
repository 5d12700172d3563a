"""Running the hub with uvicorn: address, TLS, and client certificates (mTLS).

Uvicorn does not hand the client's certificate to the ASGI app, so under mTLS the hub uses
uvicorn's own HTTP protocol class with one addition: when a TLS connection is made it
records the certificate's subject CN by the client's address, and forgets it when the
connection is lost. The app asks :class:`PeerCerts` for the CN of the request's client.
The TLS handshake itself (uvicorn's ``ssl_ca_certs`` with ``CERT_REQUIRED``) already refuses
certificates the county's client CA did not sign.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sync.hub.app import create_app
from sync.hub.store import HubStore

log = logging.getLogger("sync.hub")


@dataclass(frozen=True)
class TLSFiles:
    """PEM files: the hub's certificate and key, and optionally the CA that signs device
    certificates (then every device must present one whose CN is its device id)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


class PeerCerts:
    """The subject CN of each open TLS connection's client certificate, by client address."""

    def __init__(self) -> None:
        self._cn: dict[tuple[str, int], str | None] = {}
        self._lock = threading.Lock()

    def connected(self, client: tuple[str, int], cert: dict[str, Any] | None) -> None:
        cn = None
        for rdn in (cert or {}).get("subject", ()):
            for name, value in rdn:
                if name == "commonName":
                    cn = value
        with self._lock:
            self._cn[client] = cn

    def disconnected(self, client: tuple[str, int]) -> None:
        with self._lock:
            self._cn.pop(client, None)

    def cn_for(self, scope: dict[str, Any]) -> str | None:
        client = scope.get("client")
        if not client:
            return None
        with self._lock:
            return self._cn.get((str(client[0]), int(client[1])))


def _protocol(peers: PeerCerts) -> type[asyncio.Protocol]:
    class PeerCertH11(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            tls = transport.get_extra_info("ssl_object")
            if self.client is not None:
                peers.connected(self.client, tls.getpeercert() if tls else None)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.client is not None:
                peers.disconnected(self.client)
            super().connection_lost(exc)

    return PeerCertH11


def build_server(store: HubStore, *, host: str = "127.0.0.1", port: int = 8470,
                 tls: TLSFiles | None = None, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for ``store`` (not yet running). Uvicorn's own access log is off:
    the app logs one line per request itself, without personal data."""
    options: dict[str, Any] = {}
    client_cn = None
    if tls is not None:
        options.update(ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key))
        if tls.client_ca is not None:
            peers = PeerCerts()
            client_cn = peers.cn_for
            options.update(ssl_ca_certs=str(tls.client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED,
                           http=_protocol(peers))
    app = create_app(store, client_cn=client_cn)
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_config=None,
                            log_level=log_level, lifespan="off", timeout_graceful_shutdown=5,
                            server_header=False, **options)
    return uvicorn.Server(config)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: a free port the kernel picks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. asyncio sets it itself only on sockets created with
    # proto IPPROTO_TCP, which a pre-bound socket is not; without it every small response
    # waits for the client's delayed ACK (about 40 ms a request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def serve(store: HubStore, *, host: str, port: int, tls: TLSFiles | None = None,
          on_listening: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then return normally after a graceful shutdown.

    Raises ``ssl.SSLError`` for certificate or key files that cannot be loaded and
    ``OSError`` when the address cannot be bound, before serving anything; otherwise calls
    ``on_listening(url)`` once the socket listens.

    Uvicorn handles the signal and, once shut down, raises it again under the handlers that
    were there before it started; ours only note it, so a stop by systemd or Ctrl-C is a
    clean return (exit code 0), not a death by signal.

    The store's background applier runs while the server does: it starts before the first
    request and stops after the last one has been answered (its chunk in progress commits;
    events still waiting stay stored and are applied at the next start).
    """
    server = build_server(store, host=host, port=port, tls=tls, log_level="info")
    # Loading the config reads the certificate and key: a bad file fails here (ssl.SSLError),
    # and a port in use fails at bind (OSError), both before anything is served.
    server.config.load()
    sock = bind(host, port)
    scheme = "https" if tls else "http"
    url = f"{scheme}://{host}:{sock.getsockname()[1]}/api/v1"
    log.info("hub listening on %s", url)
    if on_listening is not None:
        on_listening(url)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: None)
    store.start_applier()
    try:
        server.run(sockets=[sock])
    finally:
        store.stop_applier()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
