"""``kiosk hub serve|add-device|add-staff|exceptions|compact``: the reference county hub.

``serve`` runs the hub (``sync.hub``) in the foreground until SIGTERM or SIGINT. The other
commands work on the hub's database file directly, beside a running hub or without one.
The hub's database is its own file (``--db``, default ``hub.db``), never a kiosk's cache.
The hub's modules (uvicorn, Starlette) are imported only when a hub command runs, so every
other ``kiosk`` command starts as fast as before.
"""

from __future__ import annotations

import argparse
import logging
import ssl
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk import exitcodes
from kiosk.app import App
from sync.hub.auth import DEVICE_ID

if TYPE_CHECKING:
    from sync.hub.server import TLSFiles
    from sync.hub.store import SqliteHubStore

DEFAULT_DB = "hub.db"


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    hub = sub.add_parser("hub", help=t("hub.help.hub"), description=t("hub.help.hub"))
    verbs = hub.add_subparsers(dest="verb", metavar="ACTION", title=t("cli.commands"))
    verbs.required = True

    def add(name: str, handler: Callable[[App], int]) -> argparse.ArgumentParser:
        key = name.replace("-", "_")
        p = verbs.add_parser(name, help=t(f"hub.help.{key}"), description=t(f"hub.help.{key}"),
                             epilog=t(f"hub.example.{key}"),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--db", dest="hub_db", metavar="FILE", help=t("hub.opt.db"))
        p.set_defaults(handler=handler)
        return p

    s = add("serve", _serve)
    s.add_argument("--host", default="127.0.0.1", help=t("hub.opt.host"))
    s.add_argument("--port", type=int, default=8470, help=t("hub.opt.port"))
    s.add_argument("--sample", choices=("small", "county"), help=t("hub.opt.sample"))
    s.add_argument("--tls-cert", metavar="FILE", help=t("hub.opt.tls_cert"))
    s.add_argument("--tls-key", metavar="FILE", help=t("hub.opt.tls_key"))
    s.add_argument("--client-ca", metavar="FILE", help=t("hub.opt.client_ca"))
    d = add("add-device", _add_device)
    d.add_argument("device_id", metavar="ID", help=t("hub.opt.device_id"))
    d.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    st = add("add-staff", _add_staff)
    st.add_argument("name", nargs="?", default="staff", metavar="NAME",
                    help=t("hub.opt.staff_name"))
    st.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    e = add("exceptions", _exceptions)
    e.add_argument("--device", metavar="ID", help=t("hub.opt.device_filter"))
    e.add_argument("--all", action="store_true", help=t("hub.opt.all"))
    e.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    c = add("compact", _compact)
    c.add_argument("--keep-days", type=float, required=True, metavar="N",
                   help=t("hub.opt.keep_days"))
    c.add_argument("--json", action="store_true", help=t("cli.opt.json"))


def _path(app: App) -> Path:
    # `kiosk --db FILE hub ...` works too, but the kiosk config's cache path never does:
    # the hub must not open a kiosk's cache by accident.
    return Path(app.args.hub_db or getattr(app.args, "db", None) or DEFAULT_DB)


def _tls(app: App) -> TLSFiles | int | None:
    a = app.args
    if not (a.tls_cert or a.tls_key or a.client_ca):
        return None
    from sync.hub.server import TLSFiles

    if not (a.tls_cert and a.tls_key):
        app.warn("hub.serve.tls_incomplete")
        return exitcodes.USAGE
    for name in (a.tls_cert, a.tls_key, a.client_ca):
        if name and not Path(name).is_file():
            app.warn("hub.serve.file_missing", path=name)
            return exitcodes.USAGE
    return TLSFiles(Path(a.tls_cert), Path(a.tls_key),
                    Path(a.client_ca) if a.client_ca else None)


def _serve(app: App) -> int:
    tls = _tls(app)
    if isinstance(tls, int):
        return tls
    from sync.hub.server import serve
    from sync.hub.store import SqliteHubStore

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    path = _path(app)
    path.parent.mkdir(parents=True, exist_ok=True)
    store = SqliteHubStore.open(path)
    try:
        if app.args.sample:
            loaded = store.load_sample(app.args.sample)
            app.say("hub.serve.sample_loaded" if loaded else "hub.serve.sample_skipped",
                    sample=app.args.sample, path=path)

        def listening(url: str) -> None:
            app.say("hub.serve.listening", url=url, path=path)
            app.out.flush()

        serve(store, host=app.args.host, port=app.args.port, tls=tls, on_listening=listening)
    except ssl.SSLError as exc:
        app.warn("hub.serve.tls_bad", detail=exc)
        return exitcodes.USAGE
    except OSError as exc:
        app.warn("hub.serve.cannot_listen", host=app.args.host, port=app.args.port, detail=exc)
        return exitcodes.USAGE
    finally:
        store.close()
    app.say("hub.serve.stopped")
    return exitcodes.OK


def _valid_id(app: App, device_id: str) -> bool:
    if DEVICE_ID.match(device_id):
        return True
    app.warn("hub.bad_device_id", device=device_id)
    return False


def _add_device(app: App) -> int:
    if not _valid_id(app, app.args.device_id):
        return exitcodes.USAGE
    from sync.hub.store import SqliteHubStore

    store = SqliteHubStore.open(_path(app))
    try:
        token = store.add_device(app.args.device_id)
    finally:
        store.close()
    if app.json:
        app.emit_json({"device_id": app.args.device_id, "token": token})
    else:
        app.say("hub.token.device", device=app.args.device_id, token=token)
        app.say("hub.token.keep")
    return exitcodes.OK


def _add_staff(app: App) -> int:
    from sync.hub.store import SqliteHubStore

    store = SqliteHubStore.open(_path(app))
    try:
        token = store.add_staff(app.args.name)
    finally:
        store.close()
    if app.json:
        app.emit_json({"name": app.args.name, "token": token})
    else:
        app.say("hub.token.staff", name=app.args.name, token=token)
        app.say("hub.token.keep")
    return exitcodes.OK


def _existing(app: App) -> SqliteHubStore | None:
    from sync.hub.store import SqliteHubStore

    path = _path(app)
    if not path.exists():
        app.warn("hub.missing", path=path)
        return None
    return SqliteHubStore.open(path, create=False)


def _exceptions(app: App) -> int:
    store = _existing(app)
    if store is None:
        return exitcodes.DATA
    try:
        found = store.exceptions(app.args.device, "all" if app.args.all else "open")
        tz = store.config.timezone
    finally:
        store.close()
    if app.json:
        app.emit_json({"exceptions": found})
        return exitcodes.OK
    if not found:
        app.say("hub.exceptions.none")
        return exitcodes.OK
    for x in found:
        when = "-"
        if x["event_time_ns"] is not None:
            when = datetime.fromtimestamp(x["event_time_ns"] / 1e9, tz).strftime("%Y-%m-%d %H:%M")
        text = app.t(f"hub.code.{x['code']}") if app.catalogue.has(f"hub.code.{x['code']}") \
            else x["code"]
        app.say("hub.exceptions.line", id=x["id"], time=when, device=x["device_id"],
                seq=x["seq"], kind=x["kind"], code=x["code"], text=text,
                status=app.t(f"hub.exceptions.status_{x['status']}"))
    app.say("hub.exceptions.summary", count=len(found))
    return exitcodes.OK


def _compact(app: App) -> int:
    store = _existing(app)
    if store is None:
        return exitcodes.DATA
    try:
        removed = store.compact(app.args.keep_days)
    finally:
        store.close()
    if app.json:
        app.emit_json({"removed": removed, "keep_days": app.args.keep_days})
    else:
        app.say("hub.compact.done", removed=removed, days=app.args.keep_days)
    return exitcodes.OK
