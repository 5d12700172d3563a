"""ID document numbers: GB 11643 resident IDs in full, the other documents by format."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync import idnumbers
from sync.idnumbers import IdType, InvalidIdNumber, Reason, check_character, validate

TODAY = date(2026, 11, 25)
# The example of GB 11643-1999 itself, and a second well-known valid number.
GB_EXAMPLE = "11010519491231002X"
VALID = "430102198507153415"


def _valid(region: str, born: date, sequence: int) -> str:
    body = f"{region}{born:%Y%m%d}{sequence:03d}"
    return body + check_character(body)


def test_published_example_passes_and_lower_case_x_is_normalised():
    assert check_character(GB_EXAMPLE[:17]) == "X"
    assert validate("resident_id", GB_EXAMPLE, TODAY) == GB_EXAMPLE
    assert validate("resident_id", GB_EXAMPLE.lower(), TODAY) == GB_EXAMPLE
    assert validate("resident_id", " ４３０１０２１９８５０７１５３４１５ ", TODAY) == VALID


def test_what_a_resident_id_says():
    parsed = idnumbers.parse_resident_id(GB_EXAMPLE, TODAY)
    assert parsed.birth_date == date(1949, 12, 31)
    assert parsed.region == "110105"
    assert parsed.sex == "female"


@pytest.mark.parametrize("number, reason", [
    ("", Reason.MISSING),
    ("4301021985071534", Reason.BAD_LENGTH),
    ("4301021985071534151", Reason.BAD_LENGTH),
    ("43010219850715341Y", Reason.BAD_CHARACTERS),
    ("4301021985071X3415", Reason.BAD_CHARACTERS),
    ("990102198507153415", Reason.BAD_REGION),
    ("810102198507153415", Reason.BAD_REGION),  # Hong Kong: a residence permit, not an ID
    ("430102198502303415", Reason.BAD_BIRTH_DATE),  # 30 February
    (_valid("430102", TODAY + timedelta(days=1), 341), Reason.BAD_BIRTH_DATE),
    (_valid("430102", date(1880, 1, 1), 341), Reason.BAD_BIRTH_DATE),
    ("430102198507153416", Reason.BAD_CHECK_DIGIT),
])
def test_every_failure_has_its_reason_and_message_key(number, reason):
    with pytest.raises(InvalidIdNumber) as err:
        validate("resident_id", number, TODAY)
    assert err.value.reason is reason
    assert err.value.message_key == f"registration.id.{reason}"
    assert number not in str(err.value) or not number


def test_residence_permits_use_the_hmt_regions():
    permit = _valid("810000", date(1990, 5, 1), 12)
    assert validate("hmt_residence_permit", permit, TODAY) == permit
    with pytest.raises(InvalidIdNumber):
        validate("resident_id", permit, TODAY)


@pytest.mark.parametrize("kind, number, ok", [
    ("passport", "E12345678", True), ("passport", "e 1234 5678", True),
    ("passport", "ABCDEFG", False), ("passport", "E1", False),
    ("hk_macau_permit", "H12345678", True), ("hk_macau_permit", "M1234567890", True),
    ("hk_macau_permit", "X12345678", False),
    ("taiwan_permit", "12345678", True), ("taiwan_permit", "1234567890(B)", True),
    ("taiwan_permit", "1234567", False),
    ("foreign_permanent", "USA123456789012", True),
    ("foreign_permanent", "912345678901234567", True),
    ("foreign_permanent", "US123456789012", False),
    ("other", "AB-1234", True), ("other", "中文", False),
])
def test_other_documents_by_format(kind, number, ok):
    if ok:
        assert validate(kind, number, TODAY)
    else:
        with pytest.raises(InvalidIdNumber) as err:
            validate(kind, number, TODAY)
        assert err.value.reason in (Reason.BAD_FORMAT, Reason.BAD_CHARACTERS)


def test_unknown_type_is_refused():
    with pytest.raises(InvalidIdNumber) as err:
        validate("library_card", "123456", TODAY)
    assert err.value.reason is Reason.BAD_TYPE


def test_masking():
    assert idnumbers.mask("resident_id", VALID) == "430102********3415"
    assert idnumbers.mask("passport", "E12345678") == "E*******8"
    assert idnumbers.mask("foreign_permanent", "USA123456789012") == "US***********12"


regions = st.sampled_from(sorted(idnumbers.MAINLAND_PROVINCES)).flatmap(
    lambda p: st.integers(0, 9999).map(lambda n: f"{p}{n:04d}"))
births = st.dates(min_value=date(TODAY.year - idnumbers.MAX_AGE_YEARS, 1, 1), max_value=TODAY)
valid_numbers = st.builds(_valid, regions, births, st.integers(0, 999))


@given(valid_numbers)
def test_a_generated_valid_number_passes(number):
    assert validate(IdType.RESIDENT_ID, number, TODAY) == number


@given(valid_numbers, st.integers(0, 17), st.sampled_from("0123456789X"))
def test_any_single_character_change_fails(number, position, replacement):
    changed = number[:position] + replacement + number[position + 1:]
    if changed == number:
        return
    with pytest.raises(InvalidIdNumber):
        validate(IdType.RESIDENT_ID, changed, TODAY)


@given(valid_numbers, st.integers(0, 16))
def test_swapping_neighbours_is_caught_unless_they_are_equal(number, i):
    swapped = number[:i] + number[i + 1] + number[i] + number[i + 2:]
    if swapped == number:
        return
    with pytest.raises(InvalidIdNumber):
        validate(IdType.RESIDENT_ID, swapped, TODAY)
