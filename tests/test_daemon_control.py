"""The control socket: who may use it, its JSON-lines protocol, and the ``kiosk`` commands
that go through it (status, circ, queue, selftest, sync, sim) when the daemon runs."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from kiosk.cli import main
from tests.daemon_helpers import (
    BOOKS,
    CARDS,
    ROOT,
    kiosk,
    running,
    settings_for,
    write_config,
)


@pytest.fixture
def daemon(folder):
    with running(settings_for(folder / "kiosk.toml")) as k:
        yield k


def raw(folder, *lines: bytes, read: int = 1) -> list[dict]:
    """Send raw lines on one connection; the first ``read`` answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(folder / "control.sock"))
        for line in lines:
            sock.sendall(line)
        stream = sock.makefile("rb")
        return [json.loads(stream.readline()) for _ in range(read)]


# -- who may talk to it ---------------------------------------------------------------------


def test_socket_is_owner_and_group_only(daemon, folder):
    mode = stat.S_IMODE(os.stat(folder / "control.sock").st_mode)
    assert mode == 0o660


_AS_NOBODY = """
import os, sys
from kiosk.cli import main
import codecs, kiosk.commands, kiosk.control_client, kiosk.daemon.db
from kiosk.messages import available, texts
available(), texts("en"), texts("zh-CN"), codecs.lookup("utf-8-sig")
os.setgroups([]); os.setgid(65534); os.setuid(65534)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root")
def test_another_user_is_refused_and_the_daemon_carries_on(daemon, folder, capsys):
    folder.chmod(0o755)  # let the other user reach the socket file at all
    (folder / "kiosk.toml").chmod(0o644)

    def as_nobody(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", _AS_NOBODY, "--lang", "en", "--config",
             str(folder / "kiosk.toml"), *args], capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd="/")

    # The socket's mode keeps the other user out...
    r = as_nobody("status")
    assert r.returncode == 1 and "refuses this user" in r.stderr, r.stderr
    # ...and with the mode wrongly widened, the daemon's own check still refuses it.
    os.chmod(folder / "control.sock", 0o666)
    r = as_nobody("circ", "checkin", "--item", BOOKS[0])
    assert r.returncode == 1 and "uid 65534" in r.stderr, r.stderr
    # The daemon is still there for its own users.
    code, out, _ = kiosk(capsys, folder, "status")
    assert code == 0 and "running, ready" in out


# -- the protocol ---------------------------------------------------------------------------


def test_protocol_errors_are_answered_and_the_daemon_keeps_running(daemon, folder):
    answers = raw(folder, b"not json\n", b"[1, 2]\n", b'{"id": 3, "cmd": "fly"}\n',
                  b'{"id": 4, "cmd": "queue", "args": {"limit": "x"}}\n',
                  b'{"id": 5, "cmd": "sim", "args": {"device": "toaster"}}\n',
                  b'{"id": 6, "cmd": "hello"}\n', read=6)
    codes = [a.get("error", {}).get("code") for a in answers]
    assert codes == ["bad_json", "bad_request", "unknown_command", "bad_arguments",
                     "bad_arguments", None]
    assert answers[2]["id"] == 3 and "status" in answers[2]["error"]["params"]["known"]
    assert answers[5]["ok"] and answers[5]["result"]["state"] == "ready"
    (too_long,) = raw(folder, b'{"cmd": "hello", "pad": "' + b"x" * 70_000 + b'"}\n')
    assert too_long["error"]["code"] == "too_long"
    (hello,) = raw(folder, b'{"id": 1, "cmd": "hello"}\n')
    assert hello["ok"] and hello["id"] == 1


def test_watch_streams_the_published_events(daemon, folder):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(folder / "control.sock"))
        sock.sendall(b'{"id": 9, "cmd": "watch"}\n')
        stream = sock.makefile("rb")
        assert json.loads(stream.readline())["result"] == {"watching": True}
        daemon.tap(CARDS[0])
        seen = []
        while "session_started" not in seen:
            answer = json.loads(stream.readline())
            assert answer["id"] == 9
            seen.append(answer["event"]["event"])
        assert "card_seen" in seen


# -- the kiosk command through the daemon ---------------------------------------------------


def test_status_with_and_without_the_daemon(folder, capsys):
    code, out, _ = kiosk(capsys, folder, "status")
    assert code == 1 and "not running" in out and "0 transaction(s)" in out
    with running(settings_for(folder / "kiosk.toml")):
        code, out, _ = kiosk(capsys, folder, "status", "--json")
        data = json.loads(out)
    assert code == 0 and data["daemon"] == "running" and data["state"] == "ready"
    assert set(data["devices"]) == {"tag_reader", "card_reader", "printer"}
    assert data["flag_pending"] == [] and data["queue_depth"] == 0


def test_circulation_goes_through_the_daemon(daemon, folder, capsys):
    # A config whose database path is wrong: only the daemon can do it (it owns the right one).
    lost = folder / "elsewhere"
    lost.mkdir()
    write_config(lost, folder / "missing.db")
    cfg = lost / "kiosk.toml"
    cfg.write_text(cfg.read_text().replace(str(lost / "control.sock"),
                                           str(folder / "control.sock")))
    code = main(["--lang", "en", "--config", str(cfg), "circ", "checkout", "--card", CARDS[0],
                 "--item", BOOKS[0], "--item", BOOKS[1]])
    out = capsys.readouterr().out
    assert code == 0 and out.count("✔ Lent") == 2
    code = main(["--config", str(cfg), "queue", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["depth"] == 2
    assert [e["kind"] for e in report["events"]] == ["checkout", "checkout"]
    code = main(["--lang", "en", "--config", str(cfg), "circ", "checkin", "--item", BOOKS[0],
                 "--json"])
    (result,) = json.loads(capsys.readouterr().out)
    assert code == 0 and result["allowed"] and result["message"].startswith("Returned")
    # --db naming another database than the daemon's works on that file directly.
    code = main(["--lang", "en", "--config", str(cfg), "--db", str(folder / "missing.db"),
                 "queue"])
    assert code == 4 and "No database" in capsys.readouterr().err


def test_selftest_runs_inside_the_daemon(daemon, folder, capsys):
    polls = daemon.workers("tag_reader").polls
    code, out, _ = kiosk(capsys, folder, "selftest", "tag_reader", "card_reader", "printer",
                         "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"]
    assert [d["device"] for d in report["devices"]] == ["tag_reader", "card_reader", "printer"]
    # The daemon's worker went on polling afterwards; nobody fought over the port.
    daemon.wait_for("tags", initial=True)
    assert daemon.workers("tag_reader").polls > polls
    assert daemon.control("status")["state"] == "ready"


def test_sync_without_a_hub_says_so(daemon, folder, capsys):
    code, _, err = kiosk(capsys, folder, "sync")
    assert code == 3 and "No hub is configured" in err


def test_sim_commands_act_on_the_simulated_devices(daemon, folder, capsys):
    code, out, _ = kiosk(capsys, folder, "sim", "card", "--card", CARDS[1])
    assert code == 0 and CARDS[1] in out
    daemon.wait_for("session_started")
    code, out, _ = kiosk(capsys, folder, "sim", "place", BOOKS[2], BOOKS[3])
    assert code == 0 and "2 book(s) on the pad" in out
    for barcode in BOOKS[2:4]:
        daemon.wait_for("lent", barcode=barcode)
    code, _, err = kiosk(capsys, folder, "sim", "place", BOOKS[2])
    assert code == 1 and "already on the pad" in err
    assert kiosk(capsys, folder, "sim", "printer", "paper-out")[0] == 0
    daemon.wait_for("printer", problems=["paper_out"])
    assert kiosk(capsys, folder, "sim", "finish")[0] == 0
    daemon.wait_for("receipt_failed")
    assert kiosk(capsys, folder, "sim", "printer", "paper-in")[0] == 0
    code, out, _ = kiosk(capsys, folder, "sim", "remove", "--all")
    assert code == 0 and "2 book(s) taken off" in out
    code, out, _ = kiosk(capsys, folder, "sim", "show")
    world = json.loads(out)
    assert world["pad"] == [] and world["printer"]["faults"] == []
    # A lifted book keeps its flag: put back, it still says "on loan".
    kiosk(capsys, folder, "sim", "place", BOOKS[2])
    code, out, _ = kiosk(capsys, folder, "sim", "show")
    assert json.loads(out)["pad"][0]["afi"] == "0xC2"
    assert kiosk(capsys, folder, "sim", "reader", "unplug")[0] == 0
    daemon.wait_for("state", state="degraded")
    assert kiosk(capsys, folder, "sim", "reader", "replug")[0] == 0
    daemon.wait_for("state", state="ready", timeout=15)
    assert kiosk(capsys, folder, "sim", "card", "remove")[0] == 0
    daemon.wait_for("card_removed")
    code, _, err = kiosk(capsys, folder, "sim", "door", "open")
    assert code == 1 and "This kiosk has no entrance door" in err


def test_sim_without_a_daemon_or_without_a_simulator(folder, capsys):
    code, _, err = kiosk(capsys, folder, "sim", "place", BOOKS[0])
    assert code == 1 and "No kiosk daemon is running" in err
    code, _, err = kiosk(capsys, folder, "sim", "card")
    assert code == 2 and "--card NUMBER" in err
    # A kiosk whose tag reader is a real device: its pad cannot be simulated.
    pad = folder / "pad"
    pad.mkdir()
    config = write_config(pad, folder / "kiosk.db", extra='[tag_reader]\nurl = "/dev/null"\n')
    with running(settings_for(config)):
        code = main(["--lang", "en", "--config", str(config), "sim", "place", BOOKS[0]])
    assert code == 1 and "is a real device" in capsys.readouterr().err
