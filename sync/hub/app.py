"""The hub's HTTP layer: Starlette routes for every path of docs/hub-api.yaml.

What a client may rely on, whatever happens:

- every response carries ``X-Hub-Time-Ns`` (the hub's clock as it answered);
- every error is the contract's ``Error`` shape with a stable ``code`` — never a traceback;
  an unexpected failure is ``500 internal`` (retryable) and the server keeps running;
- request bodies may be gzip (``Content-Encoding: gzip``); responses are gzip when the client
  accepts it, the snapshot stream-compressed chunk by chunk;
- one log line per request (method, path, status, milliseconds), never a body, so never a
  patron's name or ID number.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync import errors as cache_errors
from sync.hub import auth, county, validate
from sync.hub.errors import (
    BadRequest,
    HubError,
    Internal,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from sync.hub.store import HubStore

API = "/api/v1"
STAFF_COOKIE = "county_staff"
LANG_COOKIE = "county_lang"
COOKIE_MAX_AGE_S = 12 * 3600
log = logging.getLogger("sync.hub")
access = logging.getLogger("sync.hub.access")

ClientCN = Callable[[Scope], "str | None"]


def _time_header() -> tuple[bytes, bytes]:
    return b"x-hub-time-ns", str(time.time_ns()).encode()


def error_response(exc: HubError) -> JSONResponse:
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


class HubMiddleware:
    """Outermost layer: the time header, the access log line, and the last line of defence
    that turns any exception into ``500 internal`` before a byte of the response is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        state = {"status": 0}

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message["headers"] = [*(h for h in message.get("headers", [])
                                        if h[0].lower() != b"x-hub-time-ns"), _time_header()]
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        except Exception:
            log.exception("unexpected failure on %s %s", scope["method"], scope["path"])
            if state["status"]:
                return  # mid-stream: the body stays incomplete (no "end" line), never wrong
            await error_response(Internal("the hub failed unexpectedly"))(scope, receive,
                                                                         send_timed)
        finally:
            client = scope.get("client") or ("-", 0)
            access.info('%s "%s %s" %d %.0fms', client[0], scope["method"], scope["path"],
                        state["status"], (time.monotonic() - started) * 1000)


def _map_store_error(exc: cache_errors.CacheError) -> HubError:
    if isinstance(exc, cache_errors.DatabaseBusy):
        return Unavailable("the hub database is busy", retry_after=1)
    if isinstance(exc, cache_errors.DiskFull | cache_errors.DatabaseReadOnly):
        return Unavailable("the hub cannot write its database", retry_after=60)
    return Internal("the hub database failed")


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args)
    except cache_errors.CacheError as exc:
        log.error("store error: %s", exc)
        raise _map_store_error(exc) from exc


