"""Identity documents a reader registers with: which types there are and what a valid number
of each looks like. Pure functions, no database, no keys.

The mainland resident identity card (居民身份证, GB 11643-1999) is checked in full: 18
characters, a province-level region code, a birth date that exists, is not in the future and
is not absurdly old, a 3-digit sequence, and the check character of ISO 7064 MOD 11-2 ('X'
for 10; a lower-case 'x' is accepted and normalised). The residence permit for Hong Kong,
Macau and Taiwan residents (港澳台居民居住证) has the same layout with region 81/82/83 and is
checked the same way. Every other document is checked by its format only: it carries no
check character this code could verify.

Each failure has its own reason (:class:`Reason`) and message key
(``registration.id.<reason>``), so the form can tell a person exactly what to look at.
Callers may rely on :func:`normalise` returning the one canonical spelling of a number (full-
width digits and spaces removed, letters upper case): the same document always gives the same
string, which is what the duplicate-person hash is computed over.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class IdType(StrEnum):
    RESIDENT_ID = "resident_id"  # 居民身份证
    HMT_RESIDENCE_PERMIT = "hmt_residence_permit"  # 港澳台居民居住证
    PASSPORT = "passport"  # 护照
    HK_MACAU_PERMIT = "hk_macau_permit"  # 港澳居民来往内地通行证
    TAIWAN_PERMIT = "taiwan_permit"  # 台湾居民来往大陆通行证
    FOREIGN_PERMANENT = "foreign_permanent"  # 外国人永久居留身份证
    OTHER = "other"


class Reason(StrEnum):
    BAD_TYPE = "bad_type"
    MISSING = "missing"
    BAD_LENGTH = "bad_length"
    BAD_CHARACTERS = "bad_characters"
    BAD_REGION = "bad_region"
    BAD_BIRTH_DATE = "bad_birth_date"
    BAD_CHECK_DIGIT = "bad_check_digit"
    BAD_FORMAT = "bad_format"


class InvalidIdNumber(ValueError):
    """The number is not a valid number of its document type. ``reason`` says which check
    failed; ``message_key`` is the text for the person at the form. The number itself is
    never part of the message: it is personal data and errors end up in logs."""

    def __init__(self, reason: Reason, id_type: str) -> None:
        super().__init__(f"invalid {id_type} number: {reason}")
        self.reason = reason
        self.id_type = id_type
        self.message_key = f"registration.id.{reason}"


# Province-level codes of GB/T 2260 (first two digits of a resident ID).
MAINLAND_PROVINCES = frozenset({
    "11", "12", "13", "14", "15",  # 北京 天津 河北 山西 内蒙古
    "21", "22", "23",  # 辽宁 吉林 黑龙江
    "31", "32", "33", "34", "35", "36", "37",  # 上海 江苏 浙江 安徽 福建 江西 山东
    "41", "42", "43", "44", "45", "46",  # 河南 湖北 湖南 广东 广西 海南
    "50", "51", "52", "53", "54",  # 重庆 四川 贵州 云南 西藏
    "61", "62", "63", "64", "65",  # 陕西 甘肃 青海 宁夏 新疆
})
HMT_REGIONS = frozenset({"81", "82", "83"})  # 香港 澳门 台湾 (居住证)

# Nobody registering today was born more than this many years ago.
MAX_AGE_YEARS = 130

_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK = "10X98765432"  # index: weighted sum mod 11

_FORMATS: dict[IdType, re.Pattern[str]] = {
    # Chinese passports are E/G + 8 digits (or E + letter + 7 digits); foreign ones vary, so
    # any 5-17 letters and digits with at least one digit.
    IdType.PASSPORT: re.compile(r"(?=.*\d)[A-Z0-9]{5,17}"),
    # H (Hong Kong) or M (Macau) + 8 digits; the older booklets had 10.
    IdType.HK_MACAU_PERMIT: re.compile(r"[HM]\d{8}(\d{2})?"),
    # 8 digits since 2015; the older booklets had 10 digits, sometimes a letter in brackets.
    IdType.TAIWAN_PERMIT: re.compile(r"\d{8}|\d{10}([A-Z])?"),
    # Three letters + 12 digits (2004 card), or 9 + 16 digits + check character (2023 card).
    IdType.FOREIGN_PERMANENT: re.compile(r"[A-Z]{3}\d{12}|9\d{16}[0-9X]"),
    IdType.OTHER: re.compile(r"[A-Z0-9\-]{3,30}"),
}


def id_type(value: str) -> IdType:
    """The :class:`IdType` named ``value``; :class:`InvalidIdNumber` (``bad_type``) if none."""
    try:
        return IdType(value)
    except ValueError:
        raise InvalidIdNumber(Reason.BAD_TYPE, str(value)) from None


def normalise(raw: str) -> str:
    """The canonical spelling: NFKC (full-width digits and brackets become ASCII), no
    white space, upper case."""
    text = unicodedata.normalize("NFKC", raw or "")
    return re.sub(r"\s+", "", text).upper()


def check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


@dataclass(frozen=True)
class ResidentId:
    """What a valid resident ID number says about its holder."""

    number: str
    region: str
    birth_date: date
    sequence: str

    @property
    def sex(self) -> str:
        """``"male"`` for an odd sequence, ``"female"`` for an even one (GB 11643)."""
        return "male" if int(self.sequence[-1]) % 2 else "female"


def parse_resident_id(raw: str, today: date, regions: frozenset[str] = MAINLAND_PROVINCES
                      ) -> ResidentId:
    """Check an 18-character resident ID number; raise :class:`InvalidIdNumber` with the
    first failed check in the order length, characters, region, birth date, check digit."""
    kind = "resident_id" if regions is MAINLAND_PROVINCES else "hmt_residence_permit"
    number = normalise(raw)
    if not number:
        raise InvalidIdNumber(Reason.MISSING, kind)
    if len(number) != 18:
        raise InvalidIdNumber(Reason.BAD_LENGTH, kind)
    if not (number[:17].isascii() and number[:17].isdigit()
            and (number[17] == "X" or (number[17].isascii() and number[17].isdigit()))):
        raise InvalidIdNumber(Reason.BAD_CHARACTERS, kind)
    if number[:2] not in regions:
        raise InvalidIdNumber(Reason.BAD_REGION, kind)
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdNumber(Reason.BAD_BIRTH_DATE, kind) from None
    if born > today or today.year - born.year > MAX_AGE_YEARS:
        raise InvalidIdNumber(Reason.BAD_BIRTH_DATE, kind)
    if check_character(number[:17]) != number[17]:
        raise InvalidIdNumber(Reason.BAD_CHECK_DIGIT, kind)
    return ResidentId(number, number[:6], born, number[14:17])


def validate(kind: str, raw: str, today: date) -> str:
    """The normalised number if ``raw`` is a valid number of document type ``kind``;
    otherwise :class:`InvalidIdNumber` with the reason."""
    t = id_type(kind)
    if t is IdType.RESIDENT_ID:
        return parse_resident_id(raw, today).number
    if t is IdType.HMT_RESIDENCE_PERMIT:
        return parse_resident_id(raw, today, HMT_REGIONS).number
    number = normalise(raw)
    if t is IdType.TAIWAN_PERMIT:  # the old booklets print the letter in brackets
        number = re.sub(r"[()]", "", number)
    if not number:
        raise InvalidIdNumber(Reason.MISSING, t)
    if not all(c.isascii() and (c.isalnum() or c == "-") for c in number):
        raise InvalidIdNumber(Reason.BAD_CHARACTERS, t)
    if not _FORMATS[t].fullmatch(number):
        raise InvalidIdNumber(Reason.BAD_FORMAT, t)
    return number


def mask(kind: str, number: str) -> str:
    """The number as it may be shown on screen or a slip: a resident ID keeps its region
    (6) and last 4 characters (``430102********1234``); other documents keep their first
    and last 2 (at most a third of the number is shown)."""
    if kind in (IdType.RESIDENT_ID, IdType.HMT_RESIDENCE_PERMIT) and len(number) == 18:
        return number[:6] + "*" * 8 + number[-4:]
    if len(number) <= 4:
        return "*" * len(number)
    keep = max(1, min(2, len(number) // 6))
    return number[:keep] + "*" * (len(number) - 2 * keep) + number[-keep:]
