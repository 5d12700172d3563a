"""The county hub client: one device's HTTP(S) link to the hub (docs/hub-api.yaml).

What a caller may rely on:

- Every call has a (connect, read) timeout; none can hang for ever.
- TLS is always verified: against ``ca_file`` when given, else the system's CAs. A client
  certificate is sent when one is configured (mTLS). Plain ``http://`` is accepted only for
  the loopback address (the reference hub on a developer machine, the tests).
- Request bodies are gzip-compressed JSON; responses are asked for gzip-compressed.
- Every exchange that got an answer with ``X-Hub-Time-Ns`` yields a :class:`ClockAnchor`
  (this boot's id, the boot-time monotonic clock at the midpoint of the exchange, the hub's
  time and the round-trip time), passed to ``on_anchor`` and kept as ``last_anchor``.
- A failure is a :class:`HubError` subclass carrying the hub's stable ``code``, whether a
  retry may help (``retryable``) and the ``Retry-After`` the hub asked for; nothing returns
  ``None`` for an error. Answers that are not what the contract says (not JSON, wrong
  content type, cut short, fields missing) are :class:`HubProtocolError` (retryable: a
  captive portal or a broken proxy is usually temporary).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from sync.clock import Clock

HUB_TIME_HEADER = "X-Hub-Time-Ns"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def software_version() -> str:
    """This software's version from the installed package's metadata ("dev" when it runs
    from a source tree that was never installed)."""
    try:
        return metadata.version("library-kiosk")
    except metadata.PackageNotFoundError:
        return "dev"


USER_AGENT = f"library-kiosk/{software_version()}"


# -- errors ------------------------------------------------------------------------------


class HubError(Exception):
    """Root of every hub-link failure. ``code`` is the hub's stable code (or one of ours:
    ``unreachable``, ``timeout``, ``tls``, ``protocol``); ``retryable`` says whether trying
    the same request again may help; ``retry_after`` is the hub's ``Retry-After`` in
    seconds, if it sent one."""

    message_key = "sync.error.hub"

    def __init__(
        self, detail: str, *, code: str = "internal", retryable: bool = True,
        status: int | None = None, retry_after: float | None = None, **params: object,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.params = {"detail": detail, "code": code, **params}


class HubNotConfigured(HubError, LookupError):
    """No hub URL, or its token file cannot be read: sync is off until the config says."""

    message_key = "sync.error.not_configured"


class HubUnreachable(HubError, ConnectionError):
    """No connection: refused, reset, no route, DNS. The link may come back."""

    message_key = "sync.error.unreachable"


class HubTimeout(HubUnreachable, TimeoutError):
    """Connected (or not) but no answer within the timeout."""

    message_key = "sync.error.timeout"


class HubTLSError(HubError, ConnectionError):
    """The hub's certificate did not verify against the configured CA, or our client
    certificate was refused. Not retried at once: usually the config or a captive portal."""

    message_key = "sync.error.tls"


class HubProtocolError(HubError, ValueError):
    """An answer that breaks the contract: not JSON, wrong content type, cut short."""

    message_key = "sync.error.protocol"


class HubRefused(HubError):
    """The hub answered with an error a retry of the same request will not fix."""

    message_key = "sync.error.refused"


class HubAuthError(HubRefused, PermissionError):
    """401/403: the device token (or certificate) is wrong, revoked or for another device."""

    message_key = "sync.error.auth"


class CursorExpired(HubRefused):
    """410: the stored cursor is older than the hub's log; take a new snapshot."""

    message_key = "sync.error.cursor_expired"


class HubBusy(HubError):
    """429 or 503: the hub asks to come back later (``retry_after`` when it said when)."""

    message_key = "sync.error.busy"


class HubServerError(HubError):
    """5xx other than 503: the hub failed; a retry later may help."""

    message_key = "sync.error.server"


