"""Every technician's command in both output modes, with the daemon running and without it:
the documented exit code, JSON that parses and has its documented keys, human output that
says whether the daemon runs, no terminal escapes when stdout is a pipe, and an example in
every ``--help``."""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.cli import build_parser
from kiosk.messages import Catalogue
from tests.daemon_helpers import (
    BOOKS,
    CARDS,
    ROOT,
    kiosk,
    kiosk_env,
    make_world,
    remove_tree,
    running,
    settings_for,
    short_dir,
    write_config,
)

ESC = "\x1b["
ROUTE = {True: "The daemon is running", False: "The daemon is not running"}

# command -> (arguments, exit code without the daemon, with it, JSON keys or "lines",
#             whether it goes through the daemon when one runs; if not, it still says
#             whether one runs)
COMMANDS: dict[str, tuple[list[str], int, int, set[str] | str, bool]] = {
    "status": (["status"], 1, 0, {"daemon", "state", "devices", "queue_depth", "db"}, True),
    "queue": (["queue"], 0, 0, {"depth", "events", "flagged_total", "flagged"}, True),
    "stats": (["stats"], 0, 0, {"days", "totals"}, True),
    "selftest": (["selftest", "printer"], 0, 0, {"ok", "devices"}, True),
    "sync": (["sync"], 3, 3, {"ok", "error"}, True),
    "circ checkin": (["circ", "checkin", "--item", BOOKS[-1]], 0, 0, "list", True),
    "circ renew": (["circ", "renew", "--card", CARDS[-1], "--item", BOOKS[-2]], 1, 1, "list",
                   True),
    "db check": (["db", "check"], 0, 0, {"ok", "integrity", "foreign_keys", "invariants"},
                 False),
    "db backup": (["db", "backup", "{backup}"], 0, 0, {"backup", "bytes"}, False),
    "config show": (["config", "show"], 0, 0, {"defaults"}, False),
    "logs": (["logs", "-n", "5"], 0, 0, "lines", False),
}


def _world() -> Path:
    path = short_dir("cm-")
    make_world(path / "kiosk.db")
    write_config(path, path / "kiosk.db")
    return path


@pytest.fixture(scope="module")
def idle():
    path = _world()
    yield path
    remove_tree(path)


@pytest.fixture(scope="module")
def busy():
    path = _world()
    with running(settings_for(path / "kiosk.toml")):
        yield path
    remove_tree(path)


def _args(name: str, folder: Path, as_json: bool, run: int) -> list[str]:
    args = [a.replace("{backup}", str(folder / f"backup-{run}.db"))
            for a in COMMANDS[name][0]]
    return [*args, "--json"] if as_json else args


_runs = iter(range(10_000))


@pytest.mark.parametrize("daemon", [False, True], ids=["no-daemon", "daemon"])
@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_in_each_mode(request, capsys, name, as_json, daemon):
    folder = request.getfixturevalue("busy" if daemon else "idle")
    _, code_idle, code_busy, keys, routed = COMMANDS[name]
    args = _args(name, folder, as_json, next(_runs))
    if name == "logs":  # it becomes journalctl (exec): in a child of its own
        done = subprocess.run([sys.executable, "-m", "kiosk", "--lang", "en", "--config",
                               str(folder / "kiosk.toml"), *args], capture_output=True,
                              text=True, cwd=ROOT, env=kiosk_env(), timeout=60)
        code, out, err = done.returncode, done.stdout, done.stderr
    else:
        code, out, err = kiosk(capsys, folder, *args)
    assert code == (code_busy if daemon else code_idle), out + err
    assert ESC not in out and ESC not in err  # stdout and stderr are pipes here
    if as_json:
        if keys == "lines":
            for line in out.splitlines():
                assert isinstance(json.loads(line), dict)
        elif keys == "list":
            data = json.loads(out)
            assert isinstance(data, list) and data and {"allowed", "message"} <= set(data[0])
        else:
            data = json.loads(out)
            assert keys <= set(data), sorted(data)
            if name == "status":
                assert data["daemon"] == ("running" if daemon else "not_running")
        assert ROUTE[True] not in err and ROUTE[False] not in err  # nothing but JSON
    elif routed:
        said = out + err
        if name == "status":
            first = out.splitlines()[0]
            assert ("not running" in first) != daemon, first
        else:
            assert ROUTE[daemon] in said and ROUTE[not daemon] not in said, said
    else:  # works on its own either way, and says on stderr whether the daemon runs
        assert out.strip() or name == "logs"
        assert err.count(ROUTE[daemon]) == 1 and ROUTE[not daemon] not in out + err, err
        assert ROUTE[daemon] not in out and "works on its own" in err


