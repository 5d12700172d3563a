"""A small HTTP-aware TCP proxy between the hub client and the hub, breaking things on purpose.

    with FaultProxy(hub.url) as proxy:
        proxy.inject(Fault.RESET_RESPONSE, times=2, path="/events")
        client = HubClient(proxy.url, ...)

It runs in threads on 127.0.0.1 and forwards requests unchanged (keep-alive on both sides)
until a fault is injected. Faults are taken one per request, in the order injected, by the
first request whose path contains ``path``. What each does:

- ``REFUSE``: nothing listens for ``seconds`` (connection refused), and open connections
  are reset. Use :meth:`FaultProxy.refuse`.
- ``RESET_REQUEST``: half the request is read, then the connection is reset; the hub sees
  nothing.
- ``RESET_RESPONSE``: the request reaches the hub, which answers; the client gets
  ``after_bytes`` of the answer (default: half of it), then a reset. The classic lost ack.
- ``TIMEOUT``: the request is read (and forwarded when ``forward``), then silence until
  the client gives up.
- ``TRICKLE``: forwarded; the answer comes ``chunk`` bytes every ``delay`` seconds.
- ``HTTP_500``, ``HTTP_503`` (``Retry-After: retry_after``), ``HTTP_429``: fabricated
  error answers in the hub's Error shape (or not, with ``shape=False``); the hub sees
  nothing unless ``forward``.
- ``TRUNCATED``: forwarded; the answer's body is cut after ``after_bytes`` (default half)
  and the connection closed.
- ``NOT_JSON``, ``WRONG_TYPE``: forwarded; the client gets 200 with a body that is not
  JSON, or an HTML page (a captive portal).
- ``PARTIAL_ACK``: forwarded; ``acked_through_seq`` in the answer is lowered by ``lower``
  (default: half-way back to the batch's start).
- ``DROP_END``: forwarded uncompressed; the snapshot's ``end`` line is left out of an
  otherwise well-formed answer.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit


class Fault(StrEnum):
    REFUSE = "refuse"
    RESET_REQUEST = "reset_request"
    RESET_RESPONSE = "reset_response"
    TIMEOUT = "timeout"
    TRICKLE = "trickle"
    HTTP_500 = "http_500"
    HTTP_503 = "http_503"
    HTTP_429 = "http_429"
    TRUNCATED = "truncated"
    NOT_JSON = "not_json"
    WRONG_TYPE = "wrong_type"
    PARTIAL_ACK = "partial_ack"
    DROP_END = "drop_end"


@dataclass
class _Planned:
    fault: Fault
    times: int
    path: str
    options: dict[str, Any] = field(default_factory=dict)


class _Closed(Exception):
    pass


class _Reader:
    """Buffered reads off a socket: lines, exact counts, HTTP heads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise _Closed
        self.buf += data

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def some(self) -> bytes:
        if not self.buf:
            self._fill()
        out, self.buf = self.buf, b""
        return out


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}


def _reset(sock: socket.socket) -> None:
    # SO_LINGER 0: close() sends RST instead of FIN, as a dropped link or a crashed
    # middlebox does.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _response(status: int, reason: str, body: bytes, ctype: str = "application/json",
              extra: dict[str, str] | None = None) -> bytes:
    hdrs = {"Content-Type": ctype, "Content-Length": str(len(body)),
            "X-Hub-Time-Ns": str(time.time_ns()), **(extra or {})}
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return head.encode("latin-1") + b"\r\n" + body