async def read_json(request: Request, max_bytes: int, *, optional: bool = False) -> Any:
    """The request's JSON body, gunzipped if needed; at most ``max_bytes`` either way."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"request body over {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw and optional:
        return None
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise BadRequest("Content-Type must be application/json")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        raw = _gunzip(raw, max_bytes)
    elif encoding not in ("identity", ""):
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    try:
        return json.loads(raw)
    except ValueError:
        raise BadRequest("the body is not valid JSON (UTF-8)") from None


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error:
        raise BadRequest("the body is not valid gzip") from None
    if len(out) > max_bytes:
        raise PayloadTooLarge(f"request body over {max_bytes} bytes once decompressed")
    if not inflater.eof or inflater.unused_data:
        raise BadRequest("the gzip body is truncated or has trailing data")
    return out


# Staff pages are not cached, framed or sent with a referrer.
_PAGE_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                 "Referrer-Policy": "no-referrer",
                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline';"
                 " img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"}


def create_app(store: HubStore, *, client_cn: ClientCN | None = None) -> Starlette:
    """The hub as an ASGI app over ``store``. With ``client_cn`` (mTLS), each device request
    must also come with a client certificate whose CN is the path's device id."""
    cfg = store.config

    async def device(request: Request) -> str:
        device_id = request.path_params["device_id"]
        token = auth.bearer(request.headers.get("authorization"))
        principal = await _call(store.principal, token)
        cn = client_cn(request.scope) if client_cn else None
        auth.require_device(principal, device_id, cn, mtls=client_cn is not None)
        return device_id

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "hub_time_ns": time.time_ns(), "api_version": "1"})

    async def push(request: Request) -> Response:
        device_id = await device(request)
        key = request.headers.get("idempotency-key")
        if key is None or not 8 <= len(key) <= 128:
            raise ValidationFailed("Idempotency-Key header of 8 to 128 characters required",
                                   details={"problems": [{"path": "Idempotency-Key",
                                                          "problem": "required, 8..128"}]})
        body = await read_json(request, cfg.max_body_bytes)
        batch = validate.event_batch(body, device_id, cfg.max_events)
        digest = hashlib.sha256(json.dumps(batch, sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=False).encode()).hexdigest()
        return JSONResponse(await _call(store.push, device_id, batch, key, digest))

    async def pull(request: Request) -> Response:
        device_id = await device(request)
        q = request.query_params
        limit = validate.int_param(q.get("limit"), "limit", cfg.change_page_default, 1,
                                   cfg.change_page_max)
        return JSONResponse(await _call(store.changes, device_id, q.get("cursor"), limit))

    async def snapshot(request: Request) -> Response:
        device_id = await device(request)
        snap = await _call(store.snapshot, device_id)
        return StreamingResponse(iter(snap), media_type="application/x-ndjson")

    async def card_ranges(request: Request) -> Response:
        device_id = await device(request)
        size = validate.card_range_size(await read_json(request, 64 * 1024, optional=True))
        return JSONResponse(await _call(store.lease_card_range, device_id, size))

    async def heartbeat(request: Request) -> Response:
        device_id = await device(request)
        body = validate.heartbeat(await read_json(request, 1024 * 1024), device_id)
        return JSONResponse(await _call(store.heartbeat, device_id, body))

    async def put_stats(request: Request) -> Response:
        device_id = await device(request)
        days = validate.daily_stats(await read_json(request, 8 * 1024 * 1024), device_id)
        return JSONResponse(await _call(store.put_stats, device_id, days))

    # -- the county page (HTML, for staff in a browser) -------------------------------------

    async def staff_from_cookie(request: Request) -> bool:
        """True when the request carries a staff token: the page's cookie, or (for scripts
        fetching the CSV) an ``Authorization: Bearer`` header."""
        token = request.cookies.get(STAFF_COOKIE)
        header = request.headers.get("authorization")
        if not token and header:
            try:
                token = auth.bearer(header)
            except HubError:
                return False
        if not token:
            return False
        principal = await _call(store.principal, token)
        return principal is not None and principal.kind == "staff"

    def lang_of(request: Request) -> str:
        return county.pick_lang(request.query_params.get("lang")
                                or request.cookies.get(LANG_COOKIE))

    def remember_lang(response: Response, request: Request, lang: str) -> Response:
        if request.query_params.get("lang"):
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/county",
                                samesite="strict")
        return response

    def county_range(request: Request) -> tuple[Any, Any]:
        today = datetime.fromtimestamp(now_ns() / 1e9, cfg.timezone).date()
        q = request.query_params
        return county.parse_range(q.get("from"), q.get("to"), today, cfg.county_days)

    def now_ns() -> int:
        clock = getattr(store, "clock", None)
        return clock() if callable(clock) else time.time_ns()

    async def county_page(request: Request) -> Response:
        lang = lang_of(request)
        if not await staff_from_cookie(request):
            return RedirectResponse(f"/county/login?lang={lang}", status_code=303)
        first, last = county_range(request)
        fleet = await _call(store.fleet)
        figures = await _call(store.county_stats, first.isoformat(), last.isoformat())
        names = {r["branch"]: r["branch_name"] for r in figures}
        names.update(await _call(store.branch_names))
        page = county.render_page(fleet=fleet, figures=figures, branch_names=names,
                                  lang=lang, now_ns=now_ns(), tz=cfg.timezone,
                                  silent_after_s=cfg.silent_after_s, first=first, last=last)
        return remember_lang(HTMLResponse(page, headers=_PAGE_HEADERS), request, lang)

    async def county_login_form(request: Request) -> Response:
        lang = lang_of(request)
        return remember_lang(HTMLResponse(county.login_page(lang), headers=_PAGE_HEADERS),
                             request, lang)

    async def county_login(request: Request) -> Response:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > 16 * 1024:
                raise PayloadTooLarge("a sign-in form is small")
        form = parse_qs(raw.decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        lang = county.pick_lang((form.get("lang") or [None])[0] or lang_of(request))
        principal = await _call(store.principal, token) if token else None
        if principal is None or principal.kind != "staff":
            return HTMLResponse(county.login_page(lang, failed=True), status_code=401,
                                headers=_PAGE_HEADERS)
        response = RedirectResponse(f"/county?lang={lang}", status_code=303)
        response.set_cookie(STAFF_COOKIE, token, max_age=COOKIE_MAX_AGE_S, path="/county",
                            httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    async def county_logout(request: Request) -> Response:
        response = RedirectResponse(f"/county/login?lang={lang_of(request)}", status_code=303)
        response.delete_cookie(STAFF_COOKIE, path="/county", httponly=True,
                               samesite="strict")
        return response

    async def county_csv(request: Request) -> Response:
        if not await staff_from_cookie(request):
            raise Unauthorized("staff sign-in (cookie) or a staff bearer token needed")
        first, last = county_range(request)
        rows = await _call(store.county_stats, first.isoformat(), last.isoformat())
        names = await _call(store.branch_names)
        for r in rows:
            r["branch_name"] = names.get(r["branch"], r.get("branch_name", ""))
        body = county.to_csv(rows, county.Texts(lang_of(request)))
        name = f"county-stats-{first.isoformat()}-{last.isoformat()}.csv"
        return Response(body, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{name}"', **_PAGE_HEADERS})

    async def exceptions(request: Request) -> Response:
        principal = await _call(store.principal,
                                auth.bearer(request.headers.get("authorization")))
        auth.require_staff(principal)
        status = request.query_params.get("status", "open")
        if status not in ("open", "resolved", "all"):
            raise ValidationFailed("status must be open, resolved or all",
                                   details={"problems": [{"path": "status",
                                                          "problem": "open|resolved|all"}]})
        found = await _call(store.exceptions, request.query_params.get("device_id"), status)
        return JSONResponse({"exceptions": found})

    async def hub_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HubError)
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            return error_response(MethodNotAllowed(f"{request.method} is not allowed here"))
        if exc.status_code == 404:
            return error_response(NotFound(f"no such path {request.url.path}"))
        return error_response(BadRequest(str(exc.detail)))

    routes = [
        Route(f"{API}/health", health, methods=["GET"]),
        Route(f"{API}/devices/{{device_id}}/events", push, methods=["POST"]),
        Route(f"{API}/devices/{{device_id}}/changes", pull, methods=["GET"]),
        Route(f"{API}/devices/{{device_id}}/snapshot", snapshot, methods=["GET"]),
        Route(f"{API}/devices/{{device_id}}/card-ranges", card_ranges, methods=["POST"]),
        Route(f"{API}/devices/{{device_id}}/heartbeat", heartbeat, methods=["POST"]),
        Route(f"{API}/devices/{{device_id}}/stats", put_stats, methods=["PUT"]),
        Route(f"{API}/exceptions", exceptions, methods=["GET"]),
        Route("/county", county_page, methods=["GET"]),
        Route("/county/login", county_login_form, methods=["GET"]),
        Route("/county/login", county_login, methods=["POST"]),
        Route("/county/logout", county_logout, methods=["POST"]),
        Route("/county/stats.csv", county_csv, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(HubMiddleware), Middleware(GZipMiddleware, minimum_size=512,
                                                          compresslevel=6)],
        exception_handlers={HubError: hub_error, HTTPException: http_error},
    )