_BY_CODE: dict[str, type[HubError]] = {
    "unauthorized": HubAuthError, "forbidden": HubAuthError,
    "cursor_expired": CursorExpired, "rate_limited": HubBusy, "unavailable": HubBusy,
}


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import UTC, datetime

    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(resp: requests.Response) -> HubError:
    """The :class:`HubError` for a non-2xx answer, from the Error shape when the body has
    it, else from the status alone (a proxy's HTML error page has no Error shape)."""
    status = resp.status_code
    retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
    code, message, retryable = "", "", status in (408, 429) or status >= 500
    try:
        body = resp.json()
        err = body["error"]
        code, message = str(err["code"]), str(err.get("message", ""))
        retryable = bool(err["retryable"])
    except (ValueError, KeyError, TypeError, requests.RequestException):
        pass
    if not code:
        code = {401: "unauthorized", 403: "forbidden", 410: "cursor_expired",
                429: "rate_limited", 503: "unavailable"}.get(status, "internal")
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = HubServerError if status >= 500 else HubBusy if retryable else HubRefused
    detail = f"HTTP {status} {code}: {message or resp.reason}"
    return cls(detail, code=code, retryable=retryable, status=status, retry_after=retry_after)


def _transport_error(exc: requests.RequestException, what: str) -> HubError:
    detail = f"{what}: {exc}"
    if isinstance(exc, requests.exceptions.SSLError):
        return HubTLSError(detail, code="tls", retryable=False)
    if isinstance(exc, requests.Timeout):
        return HubTimeout(detail, code="timeout")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.
                  ContentDecodingError):
        return HubProtocolError(detail, code="protocol")
    return HubUnreachable(detail, code="unreachable")


# -- data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockAnchor:
    """At this device's boot-time monotonic clock ``mono_ns`` (boot ``boot_id``), the hub's
    clock read ``hub_time_ns``, give or take ``rtt_ns / 2``."""

    boot_id: str
    mono_ns: int
    hub_time_ns: int
    rtt_ns: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PushResult:
    device_id: str
    stored: int
    duplicates: int
    acked_through_seq: int
    hub_time_ns: int
    missing_seqs: tuple[int, ...] = ()


@dataclass(frozen=True)
class ChangePage:
    changes: list[dict[str, Any]]
    cursor: str
    has_more: bool


def check_url(url: str) -> str:
    """``url`` without a trailing slash if it is https, or http on the loopback address;
    ``ValueError`` otherwise (a device token never travels in clear over a network)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return url.rstrip("/")
    raise ValueError(f"hub url must be https://..., or http:// on 127.0.0.1: {url!r}")


def read_token(path: str | os.PathLike[str]) -> str:
    """The device token stored in ``path`` (surrounding whitespace removed)."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise HubNotConfigured(f"token file {path}: {exc.strerror or exc}",
                               code="no_token", retryable=False, path=str(path)) from exc
    if not token:
        raise HubNotConfigured(f"token file {path} is empty", code="no_token",
                               retryable=False, path=str(path))
    return token


def encode_body(obj: Any) -> bytes:
    """Compact, key-sorted JSON, gzip-compressed with a zero timestamp: the same object
    always gives the same bytes, so a resent batch is byte-identical."""
    raw = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return gzip.compress(raw.encode("utf-8"), compresslevel=6, mtime=0)


# -- the client ----------------------------------------------------------------------------


