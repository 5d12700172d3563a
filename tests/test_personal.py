"""Personal data at rest: the key file, encryption with key ids, the person hash, masking."""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle

import pytest

from sync import personal
from sync.personal import (
    KeyFileInvalid,
    KeyFileMissing,
    KeyFileUnsafe,
    Sensitive,
    create_key_file,
    load_keys,
)

NUMBER = "11010519491231002X"


@pytest.fixture
def keys(tmp_path):
    return load_keys(create_key_file(tmp_path / "personal.keys", county_secret=b"c" * 32))


def test_key_file_is_created_0600_and_never_overwritten(tmp_path):
    path = create_key_file(tmp_path / "k")
    assert os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        create_key_file(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused(tmp_path, mode):
    path = create_key_file(tmp_path / "k")
    os.chmod(path, mode)
    with pytest.raises(KeyFileUnsafe) as err:
        load_keys(path)
    assert "chmod 600" in str(err.value)
    assert err.value.message_key == "registration.keys.unsafe"


def test_missing_and_invalid_key_files(tmp_path):
    with pytest.raises(KeyFileMissing):
        load_keys(tmp_path / "nothing")
    bad = tmp_path / "bad"
    bad.write_text('current = "k1"\ncounty_secret = "c2hvcnQ="\n[keys]\nk1 = "c2hvcnQ="\n')
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFileInvalid):
        load_keys(bad)


def test_encrypt_decrypt_with_key_id_and_purpose(keys):
    stored = keys.encrypt(NUMBER, "id_number")
    assert stored.startswith("k1:") and NUMBER not in stored
    assert keys.encrypt(NUMBER, "id_number") != stored  # a fresh nonce each time
    assert keys.decrypt(stored, "id_number").reveal() == NUMBER
    with pytest.raises(personal.PersonalDataError):
        keys.decrypt(stored, "phone")  # bound to its purpose


def test_rotation_keeps_old_values_readable(tmp_path, keys):
    old = keys.encrypt(NUMBER, "id_number")
    path = tmp_path / "rotated"
    text = (tmp_path / "personal.keys").read_text().replace('current = "k1"', 'current = "k2"')
    path.write_text(text + 'k2 = "' + "QkJC" * 10 + 'QkI="\n')
    os.chmod(path, 0o600)
    rotated = load_keys(path)
    assert rotated.encrypt(NUMBER, "id_number").startswith("k2:")
    assert rotated.decrypt(old, "id_number").reveal() == NUMBER


def test_person_hash_is_the_same_across_devices_of_one_county(tmp_path, keys):
    other = load_keys(create_key_file(tmp_path / "other", county_secret=b"c" * 32))
    elsewhere = load_keys(create_key_file(tmp_path / "elsewhere", county_secret=b"d" * 32))
    h = keys.person_hash("resident_id", NUMBER)
    assert len(h) == 64 and NUMBER not in h
    assert other.person_hash("resident_id", NUMBER.lower()) == h
    assert keys.person_hash("passport", NUMBER) != h
    assert elsewhere.person_hash("resident_id", NUMBER) != h
    sealed = keys.seal(NUMBER, "id_number")
    assert other.unseal(sealed, "id_number").reveal() == NUMBER  # any holder of the secret


def test_sensitive_never_shows_its_value(caplog):
    s = Sensitive(NUMBER, "110105********002X")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").info("number %s %r %s", s, s, f"{s}")
    assert NUMBER not in caplog.text
    assert "110105********002X" in caplog.text
    with pytest.raises(TypeError):
        json.dumps({"n": s})
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert s.reveal() == NUMBER


@pytest.mark.parametrize("raw, ok", [
    ("13812345678", True), ("+86 138 1234 5678", True), ("0086-13812345678", True),
    ("１３８１２３４５６７８", True), ("12812345678", False), ("1381234567", False),
    ("0731-84561234", False), ("", False),
])
def test_phone_numbers(raw, ok):
    if ok:
        assert personal.normalise_phone(raw) == "13812345678"
        assert personal.mask_phone("13812345678") == "138****5678"
    else:
        with pytest.raises(personal.InvalidPhone):
            personal.normalise_phone(raw)


def test_keys_repr_shows_no_key_material(keys):
    text = repr(keys)
    assert "k1" in text
    for key in (*keys.keys.values(), keys.county_secret):
        assert base64.b64encode(key).decode() not in text and key.hex() not in text
