"""The touchscreen's web server, run by the daemon in its own event loop.

Chromium in kiosk mode on the Pi's screen shows ``http://127.0.0.1:8080/`` (``[ui]``). The
page is plain HTML, CSS and JavaScript shipped in ``kiosk/web/static`` (no internet, no
build step); everything it draws comes from the server:

``GET /``                 the page
``GET /events``           server-sent events: the whole screen (:mod:`kiosk.web.screen`) after
                          every change, and ``say`` events for spoken prompts
``GET /api/view``         the same screen, once
``GET /api/languages``    the catalogue's languages (code, name, writing direction)
``GET /api/texts/LANG``   every text of a language, zh-CN filling the gaps
``POST /api/press``       ``{"action": "lend"|"return"|"finish"|"still_here"|"dismiss"}``
``POST /api/renew``       ``{"barcode"}``: renew a loan of the card holder in session
``POST /api/pickup``      ``{"hold"}``: open the locker of a ready hold of the card holder
``POST /api/rating``      ``{"session", "score"}``: the 1-5 rating after a session
``POST /api/pin``         ``{"pin"}``: the card's PIN, when the daemon asks for one
``POST /api/speak``       ``{"text", "lang"}``: say it aloud (espeak-ng), when speech is on
``POST /api/desk/ACTION`` the staff desk (:mod:`kiosk.web.desk_api`): signed-in staff only

It listens on loopback by default and answers only requests whose Host is this machine
(no DNS rebinding), and only JSON posts (no cross-site form can send those without asking).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kiosk.config.settings import UiSettings
from kiosk.daemon.state import Finish, Mode, Pickup, PinEntered, SetMode
from kiosk.messages import DEFAULT_LANGUAGE, available, texts
from kiosk.web import account, desk_api
from kiosk.web.screen import Screen
from sync.errors import CacheError
from sync.pins import valid_pin

if TYPE_CHECKING:
    from kiosk.daemon.app import Daemon

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
SPEAK_MAX = 400  # characters: a prompt, not a book
ESPEAK_VOICES = {"zh-CN": "cmn", "en": "en"}
STATIC = resources.files(__package__) / "static"


class _Server(uvicorn.Server):
    """uvicorn inside the daemon: the daemon, not uvicorn, owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


def _posted(handler: Callable[[Any, dict[str, Any]], Awaitable[Response]]
            ) -> Callable[[Any, Request], Awaitable[Response]]:
    """A POST endpoint of a JSON object: ``handler(self, body)`` gets the parsed object,
    and anything else is answered by :func:`_json`'s refusal."""

    @functools.wraps(handler)
    async def endpoint(self: Any, request: Request) -> Response:
        body = await _json(request)
        if isinstance(body, Response):
            return body
        return await handler(self, body)

    return endpoint


