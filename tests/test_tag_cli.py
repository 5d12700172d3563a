"""``kiosk tag decode|encode``: output for a person and for scripts, exit codes, help."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from drivers.iso28560 import decode
from kiosk import exitcodes
from kiosk.app import App
from kiosk.commands import COMMAND_MODULES, tag
from kiosk.messages import Catalogue

# ISO 28560-3:2011 annex B.1 (see tests/test_iso28560.py for the source).
B1 = "1101013130303030303030353600000000000098A4444B373138353030000000"
# A real ISO 28560-2 tag (lainuri), DSFID 06.
PART2 = "91 01 04 60 91 CE 43 80 02 01 A8 05 01 10 67 02 42 41 03 07 32 40 DE 05 AB 07 5B 00"


def parser(language: str = "zh-CN") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kiosk")
    sub = p.add_subparsers(dest="command")
    tag.register(sub, Catalogue(language).text)
    return p


def run(*argv: str, language: str = "zh-CN") -> tuple[int, str, str]:
    args = parser(language).parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = args.handler(App(args, Catalogue(language), out, err))
    return code, out.getvalue(), err.getvalue()


def test_decode_part3_for_a_person():
    code, out, err = run("tag", "decode", B1)
    assert code == exitcodes.OK and err == ""
    lines = out.splitlines()
    assert "ISO 28560-3" in lines[0] and "自动识别" in lines[0]
    assert "主要标识符 (primary item identifier): 1000000056" in lines
    assert "所属机构 ISIL (owner institution): DK-718500" in lines
    assert "套件信息 (set information): 第 1 件，共 1 件" in lines
    assert "用途类型 (type of usage): 类别 1（流通资料）" in lines


def test_decode_part2_in_english_with_dsfid_and_separators():
    code, out, _ = run("tag", "decode", "--dsfid", "06", *PART2.split(), language="en")
    assert code == exitcodes.OK
    assert "Data model: ISO 28560-2" in out
    assert "Primary item identifier: 1620168259" in out
    assert "Owner institution (ISIL): FI-Mamk-M" in out
    assert "Type of usage: class 1, sub-class 0 (for circulation)" in out
    assert "ONIX media format: BA" in out
    colons = ":".join(PART2.split())
    assert run("tag", "decode", "--model", "part2", "0x" + colons)[0] == exitcodes.OK


def test_decode_json():
    code, out, _ = run("tag", "decode", "--json", B1)
    result = json.loads(out)
    assert code == exitcodes.OK and result["valid"] is True
    assert result["model"] == "part3" and result["detected"] is True
    assert result["fields"]["primary_item_id"] == "1000000056"
    assert result["fields"]["owner_isil"] == "DK-718500"


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_bad_crc_is_a_clear_refusal(language):
    damaged = B1[:40] + "A5" + B1[42:]  # the CRC's high byte
    code, out, err = run("tag", "decode", damaged, language=language)
    assert code == exitcodes.REFUSED and out == ""
    assert "0xA598" in err and "0xA498" in err and "Traceback" not in err
    code, out, _ = run("tag", "decode", "--json", damaged, language=language)
    assert code == exitcodes.REFUSED
    assert json.loads(out)["reason"] == "crc"


def test_malformed_part2_names_the_byte_and_element():
    code, _, err = run("tag", "decode", "--model", "part2", "0105313233")
    assert code == exitcodes.REFUSED
    assert err.strip() == ("第 0 字节处的主要标识符 (primary item identifier)"
                           "超出了数据末尾，数据不完整")


@pytest.mark.parametrize("argv", [
    ("tag", "decode", "zz"),
    ("tag", "decode", "123"),
    ("tag", "decode", "--dsfid", "1FF", B1),
    ("tag", "encode", "--item", "1", "--set", "3/2"),
    ("tag", "encode", "--item", "1", "--usage", "XYZ"),
])
def test_wrong_arguments_exit_2(argv):
    code, out, err = run(*argv)
    assert code == exitcodes.USAGE and out == "" and err.strip()


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["tag", "encode", "--item", "1", "--block-size", "0"])
    assert exc.value.code == exitcodes.USAGE


def test_encode_part2_prints_hex_and_fields():
    code, out, _ = run("tag", "encode", "--item", "00020000000001", "--owner",
                       "CN-431121-0002", "--set", "1/2", "--usage", "1", "--title", "红楼梦")
    assert code == exitcodes.OK
    first, *rest = out.splitlines()
    assert "DSFID 06" in first
    data = bytes.fromhex(first.split("：", 1)[1])
    assert decode(data, dsfid=0x06).title == "红楼梦"
    assert "主要标识符 (primary item identifier): 00020000000001" in rest
    assert "题名 (title): 红楼梦" in rest


def test_encode_json_round_trips():
    code, out, _ = run("tag", "encode", "--json", "--model", "part3", "--item", "1000000056",
                       "--owner", "DK-718500", language="en")
    result = json.loads(out)
    assert code == exitcodes.OK
    assert result["hex"] == B1 and bytes(result["bytes"]) == bytes.fromhex(B1)
    assert result["dsfid"] == "0x3E" and result["size"] == 32
    assert result["fields"]["primary_item_id"] == "1000000056"


@pytest.mark.parametrize("argv", [
    ("--model", "part3", "--item", "12345678901234567"),
    ("--owner", "not-an-isil!"),
    ("--model", "part3", "--usage", "12"),
    ("--capacity", "8", "--title", "a long title that does not fit"),
    ("--owner", "CN-431121-0002", "--country", "DK"),
])
def test_encode_refuses_data_that_does_not_fit(argv):
    full = ("tag", "encode", *(argv if "--item" in argv else ("--item", "1", *argv)))
    code, out, err = run(*full, language="en")
    assert code == exitcodes.REFUSED and out == ""
    assert err.strip() and "Traceback" not in err and "{" not in err


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_help_has_description_example_and_option_help(language):
    p = parser(language)
    (group,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    tag_parser = group.choices["tag"]
    assert tag_parser.description
    (verbs,) = [a for a in tag_parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(verbs.choices) == {"decode", "encode"}
    for name, sub in verbs.choices.items():
        assert sub.description and "kiosk tag " + name in sub.epilog
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (name, action.option_strings)


def test_help_output(capsys):
    with pytest.raises(SystemExit) as exc:
        parser("en").parse_args(["tag", "decode", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "kiosk tag decode --dsfid 06" in out and "Exit codes" in out


def test_through_the_kiosk_command(capsys):
    if tag not in COMMAND_MODULES:
        pytest.skip("kiosk.commands does not list the tag module yet")
    from kiosk.cli import main
    assert main(["--lang", "en", "tag", "decode", B1]) == exitcodes.OK
    assert "1000000056" in capsys.readouterr().out
