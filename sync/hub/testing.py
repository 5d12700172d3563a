"""A real hub on loopback for tests and the demo: :class:`HubServer`.

Usage::

    with HubServer(tmp_path / "hub.db", sample="small", devices={"van-01": TOKEN}) as hub:
        requests.get(f"{hub.url}/health")

It runs the same Starlette app under uvicorn as ``kiosk hub serve``, in a background thread
of this process, on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import requests

from sync.hub.config import HubConfig
from sync.hub.server import TLSFiles, bind, build_server
from sync.hub.store import SqliteHubStore


class HubServer:
    """Start the hub on ``db_path`` (created if missing) and stop it on exit.

    - ``sample``: ``"small"`` (or ``"county"``) loads the sample county into an empty hub.
    - ``devices``: device id -> token; each device is registered with exactly that token.
    - ``staff_token``: registered as staff token ``"staff"`` when given.
    - ``tls``: serve HTTPS with these files (with ``client_ca``: mTLS).
    - ``config``: the hub's :class:`~sync.hub.config.HubConfig` (defaults otherwise).
    - ``applier``: False starts the hub without its background applier, as a test's way to
      hold application back: pushed events then stay stored, unapplied, until something
      reads (a pull, a snapshot, the exceptions) or ``store.apply_pending()`` is called.

    On entry the server answers ``/health`` (or entry raises ``RuntimeError``). Callers may
    rely on ``url`` (``http[s]://127.0.0.1:PORT/api/v1``), ``port``, ``db_path`` and
    ``store`` (the :class:`~sync.hub.store.SqliteHubStore` the server uses, for admin calls
    such as ``compact`` or ``apply_pending``). Leaving the ``with`` block stops the server,
    then the applier (events still waiting stay stored), and closes the database; stopping
    twice is harmless.
    """

    def __init__(self, db_path: str | os.PathLike[str], *, sample: str | None = None,
                 devices: dict[str, str] | None = None, staff_token: str | None = None,
                 tls: TLSFiles | None = None, config: HubConfig | None = None,
                 applier: bool = True) -> None:
        self.db_path = Path(db_path)
        self.sample = sample
        self.devices = dict(devices or {})
        self.staff_token = staff_token
        self.tls = tls
        self.config = config or HubConfig()
        self.applier = applier
        self.port = 0
        self.url = ""
        self.store: SqliteHubStore | None = None
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> HubServer:
        store = SqliteHubStore.open(self.db_path, self.config)
        self.store = store
        if self.sample:
            store.load_sample(self.sample)
        for device_id, token in self.devices.items():
            store.add_device(device_id, token)
        if self.staff_token:
            store.add_staff("staff", self.staff_token)
        if self.applier:
            store.start_applier()
        sock = bind("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/api/v1"
        self._server = build_server(store, tls=self.tls)
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True,
                                        name=f"hub-{self.port}")
        self._thread.start()
        self._wait_until_up()
        return self

    def _run(self, sock) -> None:
        try:
            self._server.run(sockets=[sock])
        finally:
            sock.close()

    def _wait_until_up(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server is not None and self._server.started:
                # Health over HTTP only: under TLS the caller's CA settings decide trust.
                if self.tls is not None:
                    return
                try:
                    if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                        return
                except requests.RequestException:
                    pass
            if self._thread is not None and not self._thread.is_alive():
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"hub on port {self.port} did not start")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=0.5)
            if self._thread.is_alive() and self._server is not None:
                # Idle TLS keep-alive connections of clients that never read again wait
                # for a close_notify answer; a test server need not wait for them.
                self._server.force_exit = True
                self._thread.join(timeout=10)
            self._thread = None
        if self.store is not None:
            self.store.close()
            self.store = None
        self._server = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<HubServer {self.url or 'stopped'} {self.db_path}>"