class WebUI:
    """The touchscreen server of ``daemon``. :meth:`start` binds (a bind failure is logged
    and leaves :attr:`error` set: the kiosk goes on without its screen) and :meth:`stop`."""

    def __init__(self, daemon: Daemon, settings: UiSettings) -> None:
        self.daemon = daemon
        self.settings = settings
        self.screen = Screen(done_s=settings.done_s)
        self.language = settings.language or daemon.settings.device.language
        self.url: str | None = None
        self.error: str | None = None
        self._changed = asyncio.Event()
        self._says: list[tuple[int, dict[str, Any]]] = []
        self._closing = False
        self._server: _Server | None = None
        self._laptop: _Server | None = None
        self.laptop_url: str | None = None
        self.laptop_error: str | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._speaker: asyncio.subprocess.Process | None = None

    # -- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self.screen.feed({"event": "state", "state": str(self.daemon.state),
                          "offline": self.daemon.offline_devices()})
        events = self.daemon.bus.subscribe()
        self._tasks.append(asyncio.ensure_future(self._follow(events)))
        self._tasks.append(asyncio.ensure_future(self._ticker()))
        try:
            sock = _bind(self.settings.listen, self.settings.port)
        except OSError as exc:
            self.error = f"{self.settings.listen}:{self.settings.port}: {exc.strerror or exc}"
            log.error("touchscreen server not started: %s", self.error)
            return
        self.url = _url(sock, "http")
        config = uvicorn.Config(self.app(), log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=1)
        self._server = _Server(config)
        self._tasks.append(asyncio.ensure_future(self._server.serve(sockets=[sock])))
        log.info("touchscreen at %s", self.url)
        if self.daemon.settings.desk.laptop_listen:
            self._start_laptop()

    def _start_laptop(self) -> None:
        """The desk for the van's laptop, over TLS on the van's own network (``[desk]
        laptop_*``). A failure is logged and shown by ``kiosk status``; the kiosk goes on."""
        desk = self.daemon.settings.desk
        try:
            sock = _bind(desk.laptop_listen, desk.laptop_port)
        except OSError as exc:
            self.laptop_error = f"{desk.laptop_listen}:{desk.laptop_port}: {exc.strerror or exc}"
            log.error("laptop desk not started: %s", self.laptop_error)
            return
        try:
            config = uvicorn.Config(self.app(laptop=True), log_level="warning",
                                    access_log=False, lifespan="off",
                                    timeout_graceful_shutdown=1,
                                    ssl_certfile=str(desk.laptop_cert),
                                    ssl_keyfile=str(desk.laptop_key))
            config.load()  # reads the certificate now: a bad one is an error here
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            sock.close()
            self.laptop_error = f"{desk.laptop_cert}: {exc}"
            log.error("laptop desk not started: %s", self.laptop_error)
            return
        self.laptop_url = _url(sock, "https")
        self._laptop = _Server(config)
        self._tasks.append(asyncio.ensure_future(self._laptop.serve(sockets=[sock])))
        log.info("laptop desk at %s", self.laptop_url)

    async def stop(self) -> None:
        self._closing = True
        self._wake()
        for server in (self._server, self._laptop):
            if server is not None:
                server.should_exit = True
        if self._speaker is not None and self._speaker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._speaker.kill()
        serving = self._tasks[2:] if self._server is not None else []
        if serving:
            with contextlib.suppress(Exception):
                await asyncio.wait(serving, timeout=3.0)
        for task in self._tasks:
            task.cancel()

    def status(self) -> dict[str, Any]:
        laptop = None
        if self.daemon.settings.desk.laptop_listen:
            laptop = {"url": self.laptop_url, "error": self.laptop_error}
        return {"enabled": True, "url": self.url, "error": self.error, "laptop": laptop}

    # -- following the daemon ------------------------------------------------------------------

    async def _follow(self, events: asyncio.Queue[dict[str, Any] | None]) -> None:
        try:
            while (event := await events.get()) is not None:
                try:
                    await self._take(event)
                except Exception:  # the screen must not stop following
                    log.exception("the touchscreen could not take %s", event.get("event"))
        finally:
            self.daemon.bus.unsubscribe(events)

    async def _take(self, event: dict[str, Any]) -> None:
        changed = self.screen.feed(event)
        kind = event.get("event")
        session = self.daemon.machine.session
        started = kind == "session_started" and event.get("session") == getattr(
            session, "id", None)
        # The account changes with a loan; it is read once the session has a card.
        if session is not None and session.card and (
                started or kind in ("lent", "picked_up")):
            await self._refresh_account(session.id, session.card)
            changed = True
        if changed:
            self._wake()

    async def _refresh_account(self, session_id: int, card: str | None) -> None:
        writer = self.daemon.writer
        if card is None or writer is None:
            return
        try:
            found = await writer.run(writer.read, account.account, card, writer.today())
        except CacheError:
            log.exception("account of the session could not be read")
            return
        self.screen.set_account(session_id, found or {})

    async def _ticker(self) -> None:
        while not self._closing:
            await asyncio.sleep(0.5)
            if self.screen.tick(time.monotonic()):
                self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- the web app ---------------------------------------------------------------------------

    def app(self, *, laptop: bool = False) -> Starlette:
        """The touchscreen's app; with ``laptop``, the desk only, for the van's laptop: no
        patron request is answered there, and its Host must be the laptop address."""
        hosts = ["localhost", "127.0.0.1", "::1", "[::1]", self.settings.listen]
        if self.settings.listen in ("0.0.0.0", "::"):
            hosts = ["*"]
        if laptop:
            desk = self.daemon.settings.desk
            hosts = [desk.laptop_listen, *desk.laptop_hosts]
        patron = [
            Route("/api/press", self._press, methods=["POST"]),
            Route("/api/renew", self._renew, methods=["POST"]),
            Route("/api/pickup", self._pickup, methods=["POST"]),
            Route("/api/rating", self._rating, methods=["POST"]),
            Route("/api/pin", self._pin, methods=["POST"]),
            Route("/api/speak", self._speak, methods=["POST"]),
        ]
        routes = [
            Route("/", self._index),
            Route("/events", self._events),
            Route("/api/view", self._view),
            Route("/api/languages", self._languages),
            Route("/api/texts/{lang}", self._texts),
            *([] if laptop else patron),
            Route("/api/desk/{action}", self._desk, methods=["POST"]),
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ]
        app = Starlette(routes=routes,
                        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])
        app.state.laptop = laptop
        return app

    def view(self, *, laptop: bool = False) -> dict[str, Any]:
        view = self.screen.view()
        if laptop and (self.daemon.desk is None or self.daemon.desk.signed_in() is None):
            # The laptop sees nothing of the patrons' kiosk until staff sign in there.
            return {"version": view["version"], "screen": "laptop", "desk": None,
                    "daemon": view["daemon"], "printer_problems": [], "door_alarm": False,
                    "session": None, "done": None, "entry": None,
                    "options": {"rating": False, "speech": False, "language": self.language}}
        session = self.daemon.machine.session
        if view["session"] is not None and session is not None \
                and session.id == view["session"]["id"]:
            view["session"]["mode"] = str(session.mode)  # the machine is the truth
        view["options"] = {"rating": self.settings.rating, "speech": self.settings.speech,
                           "language": self.language}
        return view

    async def _index(self, request: Request) -> Response:
        return FileResponse(str(STATIC / "index.html"),
                            headers={"Cache-Control": "no-store"})

    async def _view(self, request: Request) -> Response:
        return JSONResponse(self.view(laptop=bool(getattr(request.app.state, "laptop", False))))

    async def _languages(self, request: Request) -> Response:
        langs = [{"code": code, "name": meta.get("name", code),
                  "direction": meta.get("direction", "ltr")}
                 for code, meta in sorted(available().items(),
                                          key=lambda kv: (kv[0] != DEFAULT_LANGUAGE, kv[0]))]
        return JSONResponse({"languages": langs, "default": self.language,
                             "laptop": bool(getattr(request.app.state, "laptop", False))})

    async def _texts(self, request: Request) -> Response:
        lang = request.path_params["lang"]
        langs = available()
        if lang not in langs:
            return _problem(404, "unknown_language", f"no catalogue for {lang!r}")
        merged = {**texts(DEFAULT_LANGUAGE), **texts(lang)}
        return JSONResponse({"lang": lang, "direction": langs[lang].get("direction", "ltr"),
                             "texts": merged})

    async def _events(self, request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            yield "retry: 1000\n\n"
            sent_version = -1
            said = self._says[-1][0] if self._says else 0
            laptop = bool(getattr(request.app.state, "laptop", False))
            while not self._closing:
                view = self.view(laptop=laptop)
                if view["version"] != sent_version:
                    sent_version = view["version"]
                    yield _sse("view", view)
                for n, say in self._says:
                    if n > said:
                        said = n
                        yield _sse("say", say)
                changed = self._changed
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    async def _desk(self, request: Request) -> Response:
        return await desk_api.handle(self.daemon.desk, request.path_params["action"],
                                     await _json(request))

    @_posted
    async def _press(self, body: dict[str, Any]) -> Response:
        action = body.get("action")
        session = self.daemon.machine.session
        if action in ("lend", "return"):
            if action == "lend" and (session is None or session.card is None):
                return _problem(409, "no_card", "lending needs a card first")
            self.daemon.put(SetMode(Mode(action)))
            if self.screen.set_mode(action):
                self._wake()
        elif action == "still_here":
            if session is not None:
                self.daemon.put(SetMode(session.mode))  # counts as something happening
            if self.screen.still_here():
                self._wake()
        elif action == "finish":
            self.daemon.put(Finish())
        elif action == "dismiss":
            if self.screen.dismiss():
                self._wake()
        else:
            return _problem(400, "bad_action",
                            "action is lend, return, finish, still_here or dismiss")
        return JSONResponse({"done": action})

    @_posted
    async def _renew(self, body: dict[str, Any]) -> Response:
        barcode = body.get("barcode")
        session, steps = self.daemon.machine.session, self.daemon.steps
        if session is None or session.card is None or steps is None:
            return _problem(409, "no_card", "renewing needs a card in session")
        if not isinstance(barcode, str) or not barcode:
            return _problem(400, "bad_barcode", "barcode is required")
        try:
            ok, key, params = await steps.renew(session.card, barcode)
        except CacheError as exc:
            return JSONResponse({"ok": False, "message_key": exc.message_key,
                                 "params": dict(exc.params)}, status_code=503)
        self.daemon.put(SetMode(session.mode))  # renewing is something happening
        await self._refresh_account(session.id, session.card)
        self._wake()
        return JSONResponse({"ok": ok, "barcode": barcode, "message_key": key,
                             "params": params})

    @_posted
    async def _pickup(self, body: dict[str, Any]) -> Response:
        hold = body.get("hold")
        session = self.daemon.machine.session
        if session is None or session.card is None:
            return _problem(409, "no_card", "a pickup needs a card in session")
        if isinstance(hold, bool) or not isinstance(hold, int):
            return _problem(400, "bad_hold", "hold is a hold number")
        self.daemon.put(Pickup(hold))
        return JSONResponse({"done": "pickup", "hold": hold})

    @_posted
    async def _pin(self, body: dict[str, Any]) -> Response:
        pin = body.get("pin")
        session = self.daemon.machine.session
        if session is None or session.card is None or session.pin != "needed":
            return _problem(409, "no_pin_asked", "no PIN is asked now")
        if not isinstance(pin, str) or not valid_pin(pin):
            return _problem(400, "bad_pin", "a PIN is 4 to 6 digits")
        self.daemon.put(PinEntered(pin))
        return JSONResponse({"done": "pin"})

    @_posted
    async def _rating(self, body: dict[str, Any]) -> Response:
        score, session = body.get("score"), body.get("session")
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            return _problem(400, "bad_score", "score is 1 to 5")
        if not self.settings.rating or not self.screen.rated(session):
            return _problem(409, "not_asked", "no rating is asked for that session")
        writer = self.daemon.writer
        assert writer is not None
        try:
            await writer.run(writer.write, account.record_rating, writer.today(),
                             self.daemon.identity.branch, score)
        except CacheError as exc:
            log.warning("rating not recorded: %s", exc)
        self._wake()
        return JSONResponse({"done": "rating", "score": score})

    @_posted
    async def _speak(self, body: dict[str, Any]) -> Response:
        text, lang = body.get("text"), body.get("lang")
        if not self.settings.speech:
            return _problem(409, "speech_off", "spoken prompts are turned off in [ui]")
        if not isinstance(text, str) or not text.strip() or lang not in ESPEAK_VOICES:
            return _problem(400, "bad_text", "text and a known lang are required")
        said = await self.speak(text[:SPEAK_MAX], lang)
        return JSONResponse({"spoken": said})

    async def speak(self, text: str, lang: str) -> bool:
        """Say ``text`` aloud, cutting off what was still being said. False when espeak-ng
        could not be started (the page shows the text anyway)."""
        n = (self._says[-1][0] + 1) if self._says else 1
        self._says = [*self._says[-20:], (n, {"text": text, "lang": lang})]
        self._wake()
        if self._speaker is not None and self._speaker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._speaker.kill()
        try:
            self._speaker = await asyncio.create_subprocess_exec(
                self.settings.espeak, "-v", ESPEAK_VOICES[lang], "--", text,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            log.warning("spoken prompt not said: %s: %s", self.settings.espeak, exc)
            return False
        return True


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(64)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _url(sock: socket.socket, scheme: str) -> str:
    """Where ``sock`` is listening, as a URL (the port chosen when it was 0)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/"


def _sse(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _problem(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


async def _json(request: Request) -> dict[str, Any] | Response:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _problem(415, "json_only", "send application/json")
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return _problem(400, "bad_json", "the body is not JSON")
    if not isinstance(body, dict):
        return _problem(400, "bad_json", "the body is a JSON object")
    return body
