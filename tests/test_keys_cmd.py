"""``kiosk keys create|check|rotate``: the personal-data key file of a device that registers
readers, made with the county's shared secret, checked without showing a key, rotated
without losing the old keys."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from kiosk.cli import main
from sync import personal

ID_NUMBER = "11010519491231002X"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["--lang", "en", "keys", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def secrets_in(path: Path) -> list[str]:
    """Every key and the county secret of the key file, as written (base64)."""
    keys = personal.load_keys(path)
    return [base64.b64encode(k).decode() for k in [*keys.keys.values(), keys.county_secret]]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def first(tmp_path, capsys) -> Path:
    """The county's first device: a key file and the county secret file beside it."""
    path = tmp_path / "personal-data.key"
    code, _, err = run(capsys, "create", "--file", str(path), "--new-county")
    assert code == 0, err
    return path


def test_the_first_device_makes_the_county_secret_and_a_second_device_shares_it(
        tmp_path, capsys, first):
    secret_file = tmp_path / "county-secret"
    assert mode(first) == 0o600 and mode(secret_file) == 0o600
    keys = personal.load_keys(first)
    assert personal.read_county_secret(secret_file) == keys.county_secret
    # The second van: the same county secret, its own data key.
    other = tmp_path / "van-02.key"
    code, out, _ = run(capsys, "create", "--file", str(other), "--county-secret-file",
                       str(secret_file), "--json")
    result = json.loads(out)
    assert code == 0 and result["created"] and result["key_ids"] == ["k1"]
    assert result["county_secret_file"] is None
    theirs = personal.load_keys(other)
    assert theirs.person_hash("resident_id", ID_NUMBER) == \
        keys.person_hash("resident_id", ID_NUMBER)
    assert theirs.keys["k1"] != keys.keys["k1"]
    assert mode(other) == 0o600


def test_create_says_where_the_county_secret_went_and_shows_no_key(tmp_path, capsys):
    path = tmp_path / "k.key"
    code, out, err = run(capsys, "create", "--file", str(path), "--new-county",
                         "--county-secret-out", str(tmp_path / "usb-secret"))
    assert code == 0, err
    assert f"Created the key file {path}" in out and str(tmp_path / "usb-secret") in out
    assert "restart library-kiosk" in out
    for secret in secrets_in(path):
        assert secret not in out + err


