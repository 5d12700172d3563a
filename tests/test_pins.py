"""PIN hashes (sync/pins.py): scrypt with the parameters in the stored text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.pins import BadPinHash, hash_pin, valid_pin, verify_pin


def test_the_right_pin_verifies_and_a_wrong_one_does_not() -> None:
    stored = hash_pin("2468")
    assert stored.startswith("scrypt$14$8$1$")
    assert verify_pin("2468", stored)
    assert not verify_pin("2469", stored)
    assert not verify_pin("24680", stored)


def test_the_same_pin_hashes_differently_each_time() -> None:
    assert hash_pin("1234") != hash_pin("1234")


def test_old_parameters_still_verify() -> None:
    stored = hash_pin("0000", log2_n=10, r=4)
    assert stored.startswith("scrypt$10$4$1$") and verify_pin("0000", stored)


@pytest.mark.parametrize("pin", ["123", "1234567", "12a4", "", " 1234", "１２３４"])
def test_only_4_to_6_digits_are_pins(pin: str) -> None:
    assert not valid_pin(pin)
    with pytest.raises(ValueError, match="4 to 6 digits"):
        hash_pin(pin)


@pytest.mark.parametrize("stored", ["", "1234", "md5$abc", "scrypt$14$8$1$***$abc",
                                    "scrypt$30$8$1$AAAA$AAAA", "scrypt$14$8$1$AAA$AAAA"])
def test_an_unreadable_hash_is_an_error_not_a_match(stored: str) -> None:
    with pytest.raises(BadPinHash):
        verify_pin("1234", stored)


@settings(max_examples=20, deadline=None)
@given(st.text(max_size=40))
def test_no_text_raises_anything_but_bad_pin_hash(stored: str) -> None:
    try:
        result = verify_pin("1234", stored)
    except BadPinHash:
        return
    assert result is False  # random text never verifies