class HubClient:
    """One device's session with the hub. Not thread-safe: one syncer uses it.

    ``url`` is the API base (``https://hub.example/api/v1``). ``timeout`` is (connect, read)
    in seconds. ``close()`` is idempotent; the client is a context manager.
    """

    def __init__(
        self,
        url: str,
        device_id: str,
        token: str,
        *,
        clock: Clock,
        ca_file: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        on_anchor: Callable[[ClockAnchor], None] | None = None,
    ) -> None:
        self.url = check_url(url)
        self.device_id = device_id
        self.clock = clock
        self.timeout = timeout
        self.on_anchor = on_anchor
        self.last_anchor: ClockAnchor | None = None
        self.bytes_sent = 0
        self.bytes_received = 0
        self.requests = 0
        self._session = requests.Session()
        # No proxies, netrc or CA bundle from the environment: a stray ~/.netrc would
        # replace the bearer token, and the CA to trust is the configured one.
        self._session.trust_env = False
        self._session.verify = str(ca_file) if ca_file else True
        if client_cert:
            self._session.cert = (str(client_cert), str(client_key)) if client_key \
                else str(client_cert)
        self._session.headers.update({
            "Authorization": f"Bearer {token}", "Accept-Encoding": "gzip",
            "Accept": "application/json", "User-Agent": USER_AGENT,
        })
        self._closed = False

    # -- plumbing ------------------------------------------------------------------------

    def _path(self, tail: str) -> str:
        return f"{self.url}/devices/{self.device_id}/{tail}"

    def _send(self, method: str, url: str, *, body: Any = None, stream: bool = False,
              headers: dict[str, str] | None = None, raw_body: bytes | None = None,
              params: dict[str, Any] | None = None, what: str = "") -> requests.Response:
        data = raw_body if raw_body is not None else (
            None if body is None else encode_body(body))
        hdrs = dict(headers or {})
        if data is not None:
            hdrs.update({"Content-Type": "application/json", "Content-Encoding": "gzip"})
        start = self.clock.monotonic_ns()
        try:
            resp = self._session.request(method, url, data=data, headers=hdrs, params=params,
                                         timeout=self.timeout, stream=stream)
        except requests.RequestException as exc:
            raise _transport_error(exc, what or url) from exc
        end = self.clock.monotonic_ns()
        self.requests += 1
        self._count_heads(resp)
        self._anchor(resp, start, end)
        if resp.status_code >= 400:
            try:
                err = error_from_response(resp)
            finally:
                resp.close()
            raise err
        return resp

    def _count_heads(self, resp: requests.Response) -> None:
        # HTTP bytes on the wire (TCP/TLS framing aside): request line, headers and body
        # out; status line and headers in (bodies in are counted as they are read).
        req = resp.request
        out = len(f"{req.method} {req.path_url} HTTP/1.1\r\n") + 2
        out += sum(len(k) + len(str(v)) + 4 for k, v in req.headers.items())
        body = req.body
        out += len(body) if isinstance(body, bytes | str) else 0
        self.bytes_sent += out
        self.bytes_received += 17 + len(resp.reason or "") + 2 + sum(
            len(k) + len(v) + 4 for k, v in resp.headers.items())

    def _anchor(self, resp: requests.Response, start: int, end: int) -> None:
        raw = resp.headers.get(HUB_TIME_HEADER)
        if raw is None or not raw.strip().lstrip("-").isdigit():
            return
        anchor = ClockAnchor(self.clock.boot_id(), (start + end) // 2, int(raw), end - start)
        self.last_anchor = anchor
        if self.on_anchor is not None:
            self.on_anchor(anchor)

    def _json(self, resp: requests.Response, what: str, required: tuple[str, ...]) -> Any:
        try:
            ctype = resp.headers.get("Content-Type", "")
            if ctype.split(";")[0].strip().lower() != "application/json":
                raise HubProtocolError(f"{what}: content type {ctype!r}, not JSON",
                                       code="protocol")
            try:
                content = resp.content
            except requests.RequestException as exc:
                raise _transport_error(exc, what) from exc
            self.bytes_received += int(resp.headers.get("Content-Length") or len(content))
            try:
                body = json.loads(content)
            except (ValueError, UnicodeDecodeError) as exc:
                raise HubProtocolError(f"{what}: body is not JSON ({exc})",
                                       code="protocol") from exc
        finally:
            resp.close()
        if not isinstance(body, dict) or any(k not in body for k in required):
            raise HubProtocolError(f"{what}: answer lacks {', '.join(required)}",
                                   code="protocol")
        return body

    # -- the API -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """GET /health: cheap, unauthenticated. Raises like every call when unreachable."""
        resp = self._send("GET", f"{self.url}/health", what="health")
        return self._json(resp, "health", ("status", "hub_time_ns"))

    def push(self, body_gz: bytes, idempotency_key: str) -> PushResult:
        """POST one prepared batch (:func:`encode_body` of an EventBatch). Sending the same
        bytes with the same key again is safe; the hub stores each event once."""
        resp = self._send("POST", self._path("events"), raw_body=body_gz,
                          headers={"Idempotency-Key": idempotency_key}, what="push")
        body = self._json(resp, "push", ("acked_through_seq", "stored", "duplicates"))
        try:
            return PushResult(
                device_id=str(body.get("device_id", self.device_id)),
                stored=int(body["stored"]), duplicates=int(body["duplicates"]),
                acked_through_seq=int(body["acked_through_seq"]),
                hub_time_ns=int(body.get("hub_time_ns") or 0),
                missing_seqs=tuple(int(s) for s in body.get("missing_seqs") or ()),
            )
        except (TypeError, ValueError) as exc:
            raise HubProtocolError(f"push: bad field ({exc})", code="protocol") from exc

    def changes(self, cursor: str | None, limit: int = 1000) -> ChangePage:
        """GET one page of the change feed after ``cursor`` (None: from the start)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        resp = self._send("GET", self._path("changes"), params=params, what="changes")
        body = self._json(resp, "changes", ("changes", "cursor", "has_more"))
        if not isinstance(body["changes"], list) or not isinstance(body["cursor"], str):
            raise HubProtocolError("changes: malformed page", code="protocol")
        return ChangePage(body["changes"], body["cursor"], bool(body["has_more"]))

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Iterator[dict[str, Any]]]:
        """The snapshot as an iterator of parsed NDJSON lines, streamed: only one chunk of
        the (decompressed) body is held at a time. A broken stream raises a
        :class:`HubError` from the iterator; the caller must then discard what it read
        (a stream without its ``end`` line is incomplete)."""
        resp = self._send("GET", self._path("snapshot"), stream=True, what="snapshot")
        try:
            yield self._lines(resp)
        finally:
            resp.close()

    def _lines(self, resp: requests.Response) -> Iterator[dict[str, Any]]:
        try:
            for line in resp.iter_lines(chunk_size=256 * 1024):
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise HubProtocolError(f"snapshot: line is not JSON ({exc})",
                                           code="protocol") from exc
        except requests.RequestException as exc:
            raise _transport_error(exc, "snapshot") from exc
        finally:
            # Compressed bytes read off the socket so far.
            with contextlib.suppress(Exception):
                self.bytes_received += int(resp.raw.tell())

    def lease_card_range(self, size: int = 1000) -> dict[str, Any]:
        """POST card-ranges: a new range of card numbers leased to this device alone."""
        resp = self._send("POST", self._path("card-ranges"), body={"size": size},
                          what="card-ranges")
        return self._json(resp, "card-ranges", ("range_id", "prefix", "first_number",
                                                "last_number"))

    def put_stats(self, body: dict[str, Any]) -> dict[str, Any]:
        """PUT the device's daily figures (``DailyStats``) of some days: absolute values, so
        sending the same days again changes nothing."""
        resp = self._send("PUT", self._path("stats"), body=body, what="stats")
        return self._json(resp, "stats", ("days", "hub_time_ns"))

    def heartbeat(self, body: dict[str, Any]) -> int:
        """POST heartbeat; returns the hub's time."""
        resp = self._send("POST", self._path("heartbeat"), body=body, what="heartbeat")
        return int(self._json(resp, "heartbeat", ("hub_time_ns",))["hub_time_ns"])

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._session.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<HubClient {self.device_id} -> {self.url}>"