class FaultProxy:
    """Forwards ``127.0.0.1:<free port>`` to the hub at ``upstream`` (its API base URL).

    ``url`` is the API base through the proxy. ``applied`` counts faults that happened;
    ``requests`` lists (method, path) of every request seen; ``bytes_up``/``bytes_down``
    count bytes from and to the client. ``close()`` is idempotent.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname and parts.port, upstream
        self.upstream = (parts.hostname, parts.port)
        self._base_path = parts.path
        self._lock = threading.Lock()
        self._plan: list[_Planned] = []
        self._conns: set[socket.socket] = set()
        self.applied: Counter[str] = Counter()
        self.requests: list[tuple[str, str]] = []
        self.bytes_up = 0
        self.bytes_down = 0
        self._closed = threading.Event()
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}{self._base_path}"
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True,
                                           name="faultproxy-accept")
        self._accepting.start()

    # -- control -------------------------------------------------------------------------

    def inject(self, fault: Fault, times: int = 1, path: str = "", **options: Any) -> None:
        """Apply ``fault`` to the next ``times`` requests whose path contains ``path``."""
        with self._lock:
            self._plan.append(_Planned(Fault(fault), times, path, options))

    def clear(self) -> None:
        with self._lock:
            self._plan.clear()

    def pending(self) -> int:
        with self._lock:
            return sum(p.times for p in self._plan)

    def refuse(self, seconds: float) -> None:
        """Stop listening (connections are refused) and reset every open connection; listen
        again after ``seconds``."""
        self.applied[Fault.REFUSE] += 1
        listener = self._listener
        self._listener = None  # type: ignore[assignment]
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        with self._lock:
            conns, self._conns = set(self._conns), set()
        for sock in conns:
            _reset(sock)

        def reopen() -> None:
            if self._closed.wait(seconds):
                return
            self._listener = self._listen(self.port)
            threading.Thread(target=self._accept_loop, daemon=True).start()

        threading.Thread(target=reopen, daemon=True).start()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        with self._lock:
            conns, self._conns = set(self._conns), set()
        for sock in conns:
            _reset(sock)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FaultProxy :{self.port} -> {self.upstream[0]}:{self.upstream[1]}>"

    # -- machinery -----------------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
        return sock

    def _accept_loop(self) -> None:
        listener = self._listener
        while not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True,
                             name="faultproxy-conn").start()

    def _take(self, path: str) -> _Planned | None:
        with self._lock:
            for planned in self._plan:
                if planned.path in path:
                    planned.times -= 1
                    if planned.times <= 0:
                        self._plan.remove(planned)
                    self.applied[planned.fault] += 1
                    return planned
        return None

    def _send(self, sock: socket.socket, data: bytes) -> None:
        sock.sendall(data)
        self.bytes_down += len(data)

    def _serve(self, client: socket.socket) -> None:
        reader = _Reader(client)
        upstream: socket.socket | None = None
        up_reader: _Reader | None = None
        try:
            while True:
                head = reader.until(b"\r\n\r\n")
                length = int(_headers(head).get("content-length") or 0)
                body = reader.exact(length)
                self.bytes_up += len(head) + len(body)
                method, path = head.split(b" ", 2)[:2]
                self.requests.append((method.decode(), path.decode()))
                planned = self._take(path.decode())
                if planned is not None and planned.fault is Fault.RESET_REQUEST:
                    _reset(client)
                    return
                if planned is not None and planned.fault is Fault.DROP_END:
                    head = b"\r\n".join(ln for ln in head.split(b"\r\n")
                                        if not ln.lower().startswith(b"accept-encoding"))
                if upstream is None and self._forwards(planned):
                    upstream = socket.create_connection(self.upstream, timeout=60)
                    up_reader = _Reader(upstream)
                if self._forwards(planned):
                    assert upstream is not None
                    upstream.sendall(head + body)
                if not self._answer(client, up_reader, planned, method == b"HEAD"):
                    return
        except (_Closed, OSError):
            pass
        finally:
            with self._lock:
                self._conns.discard(client)
            with contextlib.suppress(OSError):
                client.close()
            if upstream is not None:
                with contextlib.suppress(OSError):
                    upstream.close()

    @staticmethod
    def _forwards(planned: _Planned | None) -> bool:
        if planned is None:
            return True
        if planned.fault in (Fault.HTTP_500, Fault.HTTP_503, Fault.HTTP_429, Fault.TIMEOUT):
            return bool(planned.options.get("forward", False))
        return True

    def _answer(self, client: socket.socket, up: _Reader | None, planned: _Planned | None,
                head_only: bool) -> bool:
        """Answer one request; False when the client connection is finished."""
        fault = planned.fault if planned else None
        opts = planned.options if planned else {}
        if fault in (Fault.HTTP_500, Fault.HTTP_503, Fault.HTTP_429):
            if up is not None and opts.get("forward"):
                self._read_response(up)
            status, code = {Fault.HTTP_500: (500, "internal"),
                            Fault.HTTP_503: (503, "unavailable"),
                            Fault.HTTP_429: (429, "rate_limited")}[fault]
            extra = {}
            if fault is not Fault.HTTP_500 and opts.get("retry_after") is not None:
                extra["Retry-After"] = str(opts["retry_after"])
            body = json.dumps({"error": {"code": code, "message": "injected by FaultProxy",
                                         "retryable": True}}).encode()
            if opts.get("shape") is False:
                body = b"<html><body>Bad gateway</body></html>"
            self._send(client, _response(status, "Injected", body,
                                         "application/json" if opts.get("shape", True)
                                         else "text/html", extra))
            return True
        if fault is Fault.TIMEOUT:
            if up is not None and opts.get("forward"):
                self._read_response(up)
            # Silence until the client gives up (or the proxy closes).
            while not self._closed.is_set():
                try:
                    client.settimeout(0.2)
                    if client.recv(1) == b"":
                        return False
                except TimeoutError:
                    continue
                except OSError:
                    return False
            return False
        assert up is not None
        if fault is None:
            return self._relay(client, up, head_only)
        if fault is Fault.RESET_RESPONSE and "after_bytes" in opts:
            return self._relay(client, up, head_only, limit=int(opts["after_bytes"]),
                               reset=True)
        if fault is Fault.TRUNCATED and "after_bytes" in opts:
            return self._relay(client, up, head_only, limit=int(opts["after_bytes"]))
        if fault is Fault.DROP_END:
            return self._drop_end(client, up)
        head, body = self._read_response(up)
        if fault is Fault.RESET_RESPONSE:
            whole = self._rebuild(head, body)
            self._send(client, whole[: len(whole) // 2])
            _reset(client)
            return False
        if fault is Fault.TRUNCATED:
            whole = self._rebuild(head, body)
            self._send(client, whole[: len(whole) - max(1, len(body) // 2)])
            client.shutdown(socket.SHUT_RDWR)
            return False
        if fault is Fault.TRICKLE:
            whole = self._rebuild(head, body)
            step, delay = int(opts.get("chunk", 16)), float(opts.get("delay", 0.01))
            for i in range(0, len(whole), step):
                self._send(client, whole[i:i + step])
                time.sleep(delay)
            return True
        if fault is Fault.NOT_JSON:
            self._send(client, _response(200, "OK", b'{"acked_through_seq": 12, "stor'))
            return True
        if fault is Fault.WRONG_TYPE:
            page = "<html><head><title>登录</title></head><body>Wi-Fi login</body></html>"
            self._send(client, _response(200, "OK", page.encode(), "text/html; charset=utf-8"))
            return True
        if fault is Fault.PARTIAL_ACK:
            self._send(client, self._lower_ack(head, body, opts.get("lower")))
            return True
        raise AssertionError(fault)

    # -- HTTP responses --------------------------------------------------------------------

    def _read_response(self, up: _Reader) -> tuple[bytes, bytes]:
        """(head, body) of one upstream response, the body de-chunked but still encoded."""
        head = up.until(b"\r\n\r\n")
        hdrs = _headers(head)
        if "chunked" in hdrs.get("transfer-encoding", ""):
            parts = []
            while True:
                size = int(up.until(b"\r\n").split(b";")[0], 16)
                parts.append(up.exact(size))
                up.exact(2)
                if size == 0:
                    break
            return head, b"".join(parts)
        return head, up.exact(int(hdrs.get("content-length") or 0))

    @staticmethod
    def _rebuild(head: bytes, body: bytes) -> bytes:
        lines = [ln for ln in head.rstrip(b"\r\n").split(b"\r\n")
                 if not ln.lower().startswith((b"transfer-encoding", b"content-length"))]
        lines.append(b"Content-Length: " + str(len(body)).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def _lower_ack(self, head: bytes, body: bytes, lower: int | None) -> bytes:
        hdrs = _headers(head)
        raw = gzip.decompress(body) if hdrs.get("content-encoding") == "gzip" else body
        try:
            doc = json.loads(raw)
            acked = int(doc["acked_through_seq"])
        except (ValueError, KeyError, TypeError):
            return self._rebuild(head, body)
        doc["acked_through_seq"] = max(0, acked - (lower if lower is not None
                                                   else max(1, doc.get("stored", 2) // 2)))
        new = json.dumps(doc).encode()
        lines = [ln for ln in head.rstrip(b"\r\n").split(b"\r\n")
                 if not ln.lower().startswith((b"content-encoding", b"transfer-encoding",
                                               b"content-length"))]
        lines.append(b"Content-Length: " + str(len(new)).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + new

    def _relay(self, client: socket.socket, up: _Reader, head_only: bool,
               limit: int | None = None, reset: bool = False) -> bool:
        """Copy one response through as it comes (a snapshot is never held whole); with
        ``limit``, stop after that many bytes and reset or close the client."""
        sent = 0

        def out(data: bytes) -> None:
            nonlocal sent
            if limit is not None and sent + len(data) >= limit:
                self._send(client, data[: max(0, limit - sent)])
                raise _Stop
            self._send(client, data)
            sent += len(data)

        head = up.until(b"\r\n\r\n")
        hdrs = _headers(head)
        try:
            out(head)
            if head_only:
                return True
            if "chunked" in hdrs.get("transfer-encoding", ""):
                while True:
                    line = up.until(b"\r\n")
                    size = int(line.split(b";")[0], 16)
                    out(line)
                    out(up.exact(size + 2))
                    if size == 0:
                        return True
            elif "content-length" in hdrs:
                left = int(hdrs["content-length"])
                while left:
                    data = up.some()
                    if len(data) > left:
                        up.buf, data = data[left:] + up.buf, data[:left]
                    out(data)
                    left -= len(data)
                return True
            else:
                with contextlib.suppress(_Closed):
                    while True:
                        out(up.some())
                return False
        except _Stop:
            if reset:
                _reset(client)
            else:
                client.shutdown(socket.SHUT_RDWR)
            return False

    def _drop_end(self, client: socket.socket, up: _Reader) -> bool:
        head, body = self._read_response(up)
        kept = b"".join(line for line in body.splitlines(keepends=True)
                        if b'"type":"end"' not in line.replace(b" ", b""))
        self._send(client, self._rebuild(head, kept))
        return True


class _Stop(Exception):
    pass