def test_create_never_overwrites(capsys, first):
    before = first.read_bytes()
    code, out, err = run(capsys, "create", "--file", str(first), "--new-county")
    assert code == 1 and "already exists" in err and "kiosk keys rotate" in err
    code, out, _ = run(capsys, "create", "--file", str(first), "--new-county", "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "exists"
    assert first.read_bytes() == before


def test_create_refuses_without_the_county_secret(tmp_path, capsys):
    path = tmp_path / "k.key"
    code, out, err = run(capsys, "create", "--file", str(path))
    assert code == 1 and "--county-secret-file" in err and "--new-county" in err
    code, out, _ = run(capsys, "create", "--file", str(path), "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "no_county_secret"
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_create_refuses_a_bad_county_secret_file_and_an_existing_one(tmp_path, capsys):
    bad = tmp_path / "county-secret"
    bad.write_text("# a secret\nbm90IDMyIGJ5dGVz\n")
    path = tmp_path / "k.key"
    code, out, _ = run(capsys, "create", "--file", str(path), "--county-secret-file", str(bad),
                       "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "county_secret_invalid"
    assert not path.exists()
    # --new-county would write the secret where one already is: refused, nothing made.
    code, _, err = run(capsys, "create", "--file", str(path), "--new-county")
    assert code == 1 and "may already have its secret" in err
    assert not path.exists() and bad.read_text().startswith("# a secret")


def test_create_uses_the_key_file_of_the_config(tmp_path, capsys):
    path = tmp_path / "from-config.key"
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[device]\nid = "van-01"\nbranch = "CN-431121-0100"\nprofile = "van"\n'
                      f'[desk]\nregistration = true\nkey_file = "{path}"\n')
    code = main(["--lang", "en", "--config", str(config), "keys", "create", "--new-county"])
    assert code == 0, capsys.readouterr()
    capsys.readouterr()
    assert personal.load_keys(path).current == "k1"
    code = main(["--lang", "en", "--config", str(config), "keys", "check", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["file"] == str(path)


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_check_a_good_file(capsys, first, as_json):
    code, out, err = run(capsys, "check", "--file", str(first), *(["--json"] * as_json))
    assert code == 0, out + err
    if as_json:
        report = json.loads(out)
        assert report["ok"] and report["problems"] == []
        assert report["mode"] == "0600" and report["key_ids"] == ["k1"]
        assert report["current"] == "k1" and report["county_key_id"] == "c1"
    else:
        assert "mode 0600" in out and "Key ids: k1 (current: k1); county key id: c1" in out
        assert "Key file check passed" in out
    for secret in secrets_in(first):
        assert secret not in out + err


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_check_a_file_others_can_read(capsys, first, as_json):
    first.chmod(0o640)
    code, out, err = run(capsys, "check", "--file", str(first), *(["--json"] * as_json))
    assert code == 1
    if as_json:
        report = json.loads(out)
        assert not report["ok"] and [p["code"] for p in report["problems"]] == ["unsafe_mode"]
        assert report["key_ids"] == ["k1"]  # still read, to say what is in it
    else:
        assert "mode 0640" in out and f"sudo chmod 600 {first}" in out
        assert "The key file has problems" in out
    for secret in secrets_in_anyway(first):
        assert secret not in out + err


def secrets_in_anyway(path: Path) -> list[str]:
    keys = personal.parse_keys(path.read_bytes(), path)
    return [base64.b64encode(k).decode() for k in [*keys.keys.values(), keys.county_secret]]


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_check_a_corrupt_file(capsys, first, as_json):
    text = first.read_text()
    first.write_text(text.replace('current = "k1"', 'current = "k9"'))
    code, out, _ = run(capsys, "check", "--file", str(first), *(["--json"] * as_json))
    assert code == 1
    if as_json:
        report = json.loads(out)
        assert [p["code"] for p in report["problems"]] == ["invalid"]
        assert report["key_ids"] == [] and report["mode"] == "0600"
    else:
        assert "is not a valid key file" in out and "do not create a new one" in out
    first.write_bytes(b"\xff\xfe not toml")
    code, out, _ = run(capsys, "check", "--file", str(first), "--json")
    assert code == 1 and json.loads(out)["problems"][0]["code"] == "invalid"


def test_check_a_missing_file(tmp_path, capsys):
    code, out, _ = run(capsys, "check", "--file", str(tmp_path / "none.key"), "--json")
    report = json.loads(out)
    assert code == 1 and not report["exists"] and report["problems"][0]["code"] == "missing"
    code, out, _ = run(capsys, "check", "--file", str(tmp_path / "none.key"))
    assert code == 1 and "kiosk keys create --county-secret-file" in out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file away")
def test_check_a_file_owned_by_someone_else(capsys, first):
    os.chown(first, 54321, 54321)
    code, out, _ = run(capsys, "check", "--file", str(first), "--json")
    report = json.loads(out)
    assert code == 1 and [p["code"] for p in report["problems"]] == ["bad_owner"]
    assert report["owner"] == "54321"


def test_rotate_keeps_the_old_keys_so_old_rows_still_decrypt(capsys, first):
    before = personal.load_keys(first)
    stored = before.encrypt(ID_NUMBER, "id_number")
    owner = first.stat().st_uid
    code, out, err = run(capsys, "rotate", "--file", str(first))
    assert code == 0, err
    assert "k2" in out and "Old records still decrypt" in out
    after = personal.load_keys(first)
    assert after.current == "k2" and sorted(after.keys) == ["k1", "k2"]
    assert after.keys["k1"] == before.keys["k1"] and after.keys["k2"] != before.keys["k1"]
    assert after.decrypt(stored, "id_number").reveal() == ID_NUMBER
    assert after.encrypt(ID_NUMBER, "id_number").startswith("k2:")
    assert after.county_secret == before.county_secret  # the duplicate hash is unchanged
    assert mode(first) == 0o600 and first.stat().st_uid == owner
    code, out, _ = run(capsys, "rotate", "--file", str(first), "--json")
    result = json.loads(out)
    assert code == 0 and result["current"] == "k3" and result["key_ids"] == ["k1", "k2", "k3"]
    assert personal.load_keys(first).decrypt(stored, "id_number").reveal() == ID_NUMBER
    assert [p.name for p in first.parent.iterdir() if p.name.startswith(".")] == []


def test_rotate_refuses_an_unsafe_or_missing_file(tmp_path, capsys, first):
    first.chmod(0o644)
    before = first.read_bytes()
    code, out, _ = run(capsys, "rotate", "--file", str(first), "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "unsafe_mode"
    assert first.read_bytes() == before
    code, _, err = run(capsys, "rotate", "--file", str(tmp_path / "none.key"))
    assert code == 1 and "does not exist" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="root hands the file to the service user")
def test_root_hands_the_new_file_to_the_service_user(tmp_path, capsys):
    import pwd

    nobody = pwd.getpwnam("nobody")
    path = tmp_path / "k.key"
    code, out, _ = run(capsys, "create", "--file", str(path), "--new-county",
                       "--service-user", "nobody", "--json")
    assert code == 0 and json.loads(out)["owner"] == "nobody"
    assert path.stat().st_uid == nobody.pw_uid and mode(path) == 0o600
    assert (tmp_path / "county-secret").stat().st_uid == 0  # the technician's to copy
    code, out, _ = run(capsys, "check", "--file", str(path), "--service-user", "nobody",
                       "--json")
    assert code == 0 and json.loads(out)["warnings"] == []
    # A root-owned file passes, but the daemon's user could not read it: said as a warning.
    os.chown(path, 0, 0)
    code, out, _ = run(capsys, "check", "--file", str(path), "--service-user", "nobody")
    assert code == 0 and "the daemon, which runs as nobody, cannot read it" in out
