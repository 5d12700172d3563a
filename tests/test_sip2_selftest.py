"""``kiosk selftest sip2`` against the test ILS (tests/sip2_server.py) on loopback: a good
link, a wrong password, nothing listening, a test patron the system does not know; in
text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiosk import exitcodes
from kiosk.cli import main
from kiosk.config.sip2 import Sip2Settings
from kiosk.sip2check import check_sip2
from tests.sip2_server import INSTITUTION, Ils, Patron, Sip2TestServer


def write_config(folder: Path, port: int, password: str = "secret",
                 test_patron: str = "T1") -> Path:
    (folder / "sip2-password").write_text(password + "\n", encoding="utf-8")
    path = folder / "kiosk.toml"
    path.write_text(
        '[device]\nid = "sim-01"\nbranch = "CN-431121-0002"\nprofile = "sim"\n'
        f'[database]\npath = "{folder / "kiosk.db"}"\n'
        f'[sip2]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
        'login_user = "kiosk"\npassword_file = "sip2-password"\n'
        f'institution_id = "{INSTITUTION}"\nlocation_code = "KIOSK-1"\nprofile = "koha"\n'
        f'test_patron = "{test_patron}"\nconnect_timeout_ms = 1000\ntimeout_ms = 2000\n',
        encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str]:
    code = main(["--lang", "en", "--config", str(config), "selftest", "sip2", *argv])
    out, _ = capsys.readouterr()
    return code, out


@pytest.fixture
def ils() -> Ils:
    ils = Ils()
    ils.add_patron(Patron("T1", "Test Reader", "0000"))
    return ils


def test_good_link_reports_the_library_systems_capabilities(capsys, tmp_path, ils):
    with Sip2TestServer(ils) as server:
        config = write_config(tmp_path, server.port)
        code, out = run(capsys, config)
        assert code == exitcodes.OK, out
        assert "✔ library system link (SIP2)  sip2://127.0.0.1" in out
        assert "logged in as kiosk" in out
        assert "checkout Y, checkin Y, renewal Y, offline ok Y" in out
        assert "test patron T1 is known; may borrow: Y" in out
        code, out = run(capsys, config, "--json")
    report = json.loads(out)
    assert report["ok"] is True
    (sip2,) = report["devices"]
    assert [c["check"] for c in sip2["checks"]] == ["sip2_login", "sip2_status", "sip2_patron"]
    status = sip2["checks"][1]["detail_params"]
    assert {"09", "11", "17", "23", "29"} <= set(status["supported"].split())
    assert status["missing"] == "-"
    # The self-test logged in once on a connection of its own, then looked the patron up.
    assert [m.code for m in server.decoded()][:3] == ["93", "99", "23"]


def test_wrong_password_names_the_login_and_the_password_file(capsys, tmp_path, ils):
    with Sip2TestServer(ils) as server:
        config = write_config(tmp_path, server.port, password="wrong")
        code, out = run(capsys, config)
        assert code == exitcodes.REFUSED
        assert "✘ connect and log in" in out
        assert "refused the login of kiosk" in out and "sip2-password" in out
        assert "skipped because the check before failed" in out  # status and patron
        code, out = run(capsys, config, "--json")
    (sip2,) = json.loads(out)["devices"]
    first = sip2["checks"][0]
    assert (first["ok"], first["hint"]) == (False, "selftest.hint.sip2_login")
    assert [c["ok"] for c in sip2["checks"]] == [False, False, False]


def test_nothing_listening_says_where_and_what_to_check(capsys, tmp_path, ils):
    with Sip2TestServer(ils) as server:
        port = server.port
    config = write_config(tmp_path, port)
    code, out = run(capsys, config)
    assert code == exitcodes.REFUSED
    assert f"nothing answers at 127.0.0.1:{port}" in out and "sip2.host" in out
    code, out = run(capsys, config, "--json")
    (sip2,) = json.loads(out)["devices"]
    assert sip2["checks"][0]["hint"] == "selftest.hint.sip2_unreachable"
    assert json.loads(out)["ok"] is False


def test_unknown_test_patron_fails_only_that_check(tmp_path, ils):
    with Sip2TestServer(ils) as server:
        (tmp_path / "pw").write_text("secret", encoding="utf-8")
        settings = Sip2Settings(enabled=True, host="127.0.0.1", port=server.port,
                                login_user="kiosk", password_file=tmp_path / "pw",
                                institution_id=INSTITUTION, test_patron="NOBODY",
                                timeout_ms=2000)
        report = check_sip2(settings)
    assert [c.ok for c in report.checks] == [True, True, False]
    assert report.checks[2].hint == "selftest.hint.sip2_patron"
    assert report.checks[2].hint_params["card"] == "NOBODY"


def test_unreadable_password_file_is_named(tmp_path):
    settings = Sip2Settings(enabled=True, host="127.0.0.1", port=9, login_user="kiosk",
                            password_file=tmp_path / "missing", institution_id=INSTITUTION)
    report = check_sip2(settings)
    assert report.checks[0].hint == "selftest.hint.sip2_password_file"
    assert not report.ok
