"""The message catalogue: complete in every language, and every key the code uses exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from drivers import errors as driver_errors
from hardware import roles
from kiosk.messages import DEFAULT_LANGUAGE, Catalogue, available, choose_language, placeholders
from kiosk.messages import texts as catalogue_texts
from sync import errors
from sync.rules import Action, Flag, Reason, RouteKind

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = sorted(available())


def test_zh_cn_and_english_ship():
    assert {"zh-CN", "en"} <= set(LANGUAGES)
    assert DEFAULT_LANGUAGE == "zh-CN"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_every_key_with_the_same_placeholders(language):
    reference = catalogue_texts(DEFAULT_LANGUAGE)
    texts = catalogue_texts(language)
    assert sorted(set(reference) - set(texts)) == []
    assert sorted(set(texts) - set(reference)) == []
    for key, text in reference.items():
        assert placeholders(texts[key]) == placeholders(text), key
        assert texts[key].strip(), key


def _keys_used_in_code() -> set[str]:
    """Literal keys passed to t()/say()/warn() and message_key class attributes."""
    used: set[str] = set()
    paths = [p for package in ("kiosk", "sync", "hardware", "drivers")
             for p in ROOT.glob(f"{package}/**/*.py")]
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                first = node.args[0]
                if name in {"t", "say", "warn", "text"} and isinstance(first, ast.Constant) \
                        and isinstance(first.value, str):
                    used.add(first.value)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and any(
                    getattr(t, "id", "") == "message_key" for t in node.targets):
                used.add(node.value.value)
    return used


def test_every_literal_key_in_code_exists():
    known = set(catalogue_texts(DEFAULT_LANGUAGE))
    missing = sorted(k for k in _keys_used_in_code() if k not in known)
    assert missing == []


def test_every_dynamic_circulation_key_exists():
    known = set(catalogue_texts(DEFAULT_LANGUAGE))
    wanted = {f"circ.reason.{r}" for r in Reason if r is not Reason.OK}
    wanted |= {f"circ.{a}.ok" for a in Action}
    wanted |= {f"circ.flag.{f}" for f in Flag} | {f"circ.route.{k}" for k in RouteKind}
    wanted |= {"circ.offer.renew"}
    for module, root in ((errors, errors.CacheError), (driver_errors, driver_errors.DriverError),
                         (roles, roles.HardwareError)):
        wanted |= {cls.message_key for cls in vars(module).values()
                   if isinstance(cls, type) and issubclass(cls, root)}
    assert sorted(wanted - known) == []


def test_every_subcommand_help_and_example_key_exists():
    known = set(catalogue_texts(DEFAULT_LANGUAGE))
    source = "\n".join(p.read_text() for p in ROOT.glob("kiosk/commands/*.py"))
    prefixes = re.findall(r't\(f"(cli\.(?:help|example)\.[a-z_]*)\{', source)
    assert prefixes, "the pattern no longer matches the command modules"
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in known), prefix


@pytest.mark.parametrize("language", LANGUAGES)
def test_rendering_fills_every_placeholder(language):
    cat = Catalogue(language)
    for key, text in catalogue_texts(language).items():
        params = {name: "X" for name in placeholders(text)}
        assert "{" not in cat.text(key, **params), key


def test_missing_key_and_parameter_never_blank_the_screen():
    cat = Catalogue("en")
    assert cat.text("no.such.key") == "no.such.key"
    assert "{title}" in cat.text("circ.checkout.ok", due_date="2026-12-01")


def test_unknown_language_is_refused_clearly():
    with pytest.raises(ValueError, match="available"):
        Catalogue("xx")


@pytest.mark.parametrize(("explicit", "env", "expected"), [
    ("en", {"LANG": "zh_CN.UTF-8"}, "en"),
    (None, {"KIOSK_LANG": "en", "LANG": "zh_CN.UTF-8"}, "en"),
    (None, {"LANG": "en_GB.UTF-8"}, "en"),
    (None, {"LC_ALL": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, "zh-CN"),
    (None, {"LANG": "C.UTF-8"}, "zh-CN"),
    (None, {}, "zh-CN"),
    (None, {"LANG": "fr_FR.UTF-8"}, "zh-CN"),
])
def test_language_choice(explicit, env, expected):
    assert choose_language(explicit, env) == expected


def test_catalogue_texts_are_not_english_in_chinese():
    # zh-CN is the reference language: a text there with no CJK character is a
    # translation left undone (commands, paths and placeholders aside).
    cjk = re.compile(r"[\u3400-\u9fff]")
    untranslated = [k for k, v in catalogue_texts("zh-CN").items()
                    if not cjk.search(v) and not k.startswith("cli.example.")
                    and not k.endswith("list_separator") and v.strip("{} ") != ""]
    assert untranslated == []
