"""The books on the pad, end to end: simulated tags with real ISO 28560 data, read by the
real FEIG driver over a pty, decoded, and flagged."""

from __future__ import annotations

import pytest

from drivers.errors import DriverError
from drivers.iso28560 import TagDataError
from hardware import build
from hardware.pad import read_book, read_books
from hardware.security import SecurityPolicy, set_flag
from hardware.sim.books import book_tag, uid_for
from hardware.sim.iso15693 import VirtualTag
from hardware.specs import TagReaderSpec
from sync import sample

POLICY = SecurityPolicy()


@pytest.fixture
def pad(tmp_path):
    reader, sim = build.tag_reader(TagReaderSpec(timeout_ms=300), tmp_path)
    assert reader.start(wait=5)
    yield reader, sim
    reader.close()
    sim.stop()


def test_a_stack_of_sample_books_is_read_decoded_and_lent(pad):
    reader, sim = pad
    barcodes = [sample.EDGE_CASES[k] for k in ("available_item", "available_item_2",
                                               "other_branch_item", "rare_title_item")]
    for n, code in enumerate(barcodes):
        sim.place(book_tag(code, owner_isil="CN-431121-0002",
                           model="part3" if n % 2 else "part2", country="CN" if n % 2 else None))
    sim.place(book_tag("00020000009999", owner_isil="CN-431121-0002", set_parts=2, set_part=1))
    books = read_books(reader)
    assert all(b.error is None for b in books), [b.error for b in books]
    assert sorted(b.item.primary_item_id for b in books) == sorted([*barcodes, "00020000009999"])
    assert {b.item.owner_isil for b in books} == {"CN-431121-0002"}
    two_part = next(b for b in books if b.item.primary_item_id == "00020000009999")
    assert (two_part.item.set_part, two_part.item.set_parts) == (1, 2)
    for book in books:
        assert set_flag(reader, book.uid, True, POLICY).on_loan
        assert sim.tag(book.uid).afi == POLICY.afi_on_loan


def test_one_corrupt_tag_does_not_hide_the_others(pad):
    reader, sim = pad
    sim.place(book_tag("00020000000001"))
    garbage = VirtualTag.from_iso28560(uid_for("garbage"), bytes([0x11] * 40))
    sim.place(garbage)
    blank = VirtualTag.from_iso28560(uid_for("blank"), bytes(32))
    sim.place(blank)
    books = {b.uid: b for b in read_books(reader)}
    assert books[uid_for("00020000000001")].item.primary_item_id == "00020000000001"
    for uid in (garbage.uid, blank.uid):
        assert isinstance(books[uid].error, TagDataError) and books[uid].item is None
    assert books[blank.uid].error.reason == "empty"


def test_long_part2_data_is_read_beyond_the_first_blocks(pad):
    reader, sim = pad
    title = "乡村振兴实用技术：果树栽培与病虫害防治（第二版）"
    sim.place(book_tag("00020000000077", owner_isil="CN-431121-0002", title=title,
                       shelf_location="S1-03-2"))
    (book,) = read_books(reader)
    assert book.error is None and book.item.title == title
    assert book.item.shelf_location == "S1-03-2"


def test_a_tag_that_leaves_mid_read_is_reported_for_that_book(pad):
    reader, sim = pad
    sim.place(book_tag("00020000000001"))
    (tag,) = reader.inventory()
    sim.inject("tag_leaves")
    book = read_book(reader, tag)
    assert book.item is None and isinstance(book.error, DriverError)