def test_a_command_says_once_which_even_when_it_asks_twice(busy, capsys):
    code, _, err = kiosk(capsys, busy, "selftest", "--watch", "--rounds", "2",
                         "--interval", "0.05", "printer")
    assert code == 0 and err.count(ROUTE[True]) == 1


# -- --help -----------------------------------------------------------------------------------


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
    for sub in subs:
        for name, child in sub.choices.items():
            yield from _leaves(child, (*path, name))


@pytest.mark.parametrize(("language", "word"), [("zh-CN", "示例"), ("en", "Example")])
def test_every_help_has_an_example(language, word):
    leaves = dict(_leaves(build_parser(Catalogue(language))))
    assert {"status", "db rebuild", "queue", "stats", "logs", "config show"} <= set(leaves)
    missing = [name for name, parser in leaves.items() if word not in parser.format_help()]
    assert missing == []


def test_every_reporting_command_has_json():
    leaves = dict(_leaves(build_parser(Catalogue("en"))))
    for name in [n for n in COMMANDS if n in leaves] + ["db rebuild", "db init", "tag decode"]:
        assert any(a.dest == "json" for a in leaves[name]._actions), name


# -- a terminal -------------------------------------------------------------------------------


def _in_pty(args: list[str], cwd: Path, **env: str) -> str:
    """Run ``kiosk ARGS`` with stdout and stderr on a pseudo-terminal; what it wrote."""
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "--lang", "en", *args],
                            stdin=subprocess.DEVNULL, stdout=child_fd, stderr=child_fd,
                            cwd=ROOT, env={**kiosk_env(), "TERM": "xterm", **env})
    os.close(child_fd)
    chunks = []
    while True:
        ready, _, _ = select.select([main_fd], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(main_fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(30)
    os.close(main_fd)
    return b"".join(chunks).decode(errors="replace")


def test_terminal_escapes_only_on_a_terminal(tmp_path):
    on_tty = _in_pty(["--db", str(tmp_path / "a.db"), "db", "init", "--sample", "small"],
                     tmp_path)
    assert ESC in on_tty and "Created database" in on_tty
    piped = subprocess.run([sys.executable, "-m", "kiosk", "--lang", "en", "--db",
                            str(tmp_path / "b.db"), "db", "init", "--sample", "small"],
                           capture_output=True, text=True, cwd=ROOT, env=kiosk_env(),
                           timeout=120)
    assert piped.returncode == 0 and "Created database" in piped.stdout
    assert ESC not in piped.stdout + piped.stderr


def test_selftest_marks_are_green_and_red_on_a_terminal_only(tmp_path):
    """What a technician looks for first is coloured at a terminal, and only there: not
    into a pipe, not with NO_COLOR."""
    on_tty = _in_pty(["selftest", "printer"], tmp_path)
    assert "\x1b[32m✔\x1b[0m receipt printer" in on_tty
    plain = _in_pty(["selftest", "printer"], tmp_path, NO_COLOR="1")
    assert "✔ receipt printer" in plain and ESC not in plain
    piped = subprocess.run([sys.executable, "-m", "kiosk", "--lang", "en", "selftest",
                            "printer"], capture_output=True, text=True, cwd=ROOT,
                           env=kiosk_env(), timeout=120)
    assert piped.returncode == 0 and "✔ receipt printer" in piped.stdout
    assert ESC not in piped.stdout + piped.stderr
