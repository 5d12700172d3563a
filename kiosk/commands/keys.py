"""``kiosk keys create|check|rotate``: the personal-data key file of a device that registers
readers (``[desk] registration = true``; the file is ``[desk] key_file``, format in
:mod:`sync.personal`).

The county secret in the file must be the same on every device of a county (and at the
hub), or the duplicate-person hash of one document differs from van to van: ``create``
therefore takes it from a file (``--county-secret-file``) and makes a new one only when
told this is a new county (``--new-county``), writing it to a second file for the
technician to copy to the other devices. No command ever prints a key or the secret.

Exit codes: 0 done (``check``: the file is good); 1 refused or problems found (the file
exists, no county secret, a bad secret file; ``check``: missing, unsafe mode, wrong owner,
not a valid key file); 3 the config cannot be used.
"""

from __future__ import annotations

import argparse
import os
import pwd
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiosk import exitcodes
from kiosk.app import App
from sync import personal

SERVICE_USER = "library-kiosk"
COUNTY_SECRET_NAME = "county-secret"


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("keys", help=t("keys.help.group"), description=t("keys.help.group_long"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", metavar="ACTION", title=t("cli.commands"))
    verbs.required = True

    def add(name: str) -> argparse.ArgumentParser:
        q = verbs.add_parser(name, help=t(f"keys.help.{name}"),
                             description=t(f"keys.help.{name}_long"),
                             epilog=t(f"keys.example.{name}"),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        q.add_argument("--file", metavar="FILE", help=t("keys.opt.file"))
        q.add_argument("--json", action="store_true", help=t("cli.opt.json"))
        return q

    create = add("create")
    source = create.add_mutually_exclusive_group()
    source.add_argument("--county-secret-file", metavar="FILE",
                        help=t("keys.opt.county_secret_file"))
    source.add_argument("--new-county", action="store_true", help=t("keys.opt.new_county"))
    create.add_argument("--county-secret-out", metavar="FILE",
                        help=t("keys.opt.county_secret_out", name=COUNTY_SECRET_NAME))
    create.add_argument("--service-user", metavar="USER", default=SERVICE_USER,
                        help=t("keys.opt.service_user", user=SERVICE_USER))
    create.set_defaults(handler=_create)
    check = add("check")
    check.add_argument("--service-user", metavar="USER", default=SERVICE_USER,
                       help=t("keys.opt.service_user", user=SERVICE_USER))
    check.set_defaults(handler=_check)
    add("rotate").set_defaults(handler=_rotate)


def key_file(app: App) -> Path:
    """``--file``, else ``[desk] key_file`` of the config."""
    explicit = getattr(app.args, "file", None)
    return Path(explicit) if explicit else app.settings().desk.key_file


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _uid(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def _refuse(app: App, result: dict[str, Any], code: str, key: str, **params: object) -> int:
    result["error"] = {"code": code, "message": app.t(key, **params)}
    if app.json:
        app.emit_json(result)
    else:
        app.warn(key, **params)
    return exitcodes.REFUSED


# -- create -----------------------------------------------------------------------------------

def _create(app: App) -> int:
    path = key_file(app)
    result: dict[str, Any] = {"file": str(path), "created": False}
    if path.exists() or path.is_symlink():
        return _refuse(app, result, "exists", "keys.create.exists", path=path)
    if not path.parent.is_dir():
        return _refuse(app, result, "no_folder", "keys.create.no_folder", folder=path.parent)
    out: Path | None = None
    if app.args.county_secret_file:
        try:
            secret = personal.read_county_secret(app.args.county_secret_file)
        except personal.CountySecretInvalid as exc:
            return _refuse(app, result, "county_secret_invalid", exc.message_key,
                           **exc.params)
    elif app.args.new_county:
        secret = os.urandom(personal.KEY_BYTES)
        out = Path(app.args.county_secret_out or path.parent / COUNTY_SECRET_NAME)
        if out.exists() or out.is_symlink():
            return _refuse(app, result, "county_secret_exists",
                           "keys.create.county_secret_exists", path=out)
        if out.resolve() == path.resolve():
            return _refuse(app, result, "exists", "keys.create.exists", path=path)
    else:
        return _refuse(app, result, "no_county_secret", "keys.create.no_county_secret",
                       path=path)
    if out is not None:
        personal.write_county_secret(out, secret)
    personal.create_key_file(path, secret)
    # Made by root (the folder /etc/library-kiosk is root's): hand it to the daemon's user,
    # which must read it; mode 0600 stays.
    uid = _uid(app.args.service_user)
    if os.geteuid() == 0 and uid is not None:
        os.chown(path, uid, pwd.getpwuid(uid).pw_gid)
    keys = personal.load_keys(path)
    result.update(created=True, current=keys.current, key_ids=sorted(keys.keys),
                  county_key_id=keys.county_key_id, owner=_user(path.stat().st_uid),
                  county_secret_file=str(out) if out is not None else None)
    if app.json:
        app.emit_json(result)
        return exitcodes.OK
    app.say("keys.create.done", path=path, owner=result["owner"], key_id=keys.current)
    if out is not None:
        app.say("keys.create.new_county", path=out)
    else:
        app.say("keys.create.same_county", path=app.args.county_secret_file)
    app.say("keys.restart")
    return exitcodes.OK


# -- check ------------------------------------------------------------------------------------

def inspect(path: Path, service_user: str) -> dict[str, Any]:
    """What ``kiosk keys check --json`` prints: the file's mode, owner and key ids (never a
    key), with ``problems`` (``code`` and message parameters) and ``warnings``."""
    report: dict[str, Any] = {"file": str(path), "ok": False, "exists": False,
                              "service_user": service_user, "mode": None, "owner": None,
                              "current": None, "key_ids": [], "county_key_id": None,
                              "problems": [], "warnings": []}
    problems: list[dict[str, Any]] = report["problems"]
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        problems.append({"code": "missing", "params": {"path": str(path)}})
        return report
    report["exists"] = True
    if not stat.S_ISREG(st.st_mode):
        problems.append({"code": "not_regular", "params": {"path": str(path)}})
        return report
    mode = f"{stat.S_IMODE(st.st_mode):04o}"
    owner = _user(st.st_uid)
    report.update(mode=mode, owner=owner)
    if st.st_mode & 0o077:
        problems.append({"code": "unsafe_mode", "params": {"path": str(path), "mode": mode}})
    if st.st_uid not in {0, _uid(service_user)}:
        problems.append({"code": "bad_owner", "params": {"path": str(path), "owner": owner,
                                                          "user": service_user}})
    elif st.st_uid == 0 and _uid(service_user) not in (None, 0):
        # Root's file with mode 0600: the daemon, which runs as the service user, cannot
        # read it.
        report["warnings"].append({"code": "root_owned",
                                   "params": {"path": str(path), "user": service_user}})
    try:
        keys = personal.parse_keys(path.read_bytes(), path)
    except (personal.KeyFileInvalid, OSError) as exc:
        problems.append({"code": "invalid", "params": {"path": str(path), "detail": str(exc)}})
    else:
        report.update(current=keys.current, key_ids=sorted(keys.keys),
                      county_key_id=keys.county_key_id)
    report["ok"] = not problems
    return report


def _check(app: App) -> int:
    report = inspect(key_file(app), app.args.service_user)
    for entry in report["problems"] + report["warnings"]:
        entry["message"] = app.t(f"keys.check.{entry['code']}", **entry["params"])
    if app.json:
        app.emit_json(report)
    else:
        if report["exists"] and report["mode"] is not None:
            app.say("keys.check.file", path=report["file"], mode=report["mode"],
                    owner=report["owner"])
        if report["key_ids"]:
            app.say("keys.check.ids", ids=", ".join(report["key_ids"]),
                    current=report["current"], county=report["county_key_id"])
        for entry in report["problems"]:
            app.line("✘ " + entry["message"])
        for entry in report["warnings"]:
            app.line("! " + entry["message"])
        app.say("keys.check.ok" if report["ok"] else "keys.check.failed",
                path=report["file"])
    return exitcodes.OK if report["ok"] else exitcodes.REFUSED


# -- rotate -----------------------------------------------------------------------------------

def _rotate(app: App) -> int:
    path = key_file(app)
    result: dict[str, Any] = {"file": str(path), "rotated": False}
    try:
        new_id = personal.rotate_key_file(path)
    except personal.PersonalDataError as exc:
        code = {personal.KeyFileMissing: "missing", personal.KeyFileUnsafe: "unsafe_mode"
                }.get(type(exc), "invalid")
        params = {"path": str(path), "mode": exc.params.get("mode", ""),
                  "detail": str(exc)}
        return _refuse(app, result, code, f"keys.check.{code}", **params)
    keys = personal.load_keys(path)
    result.update(rotated=True, current=new_id, key_ids=sorted(keys.keys),
                  county_key_id=keys.county_key_id)
    if app.json:
        app.emit_json(result)
        return exitcodes.OK
    app.say("keys.rotate.done", path=path, key_id=new_id, ids=", ".join(sorted(keys.keys)))
    app.say("keys.restart")
    return exitcodes.OK
