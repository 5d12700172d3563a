"""``kiosk tag decode|encode``: book tag data (ISO 28560-2/-3) by hand, for the technician.

``decode`` shows what a tag's user memory says, one data element a line; ``encode`` makes
the bytes for a new label and decodes them again, so what is printed is what a reader will
see. Invalid tag data exits with 1 (REFUSED) and a reason from the catalogue; wrong
arguments with 2.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from drivers.iso28560 import (
    ItemTag,
    TagDataError,
    decode,
    dsfid_for,
    encode,
)
from drivers.iso28560.compaction import SCHEME_NAMES
from drivers.iso28560.elements import NAMES, name_of, usage_class_name
from kiosk import exitcodes
from kiosk.app import App

_SCHEME_KEYS = {name: scheme.name.lower() for scheme, name in SCHEME_NAMES.items()}
_SEPARATORS = re.compile(r"[\s:]+")


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("tag", help=t("tag.help.tag"), description=t("tag.help.tag"))
    verbs = p.add_subparsers(dest="verb", metavar="ACTION", title=t("cli.commands"))
    verbs.required = True

    def add(name: str) -> argparse.ArgumentParser:
        q = verbs.add_parser(name, help=t(f"tag.help.{name}"), description=t(f"tag.help.{name}"),
                             epilog=t(f"tag.example.{name}"),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        q.add_argument("--json", action="store_true", help=t("cli.opt.json"))
        return q

    dec = add("decode")
    dec.add_argument("hex", nargs="+", metavar="HEX", help=t("tag.opt.hex"))
    dec.add_argument("--model", choices=("auto", "part2", "part3"), default="auto",
                     help=t("tag.opt.model"))
    dec.add_argument("--dsfid", metavar="HEX", help=t("tag.opt.dsfid"))
    dec.set_defaults(handler=_decode)

    enc = add("encode")
    enc.add_argument("--item", required=True, metavar="ID", help=t("tag.opt.item"))
    enc.add_argument("--owner", metavar="ISIL", help=t("tag.opt.owner"))
    enc.add_argument("--set", dest="set_info", metavar="N/M", help=t("tag.opt.set"))
    enc.add_argument("--usage", metavar="CODE", help=t("tag.opt.usage"))
    enc.add_argument("--model", choices=("part2", "part3"), default="part2",
                     help=t("tag.opt.model_encode"))
    enc.add_argument("--country", metavar="CC", help=t("tag.opt.country"))
    enc.add_argument("--shelf", metavar="TEXT", help=t("tag.opt.shelf"))
    enc.add_argument("--title", metavar="TEXT", help=t("tag.opt.title"))
    enc.add_argument("--block-size", type=_block_size(t), default=4, metavar="BYTES",
                     help=t("tag.opt.block_size"))
    enc.add_argument("--capacity", type=int, metavar="BYTES", help=t("tag.opt.capacity"))
    enc.set_defaults(handler=_encode)


def _block_size(t: Callable[..., str]) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or not 1 <= int(text) <= 32:
            raise argparse.ArgumentTypeError(t("tag.opt.block_size"))
        return int(text)
    return parse


def parse_hex(text: str) -> bytes:
    """Bytes from hex text with optional spaces, colons and a leading 0x; ValueError else."""
    cleaned = _SEPARATORS.sub("", text.strip())
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    if not cleaned or len(cleaned) % 2 or not re.fullmatch(r"[0-9A-Fa-f]+", cleaned):
        raise ValueError(text)
    return bytes.fromhex(cleaned)


def _hex_blocks(data: bytes, block_size: int) -> str:
    size = max(block_size, 1)
    return " ".join(data[i:i + size].hex().upper() for i in range(0, len(data), size))


def _report(app: App, exc: TagDataError) -> int:
    params: dict[str, Any] = dict(exc.params)
    oid = params.get("oid")
    if isinstance(oid, int) and oid in NAMES:
        params["field"] = app.t(f"tag.field.{NAMES[oid]}")
    elif isinstance(oid, int):
        params["field"] = app.t("tag.field.unknown", oid=oid)
    else:
        params["field"] = app.t("tag.field.none")
    if "scheme" in params:
        key = _SCHEME_KEYS.get(str(params["scheme"]))
        params["scheme"] = app.t(f"tag.scheme.{key}") if key else params["scheme"]
    text = app.t(exc.message_key, **params)
    if app.json:
        app.emit_json({"valid": False, "reason": exc.reason, "message": text,
                       "detail": str(exc)})
    else:
        app.warn(exc.message_key, **params)
    return exitcodes.REFUSED


def _usage_text(app: App, tag: ItemTag) -> str:
    assert tag.type_of_usage is not None
    name = app.t(f"tag.usage.{usage_class_name(tag.type_of_usage)}")
    code = f"{tag.type_of_usage:X}"
    if tag.model == "part2" and tag.usage_qualifier is not None:
        return app.t("tag.value.usage_sub", code=code, sub=f"{tag.usage_qualifier:X}",
                     name=name)
    return app.t("tag.value.usage", code=code, name=name)


def _show(value: object) -> str:
    return value.hex(" ").upper() if isinstance(value, bytes) else str(value)


def field_lines(app: App, tag: ItemTag) -> list[str]:
    """One "name: value" line per data element of ``tag``, names from the catalogue."""
    rows: list[tuple[str, object]] = [("primary_item_id", tag.primary_item_id)]
    if tag.owner_isil is not None:
        rows.append(("owner_institution", tag.owner_isil))
    if tag.country is not None:
        rows.append(("country", tag.country))
    if tag.set_part is not None and tag.set_parts is not None:
        rows.append(("set_information",
                     app.t("tag.value.set", part=tag.set_part, parts=tag.set_parts)))
    if tag.type_of_usage is not None:
        rows.append(("type_of_usage", _usage_text(app, tag)))
    if tag.shelf_location is not None:
        rows.append(("shelf_location", tag.shelf_location))
    if tag.title is not None:
        rows.append(("title", tag.title))
    lines = [f"{app.t(f'tag.field.{key}')}: {_show(value)}" for key, value in rows]
    for oid, value in sorted(tag.other.items()):
        label = (app.t(f"tag.field.{name_of(oid)}") if oid in NAMES
                 else app.t("tag.field.unknown", oid=oid))
        lines.append(f"{label}: {_show(value)}")
    if tag.version is not None:
        lines.append(f"{app.t('tag.field.version')}: {tag.version}")
    if tag.dsfid is not None:
        lines.append(f"{app.t('tag.field.dsfid')}: {tag.dsfid:02X}")
    return lines


def _decode(app: App) -> int:
    raw = " ".join(app.args.hex)
    try:
        data = parse_hex(raw)
    except ValueError:
        app.warn("tag.error.hex", value=raw)
        return exitcodes.USAGE
    dsfid = None
    if app.args.dsfid is not None:
        try:
            dsfid = int(app.args.dsfid, 16)
        except ValueError:
            dsfid = -1
        if not 0 <= dsfid <= 0xFF:
            app.warn("tag.error.dsfid", value=app.args.dsfid)
            return exitcodes.USAGE
    try:
        tag = decode(data, model=app.args.model, dsfid=dsfid)
    except TagDataError as exc:
        return _report(app, exc)
    detected = app.args.model == "auto"
    if app.json:
        app.emit_json({"valid": True, "model": tag.model, "detected": detected,
                       "size": len(data), "fields": tag.as_dict()})
        return exitcodes.OK
    key = "tag.decode.model_detected" if detected else "tag.decode.model"
    app.say(key, model=app.t(f"tag.model.{tag.model}"))
    for line in field_lines(app, tag):
        app.line(line)
    return exitcodes.OK


def _parse_set(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{1,3})\s*/\s*(\d{1,3})\s*", text)
    if not match:
        raise ValueError(text)
    part, parts = int(match[1]), int(match[2])
    if not 1 <= part <= parts:
        raise ValueError(text)
    return part, parts


def _parse_usage(text: str) -> tuple[int, int | None]:
    if not re.fullmatch(r"[0-9A-Fa-f]{1,2}", text):
        raise ValueError(text)
    if len(text) == 1:
        return int(text, 16), None
    return int(text[0], 16), int(text[1], 16)


def _encode(app: App) -> int:
    args = app.args
    part = parts = usage = qualifier = None
    if args.set_info is not None:
        try:
            part, parts = _parse_set(args.set_info)
        except ValueError:
            app.warn("tag.error.set", value=args.set_info)
            return exitcodes.USAGE
    if args.usage is not None:
        try:
            usage, qualifier = _parse_usage(args.usage)
        except ValueError:
            app.warn("tag.error.usage", value=args.usage)
            return exitcodes.USAGE
    tag = ItemTag(primary_item_id=args.item, model=args.model, owner_isil=args.owner,
                  set_part=part, set_parts=parts, type_of_usage=usage,
                  usage_qualifier=qualifier, country=args.country,
                  shelf_location=args.shelf, title=args.title, dsfid=dsfid_for(args.model))
    try:
        data = encode(tag, block_size=args.block_size, capacity=args.capacity)
        written = decode(data, model=args.model, dsfid=tag.dsfid)
    except TagDataError as exc:
        return _report(app, exc)
    if app.json:
        app.emit_json({"model": args.model, "dsfid": f"0x{tag.dsfid:02X}",
                       "hex": data.hex().upper(), "bytes": list(data), "size": len(data),
                       "fields": written.as_dict()})
        return exitcodes.OK
    app.say("tag.encode.hex", size=len(data), dsfid=f"{tag.dsfid:02X}",
            hex=_hex_blocks(data, args.block_size))
    app.say("tag.decode.model", model=app.t(f"tag.model.{args.model}"))
    for line in field_lines(app, written):
        app.line(line)
    return exitcodes.OK
