"""The ``kiosk`` command end to end (in-process ``main``, real database files)."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys

import pytest

from kiosk import exitcodes
from kiosk.cli import build_parser, main
from kiosk.messages import Catalogue
from tests.conftest import CENTRAL


@pytest.fixture
def dbfile(world):
    world.patron("431100000017")
    world.patron("431100000025", expires_on="2025-01-01")
    world.item("00020000000001", title="红楼梦")
    world.item("00020000000002", title="乡村振兴实用技术", owning_branch=CENTRAL)
    world.cache.close()
    return str(world.path)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _subparsers(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _subparsers(sub, (*prefix, name))


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_every_subcommand_has_help_text(language):
    parser = build_parser(Catalogue(language))
    seen = list(_subparsers(parser))
    assert len(seen) >= 9
    for path, sub in seen:
        assert sub.description and sub.description.strip(), path
        leaves = not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
        if leaves:
            assert sub.epilog and "kiosk" in sub.epilog, f"{path} has no example"
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{path} {action.option_strings} has no help"


def test_console_script_runs_and_prints_version():
    r = subprocess.run([sys.executable, "-m", "kiosk", "--version"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("library-kiosk ")


def test_checkout_in_chinese_then_english(dbfile, capsys):
    code, out, _ = run(capsys, "--db", dbfile, "--lang", "zh-CN", "circ", "checkout",
                       "--card", "431100000017", "--item", "00020000000001")
    assert code == exitcodes.OK
    assert "已借出《红楼梦》" in out and "离线办理" in out
    code, out, _ = run(capsys, "--db", dbfile, "--lang", "en", "circ", "checkout",
                       "--card", "431100000017", "--item", "00020000000001")
    assert code == exitcodes.REFUSED
    assert "already on loan to you" in out and "renew" in out


def test_several_items_and_a_refusal_give_exit_code_1(dbfile, capsys):
    code, out, _ = run(capsys, "--db", dbfile, "--lang", "en", "circ", "checkout", "--card",
                       "431100000025", "--item", "00020000000001", "--item", "00020000000002")
    assert code == exitcodes.REFUSED
    assert out.count("your card has expired") == 2


def test_return_of_another_branchs_book_says_where_it_goes(dbfile, capsys):
    run(capsys, "--db", dbfile, "circ", "checkout", "--card", "431100000017",
        "--item", "00020000000002")
    code, out, _ = run(capsys, "--db", dbfile, "--lang", "zh-CN", "circ", "checkin",
                       "--item", "00020000000002")
    assert code == exitcodes.OK
    assert "这本书属于县图书馆" in out


def test_json_output_of_circulation(dbfile, capsys):
    code, out, _ = run(capsys, "--db", dbfile, "circ", "checkout", "--json",
                       "--card", "431100000017", "--item", "00020000000001")
    (result,) = json.loads(out)
    assert code == 0 and result["allowed"] is True and result["reason"] == "ok"
    assert result["item"]["title"] == "红楼梦" and result["events"][0]["seq"] == 1
    assert result["message"].startswith("已借出")


def test_queue_lists_unacknowledged_events(dbfile, capsys):
    run(capsys, "--db", dbfile, "circ", "checkout", "--card", "431100000017",
        "--item", "00020000000001")
    run(capsys, "--db", dbfile, "circ", "checkin", "--item", "00020000000001")
    code, out, _ = run(capsys, "--db", dbfile, "queue", "--json")
    data = json.loads(out)
    assert code == 0 and data["depth"] == 2
    assert [e["kind"] for e in data["events"]] == ["checkout", "checkin"]
    assert {"txn_id", "device_id", "seq", "boot_id", "mono_ns", "wall_ns", "clock_synced",
            "hlc"} <= set(data["events"][0])
    code, out, _ = run(capsys, "--db", dbfile, "--lang", "en", "queue")
    assert "checkout" in out and "2 not yet acknowledged" in out


def test_empty_queue(dbfile, capsys):
    code, out, _ = run(capsys, "--db", dbfile, "--lang", "en", "queue")
    assert code == 0 and "No transactions waiting" in out


def test_batch_reports_each_committed_request_and_bad_lines(dbfile, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(
        "checkout 431100000017 00020000000001\n# a comment\nfly away\n"
        "checkin 00020000000001\n"))
    code, out, _ = run(capsys, "--db", dbfile, "--lang", "en", "circ", "batch")
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x.get("action", x.get("error")) for x in lines] == ["checkout", "bad_request",
                                                                "checkin"]
    assert lines[1]["line"] == 3 and "fly away" in lines[1]["message"]
    assert code == exitcodes.REFUSED


def test_db_commands_round_trip(tmp_path, capsys):
    path = str(tmp_path / "new.db")
    code, out, _ = run(capsys, "--db", path, "--lang", "en", "db", "init")
    assert code == 0 and "Created database" in out
    code, out, _ = run(capsys, "--db", path, "--lang", "en", "db", "migrate")
    assert code == 0 and "current" in out
    code, out, _ = run(capsys, "--db", path, "db", "check", "--json", "--full")
    assert code == 0 and json.loads(out)["ok"] is True
    target = str(tmp_path / "backup.db")
    code, out, _ = run(capsys, "--db", path, "db", "backup", target, "--json")
    assert code == 0 and json.loads(out)["backup"] == target
    code, _, err = run(capsys, "--db", path, "--lang", "en", "db", "backup", target)
    assert code == exitcodes.DATA and "will not be overwritten" in err


def test_usage_error_exit_code(capsys):
    with pytest.raises(SystemExit) as info:
        main(["circ", "checkout", "--item", "X"])
    assert info.value.code == exitcodes.USAGE
