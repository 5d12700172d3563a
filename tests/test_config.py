"""The config loader and checker, and ``kiosk config check`` / ``kiosk config show``.

Every test writes a real file into tmp_path; the command tests run the real ``kiosk.cli.main``.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from kiosk import config, exitcodes
from kiosk.cli import main
from kiosk.config import ConfigInvalid, Problem, sections
from kiosk.config.lines import join_path, key_lines, line_of
from kiosk.config.schema import Key, Section
from kiosk.config.settings import HubSettings, Settings
from kiosk.config.show import MASK, is_secret
from kiosk.config.types import Bool, Str
from kiosk.messages import Catalogue, placeholders, texts
from sync.policy import OfflineLimits, OnLoanToOther, Policy, UnknownItem

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

DEVICE = """\
[device]
id = "van-01"
branch = "CN-431121-0003"
profile = "van"
"""


def write(tmp_path: Path, text: str, name: str = "kiosk.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def found(tmp_path: Path, text: str) -> list[tuple[int | None, str, str]]:
    """(line, key, message_key) of every problem of ``text``, in reported order."""
    return [(p.line, p.key, p.message_key) for p in config.check(write(tmp_path, text))]


def only(tmp_path: Path, text: str) -> Problem:
    problems = config.check(write(tmp_path, text))
    assert len(problems) == 1, problems
    return problems[0]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--lang", "en", *argv] if "--lang" not in argv else list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- the line scanner ---------------------------------------------------------------------


def test_scanner_tables_keys_and_comments() -> None:
    lines = key_lines(textwrap.dedent("""\
        # a comment with = and [brackets]
        [device]   # trailing comment
        id = "a"   # [not.a.table]

          [ circulation . offline ]
        unknown_item = "refuse"
        """))
    assert lines == {
        "device": 2, "device.id": 3, "circulation": 5, "circulation.offline": 5,
        "circulation.offline.unknown_item": 6,
    }


def test_scanner_dotted_and_quoted_keys() -> None:
    lines = key_lines(textwrap.dedent("""\
        [circulation]
        offline.max_loans_per_patron = 3
        "a b".'c' = 1
        "tab\\tkey" = 2
        """))
    assert lines["circulation.offline"] == 2
    assert lines["circulation.offline.max_loans_per_patron"] == 2
    assert lines['circulation."a b".c'] == 3
    assert lines['circulation."tab\\tkey"'] == 4


def test_scanner_skips_multiline_strings_and_arrays() -> None:
    lines = key_lines(textwrap.dedent('''\
        [device]
        note = """
        [fake]
        fake_key = 1
        """
        other = \'\'\'
        also = "fake" \'\'\'
        list = [
          "]",  # ] in a comment
          { x = 1 },
        ]
        quote_end = """ends with quotes"" """
        id = "real"
        '''))
    assert "fake" not in lines and "device.fake_key" not in lines and "device.also" not in lines
    assert lines["device.other"] == 6
    assert lines["device.list"] == 8
    assert lines["device.quote_end"] == 12
    assert lines["device.id"] == 13


def test_scanner_inline_tables_take_the_line_of_their_key() -> None:
    lines = key_lines('[circulation]\n\noffline = { unknown_item = "x", y = { z = 1 } }\n')
    assert "circulation.offline.unknown_item" not in lines
    assert line_of(lines, ("circulation", "offline", "y", "z")) == 3
    assert line_of(lines, ("nowhere", "x")) is None


def test_scanner_indexes_arrays_of_tables() -> None:
    lines = key_lines(textwrap.dedent("""\
        [[lockers]]
        port = 1
        [lockers.door]
        pin = 3
        [[lockers]]
        port = 2
        [[lockers.bank]]
        size = 4
        """))
    assert lines["lockers"] == 1
    assert lines["lockers[0].port"] == 2
    assert lines["lockers[0].door.pin"] == 4
    assert lines["lockers[1]"] == 5
    assert lines["lockers[1].port"] == 6
    assert lines["lockers[1].bank[0].size"] == 8


def test_join_path_quotes_only_non_bare_keys() -> None:
    assert join_path(("circulation", "offline", "unknown_item")) == (
        "circulation.offline.unknown_item")
    assert join_path(("lockers", 2, "port")) == "lockers[2].port"
    assert join_path(("a b", "书")) == '"a b"."书"'


# --- types and bounds ---------------------------------------------------------------------


@pytest.mark.parametrize(("value", "message_key"), [
    ("0", "config.problem.too_small"),
    ("101", "config.problem.too_large"),
    ("true", "config.problem.type"),
    ("5.0", "config.problem.type"),
    ('"5"', "config.problem.type"),
])
def test_int_is_typed_and_bounded(tmp_path: Path, value: str, message_key: str) -> None:
    p = only(tmp_path, DEVICE + f"[circulation.offline]\nmax_loans_per_patron = {value}\n")
    assert (p.line, p.key, p.message_key) == (
        6, "circulation.offline.max_loans_per_patron", message_key)


@pytest.mark.parametrize("value", ["1", "100"])
def test_int_bounds_are_inclusive(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, DEVICE + f"[circulation.offline]\nmax_loans_per_patron = {value}\n")
    assert config.load(path).circulation.offline.max_loans_per_patron == int(value)


def test_bool_is_not_an_int(tmp_path: Path) -> None:
    p = only(tmp_path, DEVICE + "[circulation]\nhold_pickup_days = true\n")
    assert p.message_key == "config.problem.type"
    assert dict(p.params) == {"expected": "integer", "found": "boolean"}
    assert p.line == 6


@pytest.mark.parametrize(("value", "cents"), [
    ("0", 0), ("10000", 1_000_000), ("5.5", 550), ("19.99", 1999), ("0.1", 10), ("3", 300),
])
def test_money_in_yuan_becomes_cents(tmp_path: Path, value: str, cents: int) -> None:
    path = write(tmp_path, DEVICE + f"[circulation]\nmax_fines = {value}\n")
    assert config.load(path).circulation.max_fines_cents == cents


@pytest.mark.parametrize(("value", "message_key", "params"), [
    ("10.005", "config.problem.decimals", {"value": "10.005", "places": 2}),
    ("-1", "config.problem.too_small", {"value": "-1", "min": "0"}),
    ("10000.01", "config.problem.too_large", {"value": "10000.01", "max": "10000"}),
    ("nan", "config.problem.not_finite", {"value": "nan"}),
    ("inf", "config.problem.not_finite", {"value": "inf"}),
    ('"10.00"', "config.problem.type", {"expected": "number", "found": "string"}),
    ("false", "config.problem.type", {"expected": "number", "found": "boolean"}),
])
def test_money_problems(tmp_path: Path, value: str, message_key: str, params: dict) -> None:
    p = only(tmp_path, DEVICE + f"[circulation]\nmax_fines = {value}\n")
    assert (p.key, p.message_key, dict(p.params)) == ("circulation.max_fines", message_key, params)


@pytest.mark.parametrize(("key", "value"), [
    ("id", "Van-01"), ("id", "-van"), ("id", "v"), ("id", "a" * 33), ("id", "van_01"),
    ("branch", "cn-431121"), ("branch", "CN431121"), ("branch", "CN-431121-00022"),
    ("branch", "CNXYZ-1"),
])
def test_string_patterns(tmp_path: Path, key: str, value: str) -> None:
    text = DEVICE.replace(f'{key} = "', f'{key} = "{value}" # "', 1)
    p = only(tmp_path, text)
    assert (p.key, p.message_key, p.params["value"]) == (
        f"device.{key}", "config.problem.pattern", value)
    assert p.params["example"]


@pytest.mark.parametrize("branch", ["CN-431121-0002", "US-DLC", "DE-Tue120", "CN-A:B/C-9"])
def test_valid_isil_codes(tmp_path: Path, branch: str) -> None:
    path = write(tmp_path, DEVICE.replace("CN-431121-0003", branch))
    assert config.load(path).device.branch == branch


def test_choice_near_miss_suggests_the_choice(tmp_path: Path) -> None:
    p = only(tmp_path, DEVICE + '[circulation]\non_loan_to_other_desk = "return_then_lend"\n')
    assert p.message_key == "config.problem.choice_suggest"
    assert p.params["suggestion"] == "return-then-lend"
    assert p.params["choices"] == ["refuse", "return-then-lend"]


def test_choice_cut_short_suggests_the_only_completion(tmp_path: Path) -> None:
    p = only(tmp_path, DEVICE + '[circulation.offline]\nunknown_item = "lend"\n')
    assert p.params["suggestion"] == "lend-and-flag"


def test_choice_far_miss_lists_choices_without_suggestion(tmp_path: Path) -> None:
    p = only(tmp_path, DEVICE + '[circulation]\nonline_unknown_item = "whatever"\n')
    assert p.message_key == "config.problem.choice"
    assert "suggestion" not in p.params
    assert p.params["choices"] == ["lend-and-flag", "refuse"]


@pytest.mark.parametrize(("zone", "suggestion"), [
    ("Asia/Shanghia", "Asia/Shanghai"), ("asia/shanghai", "Asia/Shanghai"),
    ("Mars/Olympus_Mons", None), ("", None),
])
def test_timezone_must_exist(tmp_path: Path, zone: str, suggestion: str | None) -> None:
    p = only(tmp_path, DEVICE + f'timezone = "{zone}"\n')
    assert (p.line, p.key) == (5, "device.timezone")
    assert p.message_key.startswith("config.problem.timezone")
    assert p.params.get("suggestion") == suggestion


@pytest.mark.parametrize("zone", ["Asia", "../etc/passwd", "/etc/localtime"])
def test_timezone_that_zoneinfo_rejects_otherwise_is_a_problem(tmp_path: Path, zone: str) -> None:
    # zoneinfo raises IsADirectoryError or ValueError for these, not "not found"; and a
    # region alone is not "close" to one of its hundred zones.
    p = only(tmp_path, DEVICE + f'timezone = "{zone}"\n')
    assert (p.message_key, dict(p.params)) == ("config.problem.timezone", {"value": zone})


def test_language_must_be_in_the_catalogue(tmp_path: Path) -> None:
    p = only(tmp_path, DEVICE + 'language = "fr"\n')
    assert (p.message_key, p.params["choices"]) == ("config.problem.language", ["en", "zh-CN"])
    p = only(tmp_path, DEVICE + 'language = "zh-cn"\n')
    assert p.params["suggestion"] == "zh-CN"


def test_relative_path_is_taken_from_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = write(folder, DEVICE + '[database]\npath = "data/kiosk.db"\n')
    assert config.load(path).database.path == folder / "data" / "kiosk.db"


def test_empty_path_is_refused(tmp_path: Path) -> None:
    p = only(tmp_path, DEVICE + '[database]\npath = " "\n')
    assert (p.key, p.message_key, p.line) == ("database.path", "config.problem.empty", 6)


# --- structure: unknown, missing, wrong shape ------------------------------------------------


def test_unknown_key_suggests_the_closest_key(tmp_path: Path) -> None:
    p = only(tmp_path, DEVICE + 'timezon = "Asia/Shanghai"\n')
    assert (p.line, p.key, p.message_key) == (
        5, "device.timezon", "config.problem.unknown_key_suggest")
    assert p.params == {"suggestion": "timezone"}


def test_unknown_key_in_the_wrong_table_suggests_its_place(tmp_path: Path) -> None:
    p = only(tmp_path, DEVICE + "[circulation]\nmax_loans_per_patron = 3\n")
    assert p.params == {"suggestion": "circulation.offline.max_loans_per_patron"}


def test_unknown_key_without_a_near_name(tmp_path: Path) -> None:
    p = only(tmp_path, DEVICE + "colour = 3\n")
    assert (p.message_key, dict(p.params)) == ("config.problem.unknown_key", {})


def test_unknown_section_suggests_the_closest_section(tmp_path: Path) -> None:
    assert found(tmp_path, DEVICE + "\n[circulaton]\nmax_fines = 1\n[zzz]\nx = 1\n") == [
        (6, "circulaton", "config.problem.unknown_section_suggest"),
        (8, "zzz", "config.problem.unknown_section"),
    ]
    assert config.check(tmp_path / "kiosk.toml")[0].params == {"suggestion": "circulation"}


def test_unknown_subsection_and_array_of_tables(tmp_path: Path) -> None:
    problems = found(tmp_path, DEVICE + "[circulation.ofline]\nx = 1\n[[lamps]]\nport = 1\n")
    assert problems == [
        (5, "circulation.ofline", "config.problem.unknown_section_suggest"),
        (7, "lamps", "config.problem.unknown_section"),
    ]


def test_missing_required_keys_point_at_their_section(tmp_path: Path) -> None:
    assert found(tmp_path, "# kiosk\n\n[device]\nprofile = \"van\"\n") == [
        (3, "device.branch", "config.problem.missing"),
        (3, "device.id", "config.problem.missing"),
    ]


def test_missing_section_has_no_line(tmp_path: Path) -> None:
    problems = found(tmp_path, "[circulation]\nhold_pickup_days = 3\n")
    assert problems == [
        (None, "device.branch", "config.problem.missing"),
        (None, "device.id", "config.problem.missing"),
        (None, "device.profile", "config.problem.missing"),
    ]


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    p = only(tmp_path, "circulation = 3\n" + DEVICE)
    assert (p.line, p.key, p.message_key, dict(p.params)) == (
        1, "circulation", "config.problem.type", {"expected": "table", "found": "integer"})


def test_array_of_tables_where_a_table_belongs(tmp_path: Path) -> None:
    text = DEVICE.replace("[device]", "[[device]]") + "[[device]]\nid = 'x2'\n"
    p = only(tmp_path, text)
    assert (p.line, p.key, dict(p.params)) == (1, "device", {"expected": "table", "found": "array"})


def test_table_where_a_value_belongs(tmp_path: Path) -> None:
    p = only(tmp_path, DEVICE + "[circulation.hold_pickup_days]\nx = 1\n")
    assert (p.line, dict(p.params)) == (5, {"expected": "integer", "found": "table"})


def test_inline_table_problems_get_the_line_of_the_table_key(tmp_path: Path) -> None:
    assert found(tmp_path, DEVICE + "[circulation]\n"
                 'offline = { unknown_item = "refus", max_loans = 3 }\n') == [
        (6, "circulation.offline.max_loans", "config.problem.unknown_key_suggest"),
        (6, "circulation.offline.unknown_item", "config.problem.choice_suggest"),
    ]


def test_every_problem_at_once_with_exact_lines(tmp_path: Path) -> None:
    text = """\
        # County library, van 2
        [device]
        id = "Van 2"
        branch = "CN-431121-0003"
        profile = "vann"
        langauge = "en"

        [database]
        path = "kiosk.db"

        [circulation]
        max_fines = 10.005
        unknown_item_loan_days = 0
        hold_pickup_days = true
        notes = '''
        max_fines = "inside a string"
        '''

        [circulation.offline]
        max_loans_per_patron = 101
        """
    assert found(tmp_path, text) == [
        (3, "device.id", "config.problem.pattern"),
        (5, "device.profile", "config.problem.choice_suggest"),
        (6, "device.langauge", "config.problem.unknown_key_suggest"),
        (12, "circulation.max_fines", "config.problem.decimals"),
        (13, "circulation.unknown_item_loan_days", "config.problem.too_small"),
        (14, "circulation.hold_pickup_days", "config.problem.type"),
        (15, "circulation.notes", "config.problem.unknown_key"),
        (20, "circulation.offline.max_loans_per_patron", "config.problem.too_large"),
    ]


# --- reading the file -----------------------------------------------------------------------


def test_syntax_error_is_the_only_problem_with_its_line(tmp_path: Path) -> None:
    p = only(tmp_path, DEVICE + "[circulation]\nhold_pickup_days = = 3\nbad key\n")
    assert (p.line, p.key, p.message_key) == (6, "", "config.problem.syntax")
    assert p.params["column"] == 20
    assert "(at line" not in p.params["detail"]


def test_syntax_error_at_end_of_document(tmp_path: Path) -> None:
    p = only(tmp_path, DEVICE + 'timezone = "Asia/Shanghai\n\n')
    assert (p.line, p.message_key) == (5, "config.problem.syntax")


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    problems = config.check(tmp_path / "nope.toml")
    assert problems == [Problem(str(tmp_path / "nope.toml"), None, "", "config.problem.no_file")]
    assert len({*problems, *config.check(tmp_path / "nope.toml")}) == 1  # hashable


def test_folder_is_unreadable(tmp_path: Path) -> None:
    (p,) = config.check(tmp_path)
    assert p.message_key == "config.problem.unreadable" and p.params["reason"]


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "gbk.toml"
    path.write_bytes(DEVICE.encode() + '# 县图书馆\n'.encode("gbk"))
    (p,) = config.check(path)
    assert (p.line, p.message_key) == (5, "config.problem.encoding")


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + DEVICE.encode())
    assert config.load(path).device.id == "van-01"


# --- load, profiles, Settings -------------------------------------------------------------


def test_load_none_is_the_sim_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    settings = config.load(None)
    assert settings == Settings()
    assert settings.device.profile == "sim"
    assert settings.database.path == tmp_path / "library-kiosk" / "kiosk.db"


def test_profile_chooses_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    van = config.load(write(tmp_path, DEVICE))
    assert van.database.path == Path("/var/lib/library-kiosk/kiosk.db")
    assert van.source == tmp_path / "kiosk.toml"
    sim = config.load(write(tmp_path, DEVICE.replace('"van"', '"sim"'), "sim.toml"))
    assert sim.database.path == tmp_path / "state" / "library-kiosk" / "kiosk.db"


def test_profile_defaults_table_wins_over_key_default(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    schema = sections.SCHEMA
    patched = type(schema)(schema.sections, schema.profile_key,
                           {"van": {"circulation.hold_pickup_days": 3}}, schema.fallback_profile)
    monkeypatch.setattr(sections, "SCHEMA", patched)
    assert config.load(write(tmp_path, DEVICE)).circulation.hold_pickup_days == 3


def test_load_raises_config_invalid_with_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE + "timezon = 1\n[circulation]\nhold_pickup_days = 0\n")
    with pytest.raises(ConfigInvalid) as caught:
        config.load(path)
    assert isinstance(caught.value, ValueError)
    assert [(p.line, p.key) for p in caught.value.problems] == [
        (5, "device.timezon"), (7, "circulation.hold_pickup_days")]
    assert caught.value.params == {"file": str(path), "count": 2}
    report = caught.value.report(Catalogue("en").text)
    assert report[0] == f"The config file {path} has 2 problem(s) and cannot be used:"
    assert report[2] == f"{path}:7: circulation.hold_pickup_days: 0 is below the minimum 1"
    assert "did you mean timezone?" in str(caught.value)


def test_missing_file_raises_config_invalid(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        config.load(tmp_path / "nope.toml")
    assert caught.value.problems[0].message_key == "config.problem.no_file"


def _docs_example() -> str:
    match = re.search(r"<!-- example: full -->\s*```toml\n(.*?)```", DOCS.read_text("utf-8"),
                      re.S)
    assert match, "docs/configuration.md lost its full example"
    return match.group(1)


def test_docs_example_loads_to_the_expected_settings(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, _docs_example()))
    assert (settings.device.id, settings.device.branch, settings.device.profile) == (
        "van-01", "CN-431121-0003", "van")
    assert settings.database.path == Path("/var/lib/library-kiosk/kiosk.db")
    assert settings.policy() == Policy(
        max_fines_cents=550,
        on_loan_to_other_kiosk=OnLoanToOther.REFUSE,
        on_loan_to_other_desk=OnLoanToOther.RETURN_THEN_LEND,
        online_unknown_item=UnknownItem.LEND_AND_FLAG,
        unknown_item_loan_days=21,
        hold_pickup_days=10,
        offline=OfflineLimits(max_loans_per_patron=5, unknown_item=UnknownItem.LEND_AND_FLAG),
    )
    assert str(settings.identity().timezone) == "Asia/Shanghai"
    assert settings.hub == HubSettings(
        url="https://hub.example-county.cn/api/v1",
        token_file=Path("/etc/library-kiosk/hub-token"),
        ca_file=Path("/etc/library-kiosk/county-ca.pem"))


def test_docs_describe_every_key() -> None:
    doc = DOCS.read_text("utf-8")
    for section in sections.SCHEMA.sections:
        assert f"### `[{section.name}]`" in doc
        for key in section.keys:
            assert f"| `{section.name}.{key.name}` |" in doc, key.name
    example = _docs_example()
    for section in sections.SCHEMA.sections:
        for key in section.keys:
            assert re.search(rf"^{key.name} = ", example, re.M), key.name


# --- messages -------------------------------------------------------------------------------


def _config_texts(language: str) -> dict[str, str]:
    return {k: v for k, v in texts(language).items() if k.startswith("config.")}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    zh, en = _config_texts("zh-CN"), _config_texts("en")
    assert zh.keys() == en.keys()
    for key in zh:
        assert placeholders(zh[key]) == placeholders(en[key]), key


BAD_FILES = [
    DEVICE.replace("van-01", "X") + 'language = "fr"\nlanguag = 1\ntimezone = "Asia/Shanghia"\n'
    "[database]\npath = ''\n[circulation]\nmax_fines = nan\non_loan_to_other_kiosk = 'x'\n"
    "online_unknown_item = 'Refuse'\nunknown_item_loan_days = 0\nhold_pickup_days = 61\n"
    "zzz = 1\n[circulaton]\n[zzzz]\n[circulation.offline]\nmax_loans_per_patron = 1.5\n",
    DEVICE + "timezone = 'Mars/Base'\nlanguage = 'zh-cn'\n[circulation]\nmax_fines = 1.001\n",
    "[device]\nid = 1\n",
    "x = = 1\n",
    DEVICE + '[sip2]\nenabled = true\nlogin_user = "k1"\n',
    DEVICE + '[desk]\nstops = ["石门村", "柳树湾", "石门村"]\n',
    DEVICE + '[desk]\nlaptop_listen = "192.168.50.1"\n',
    DEVICE + "[card_reader]\ncard_block = 7\n[security]\nafi_on_shelf = 0x07\nafi_on_loan = 7\n",
    '[device]\nid = "space-01"\nbranch = "CN-431121-0002"\nprofile = "24h-space"\n'
    "[lockers]\nlatch_pins = [9, 17]\nsensor_pins = [5, 6]\n[door]\nlatch_pin = 17\n"
    "[card_reader]\nreset_pin = 5\n",
    '[device]\nid = "space-02"\nbranch = "CN-431121-0002"\nprofile = "24h-space"\n'
    "[lockers]\nlatch_pins = [17, 27]\nsensor_pins = [5, 5]\n",
    '[device]\nid = "space-03"\nbranch = "CN-431121-0002"\nprofile = "24h-space"\n'
    '[door]\nenabled = false\n[entrance_reader]\nspi = "0.0"\n',
]


def test_every_problem_message_renders_in_both_languages(tmp_path: Path) -> None:
    problems = [p for i, text in enumerate(BAD_FILES)
                for p in config.check(write(tmp_path, text, f"bad{i}.toml"))]
    problems += config.check(tmp_path / "missing.toml") + config.check(tmp_path)
    bad = tmp_path / "gbk.toml"
    bad.write_bytes("# 县\n".encode("gbk"))
    problems += config.check(bad)
    used = {p.message_key for p in problems}
    declared = {k for k in _config_texts("zh-CN") if k.startswith("config.problem.")}
    assert used == declared
    for language in ("zh-CN", "en"):
        t = Catalogue(language).text
        for problem in problems:
            text = config.describe(problem, t)
            assert not re.search(r"\{\w+\}", text), (language, text)
            assert "config." not in text, (language, text)


# --- kiosk config check --------------------------------------------------------------------


def test_check_clean_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE)
    code, out, _ = run(capsys, "config", "check", str(path))
    assert code == exitcodes.OK
    assert out == f"{path}: config is valid\n"


def test_check_lists_problems_by_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE + "[circulation]\nhold_pickup_days = 0\n"
                 "[device.extra]\n")
    code, out, _ = run(capsys, "config", "check", str(path))
    assert code == exitcodes.REFUSED
    assert out.splitlines() == [
        f"{path}:6: circulation.hold_pickup_days: 0 is below the minimum 1",
        f"{path}:7: device.extra: unknown table",
        "problems found: 2",
    ]


def test_check_in_chinese(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE + "timezon = 1\n")
    code, out, _ = run(capsys, "--lang", "zh-CN", "config", "check", str(path))
    assert code == exitcodes.REFUSED
    assert out.splitlines() == [
        f"{path}:5: device.timezon: 未知的键；您是不是想写 timezone？", "共 1 个问题"]


@pytest.mark.parametrize("content", [None, "a = = 1\n"])
def test_check_missing_or_broken_file_exits_1(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "kiosk.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, out, _ = run(capsys, "config", "check", str(path))
    assert code == exitcodes.REFUSED
    assert out.splitlines()[-1] == "problems found: 1"


def test_check_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE + 'language = "zh-cn"\n')
    code, out, _ = run(capsys, "config", "check", str(path), "--json")
    assert code == exitcodes.REFUSED
    assert json.loads(out) == {
        "file": str(path),
        "ok": False,
        "problems": [{
            "line": 5, "key": "device.language",
            "message_key": "config.problem.language_suggest",
            "params": {"value": "zh-cn", "choices": ["en", "zh-CN"], "suggestion": "zh-CN"},
            "message": 'no user interface language "zh-cn"; did you mean "zh-CN"? '
                       "Choices: en, zh-CN",
        }],
    }
    code, out, _ = run(capsys, "config", "check", str(write(tmp_path, DEVICE)), "--json")
    assert (code, json.loads(out)["ok"], json.loads(out)["problems"]) == (0, True, [])


def test_help_texts_come_from_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, key in ((["config"], "config.help.group"), (["config", "check"], "config.help.file"),
                      (["config", "show"], "config.example.show")):
        with pytest.raises(SystemExit) as done:
            main(["--lang", "en", *argv, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert Catalogue("en").text(key).splitlines()[0] in out
        assert "config.help" not in out


# --- kiosk config show ---------------------------------------------------------------------


def test_show_defaults(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                       tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    code, out, _ = run(capsys, "config", "show")
    assert code == exitcodes.OK
    lines = out.splitlines()
    assert lines[0] == "# no config file given: these are the defaults of the sim profile"
    assert 'id = "sim-01"  # default' in lines
    assert f'path = "{tmp_path}/library-kiosk/kiosk.db"  # default' in lines
    assert "max_fines = 10.00  # default" in lines
    assert lines.index("[circulation.offline]") > lines.index("[circulation]")


def test_show_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE + "[circulation]\nmax_fines = 5\n")
    code, out, _ = run(capsys, "--config", str(path), "config", "show")
    assert code == exitcodes.OK
    lines = out.splitlines()
    assert lines[0] == f"# config file: {path}"
    assert 'profile = "van"' in lines and "max_fines = 5.00" in lines
    assert 'path = "/var/lib/library-kiosk/kiosk.db"  # default' in lines


def test_show_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE + "[circulation.offline]\nunknown_item = 'refuse'\n")
    code, out, _ = run(capsys, "--config", str(path), "config", "show", "--json")
    data = json.loads(out)
    assert code == exitcodes.OK
    assert data["profile"] == "van"
    assert data["settings"]["circulation"]["offline"]["unknown_item"] == "refuse"
    assert data["settings"]["circulation"]["max_fines"] == "10.00"
    assert "circulation.offline.unknown_item" not in data["defaults"]
    assert "circulation.max_fines" in data["defaults"]


def test_show_invalid_config_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE + "[circulation]\nhold_pickup_days = 0\n")
    code, out, err = run(capsys, "--config", str(path), "config", "show")
    assert (code, out) == (exitcodes.CONFIG, "")
    assert err.splitlines() == [
        f"The config file {path} has 1 problem(s) and cannot be used:",
        f"{path}:6: circulation.hold_pickup_days: 0 is below the minimum 1",
    ]


def test_is_secret_by_name_or_flag() -> None:
    for name in ("api_token", "password", "hub-secret", "private_key", "apikey", "Key"):
        assert is_secret(Key(name, Str(), "")), name
    for name in ("keyboard", "monkey", "hold_pickup_days", "unknown_item", "id"):
        assert not is_secret(Key(name, Str(), "")), name
    assert is_secret(Key("url", Str(), "", secret=True))


def test_show_masks_secrets(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                            tmp_path: Path) -> None:
    vault = Section("vault", (
        Key("url", Str(), "https://hub.example"),
        Key("api_token", Str()),
        Key("password", Str(), "default-password"),
        Key("login", Str(), "kiosk", secret=True),
    ))
    monkeypatch.setattr(sections, "SCHEMA", sections.SCHEMA.with_section(vault))
    path = write(tmp_path, DEVICE + '[vault]\napi_token = "s3cr3t-t0ken"\n')
    code, out, _ = run(capsys, "--config", str(path), "config", "show")
    assert code == exitcodes.OK
    assert "s3cr3t" not in out and "default-password" not in out and "kiosk\"" not in out
    assert f'api_token = "{MASK}"' in out.splitlines()
    assert 'url = "https://hub.example"  # default' in out.splitlines()
    code, out, _ = run(capsys, "--config", str(path), "config", "show", "--json")
    assert json.loads(out)["settings"]["vault"] == {
        "url": "https://hub.example", "api_token": MASK, "password": MASK, "login": MASK}
    # The section is checked like any other: a missing required secret is reported.
    bad = write(tmp_path, DEVICE + "[vault]\n", "bad.toml")
    assert [(p.line, p.key) for p in config.check(bad)] == [(5, "vault.api_token")]


def test_required_key_of_an_absent_subsection(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    schema = sections.SCHEMA.with_section(Section("circulation.desk", (Key("staff", Str()),)))
    monkeypatch.setattr(sections, "SCHEMA", schema)
    problems = found(tmp_path, DEVICE + "\n[circulation]\nhold_pickup_days = 3\n")
    # Reported at the enclosing table's line, since the subsection has none of its own.
    assert problems == [(6, "circulation.desk.staff", "config.problem.missing")]


def test_bool_type(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                   tmp_path: Path) -> None:
    printer = Section("printer", (Key("enabled", Bool(), True), Key("cut", Bool(), True)))
    monkeypatch.setattr(sections, "SCHEMA", sections.SCHEMA.with_section(printer))
    p = only(tmp_path, DEVICE + "[printer]\nenabled = 1\n")
    assert (p.line, p.key, dict(p.params)) == (
        6, "printer.enabled", {"expected": "boolean", "found": "integer"})
    path = write(tmp_path, DEVICE + "[printer]\nenabled = false\n", "ok.toml")
    code, out, _ = run(capsys, "--config", str(path), "config", "show")
    assert code == exitcodes.OK
    assert "enabled = false" in out.splitlines() and "cut = true  # default" in out.splitlines()


# --- devices ------------------------------------------------------------------------------


def test_device_defaults_follow_the_profile(tmp_path: Path) -> None:
    van = config.load(write(tmp_path, DEVICE)).hardware
    assert van.tag_reader.url == "/dev/kiosk-tag-reader" and van.card_reader.spi == "0.0"
    assert van.gpio.factory == "lgpio"
    sim = config.load(None).hardware
    assert sim.tag_reader.simulated and sim.card_reader.simulated and sim.gpio.factory == "mock"


def test_device_keys_are_checked_across_keys_with_lines(tmp_path: Path) -> None:
    text = DEVICE + ("[tag_reader]\nurl = 'COM3'\nparity = 'even'\n"
                     "[card_reader]\ncard_block = 3\nkey = 'FFFF'\n"
                     "[security]\nafi_on_shelf = 0xC2\nafi_on_loan = 0xC2\n")
    got = found(tmp_path, text)
    assert [(line, key) for line, key, _ in got] == [
        (6, "tag_reader.url"), (7, "tag_reader.parity"), (9, "card_reader.card_block"),
        (10, "card_reader.key"), (13, "security.afi_on_loan")]
    assert [m for _, _, m in got][2::2] == ["config.problem.card_block",
                                           "config.problem.afi_same"]


def test_afi_written_in_hex_and_card_key_masked(capsys, tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE + "[security]\nafi_on_loan = 0xC3\n"
                 "[card_reader]\nkey = 'A0A1A2A3A4A5'\n")
    assert config.load(path).hardware.security.afi_on_loan == 0xC3
    code, out, _ = run(capsys, "--config", str(path), "config", "show")
    assert code == 0 and "A0A1A2A3A4A5" not in out and "key = " in out


# --- the hub ------------------------------------------------------------------------------


def test_no_hub_by_default() -> None:
    hub = config.load(None).hub
    assert hub == HubSettings() and not hub.enabled and hub.token_file is None


def test_hub_section_loads(tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE + textwrap.dedent("""\
        [hub]
        url = "https://hub.example-county.cn/api/v1"
        token_file = "secrets/hub-token"
        ca_file = "/etc/library-kiosk/ca.pem"
        batch_size = 200
        read_timeout_ms = 1500
        """))
    hub = config.load(path).hub
    assert hub.enabled and hub.url == "https://hub.example-county.cn/api/v1"
    assert hub.token_file == tmp_path / "secrets" / "hub-token"
    assert hub.ca_file == Path("/etc/library-kiosk/ca.pem") and hub.client_cert is None
    assert (hub.batch_size, hub.read_timeout_ms, hub.page_size) == (200, 1500, 1000)


@pytest.mark.parametrize("url", [
    "https://hub.example-county.cn/api/v1", "https://10.0.0.5:8443/api/v1",
    "http://127.0.0.1:8470/api/v1", "http://localhost:8470", "",
])
def test_hub_urls_accepted(tmp_path: Path, url: str) -> None:
    token = "" if not url else 'token_file = "t"\n'
    path = write(tmp_path, DEVICE + f'[hub]\nurl = "{url}"\n{token}')
    assert config.load(path).hub.url == url


@pytest.mark.parametrize("url", [
    "http://hub.example-county.cn/api/v1", "http://10.0.0.5/api/v1", "ftp://hub", "hub",
    "https://",
])
def test_plain_http_to_a_network_host_is_refused(tmp_path: Path, url: str) -> None:
    p = only(tmp_path, DEVICE + f'[hub]\nurl = "{url}"\ntoken_file = "t"\n')
    assert (p.line, p.key, p.message_key) == (6, "hub.url", "config.problem.pattern")


def test_hub_cross_checks(tmp_path: Path) -> None:
    assert found(tmp_path, DEVICE + '[hub]\nurl = "https://h.example/api/v1"\n'
                 'client_key = "k.pem"\n') == [
        # Not in the file: reported at its table's line.
        (5, "hub.token_file", "sync.config.token_file_missing"),
        (7, "hub.client_key", "sync.config.key_without_cert"),
    ]
    text = Catalogue("en").text("sync.config.token_file_missing")
    assert "token_file" in text


def test_hub_bounds(tmp_path: Path) -> None:
    assert found(tmp_path, DEVICE + "[hub]\nbatch_size = 0\nread_timeout_ms = 50\n"
                 "probe_interval_s = true\n") == [
        (6, "hub.batch_size", "config.problem.too_small"),
        (7, "hub.read_timeout_ms", "config.problem.too_small"),
        (8, "hub.probe_interval_s", "config.problem.type"),
    ]


def test_hub_secrets_masked_in_show(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE + '[hub]\nurl = "https://h.example/api/v1"\n'
                 'token_file = "/etc/kiosk/secret-token-path"\nclient_cert = "c.pem"\n'
                 'client_key = "/etc/kiosk/device-key.pem"\n')
    code, out, _ = run(capsys, "--config", str(path), "config", "show")
    assert code == exitcodes.OK
    assert "secret-token-path" not in out and "device-key.pem" not in out
    assert f'token_file = "{MASK}"' in out.splitlines()
    assert 'url = "https://h.example/api/v1"' in out.splitlines()
    code, out, _ = run(capsys, "--config", str(path), "config", "show", "--json")
    hub = json.loads(out)["settings"]["hub"]
    assert hub["client_key"] == MASK and hub["client_cert"] == str(tmp_path / "c.pem")


def test_locker_and_door_pins_are_checked_across_sections(tmp_path: Path) -> None:
    text = ('[device]\nid = "space-01"\nbranch = "CN-431121-0002"\nprofile = "24h-space"\n'
            "[lockers]\nlatch_pins = [17, 27]\nsensor_pins = [5, 6]\npulse_ms = 900\n"
            "open_timeout_ms = 800\n"
            "[door]\nlatch_pin = 27\nsensor_pin = 10\n")
    got = found(tmp_path, text)
    assert [(line, key, m) for line, key, m in got] == [
        (9, "lockers.open_timeout_ms", "config.problem.hardware"),
        (11, "door.latch_pin", "config.problem.pin_twice"),
        (12, "door.sensor_pin", "config.problem.spi_pin"),
    ]


def test_a_van_has_a_printer_but_no_lockers_or_door(tmp_path: Path) -> None:
    hardware = config.load(write(tmp_path, DEVICE)).hardware
    assert hardware.lockers is None and hardware.door is None
    assert hardware.printer.url == "/dev/kiosk-printer"
    sim = config.load(None).hardware
    assert sim.lockers.simulated and sim.door.simulated and sim.printer.url == "sim"


def test_the_entrance_reader_follows_the_profile(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, DEVICE)).hardware.entrance_reader is None
    space = config.load(write(tmp_path, DEVICE.replace('"van"', '"24h-space"'), "s.toml"))
    reader = space.hardware.entrance_reader
    assert (reader.spi, reader.reset_pin, reader.simulated) == ("0.1", 4, False)
    assert space.hardware.card_reader.spi == "0.0"
    sim = config.load(None).hardware.entrance_reader
    assert sim.simulated and sim.reset_pin != config.load(None).hardware.card_reader.reset_pin


def test_the_entrance_reader_needs_a_door_its_own_spi_device_and_reset_pin(
        tmp_path: Path) -> None:
    text = ('[device]\nid = "space-01"\nbranch = "CN-431121-0002"\nprofile = "24h-space"\n'
            "[door]\nenabled = false\n"
            '[entrance_reader]\nspi = "0.0"\nreset_pin = 25\ncard_block = 7\n')
    assert found(tmp_path, text) == [
        (7, "entrance_reader.enabled", "config.problem.entrance_without_door"),
        (8, "entrance_reader.spi", "config.problem.spi_twice"),
        (9, "entrance_reader.reset_pin", "config.problem.pin_twice"),
        (10, "entrance_reader.card_block", "config.problem.card_block"),
    ]
    # A van (no entrance reader) may leave its door disabled; so may a space without one.
    off = text.replace("[entrance_reader]\n", "[entrance_reader]\nenabled = false\n")
    off = off.replace("card_block = 7\n", "")
    assert found(tmp_path, off) == []


def test_a_stop_listed_twice_is_named(tmp_path: Path) -> None:
    problems = config.check(write(tmp_path, DEVICE + '[desk]\nstops = ["石门村", "石门村"]\n'))
    assert [(p.key, p.message_key, p.params) for p in problems] == [
        ("desk.stops", "config.problem.duplicate", {"value": "石门村"})]
    settings = config.load(write(tmp_path, DEVICE + '[desk]\nstops = [" 柳树湾 "]\n',
                                 "ok.toml"))
    assert settings.desk.stops == ("柳树湾",)


# --- [sip2] -----------------------------------------------------------------------------------


def test_docs_example_sip2_section(tmp_path: Path) -> None:
    sip2 = config.load(write(tmp_path, _docs_example())).sip2
    assert (sip2.enabled, sip2.host, sip2.port, sip2.tls, sip2.profile) == (
        False, "ils.example-county.cn", 6001, True, "koha")
    assert (sip2.charset, sip2.terminator_bytes, sip2.institution_id) == (
        "gb18030", b"\r", "CN-431121")
    assert sip2.password_file == Path("/etc/library-kiosk/sip2-password")


def test_sip2_cross_checks(tmp_path: Path) -> None:
    # Keys not in the file are reported at their table's line.
    assert found(tmp_path, DEVICE + '[sip2]\nenabled = true\nlogin_user = "k1"\n') == [
        (5, "sip2.host", "config.problem.sip2_required"),
        (5, "sip2.institution_id", "config.problem.sip2_required"),
        (5, "sip2.password_file", "config.problem.sip2_password_file"),
    ]
    assert found(tmp_path, DEVICE + '[sip2]\nenabled = true\nhost = "h"\n'
                 'institution_id = "A"\ncharset = "latin1"\n') == [
        (9, "sip2.charset", "config.problem.choice")]
    # Off, nothing is required.
    assert found(tmp_path, DEVICE + "[sip2]\nenabled = false\n") == []


def test_sip2_password_file_masked_in_show(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    path = write(tmp_path, DEVICE + '[sip2]\nenabled = true\nhost = "127.0.0.1"\n'
                 'institution_id = "CN-1"\nlogin_user = "k1"\n'
                 'password_file = "/etc/kiosk/sip2-pass-path"\n')
    code, out, _ = run(capsys, "--config", str(path), "config", "show")
    assert code == exitcodes.OK
    assert "sip2-pass-path" not in out and f'password_file = "{MASK}"' in out.splitlines()
    assert 'login_user = "k1"' in out.splitlines()
