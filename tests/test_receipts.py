"""Receipt templates: the right lines in both languages, and nothing a stranger could use."""

from __future__ import annotations

from datetime import datetime

import pytest

from drivers.escpos_codec import QRCode, Text, encode_document
from kiosk.messages import Catalogue
from kiosk.receipts import (
    LentItem,
    NotDone,
    ReceiptHeader,
    ReturnedItem,
    loan_receipt,
    mask_card,
    mask_name,
    new_card_receipt,
    return_receipt,
)

HEADER = ReceiptHeader("示例县图书馆", "城东24小时城市书房", "sim-01",
                       datetime(2026, 11, 26, 3, 12), "王芳", "431110000017", offline=True)


def texts(document) -> str:
    return "\n".join(item.text for item in document if isinstance(item, Text))


@pytest.mark.parametrize(("name", "masked"), [
    ("王芳", "王*"), ("欧阳𡒄", "欧**"), ("Emily Wang", "E**** W***"), ("张", "张")])
def test_names_are_masked(name, masked):
    assert mask_name(name) == masked


def test_card_numbers_keep_only_the_last_four_digits():
    assert mask_card("431110000017") == "********0017"


def test_loan_receipt_in_chinese():
    doc = loan_receipt(Catalogue("zh-CN"), HEADER,
                       [LentItem("活着", "00020000000001", "2026-12-26"),
                        LentItem("白鹿原", "00010000000007", "2026-12-26")],
                       [NotDone("现代汉语词典（第7版）", "不外借")])
    text = texts(doc)
    assert "借书凭条" in text and "读者：王*" in text and "********0017" in text
    assert "王芳" not in text and "431110000017" not in text
    assert "1. 活着" in text and "应还 2026-12-26" in text and "共借 2 册" in text
    assert "现代汉语词典（第7版）" in text and "不外借" in text
    assert "离线" in text and "2026-11-26 03:12" in text
    encoded = encode_document(doc)
    assert encoded.replaced == ()
    assert encoded.data.startswith(b"\x1b@") and b"\x1dV" in encoded.data  # init ... cut


def test_return_receipt_in_english_says_where_books_go():
    doc = return_receipt(Catalogue("en"), HEADER,
                         [ReturnedItem("White Deer Plain", "00010000000007", "County Library")])
    text = texts(doc)
    assert "Return receipt" in text and "Goes back to: County Library" in text
    assert "1 items returned" in text


def test_new_card_slip_carries_the_number_and_its_qr_code():
    doc = new_card_receipt(Catalogue("zh-CN"), HEADER, name="王芳", card_number="431190000001",
                           patron_type="成人", expires_on="2029-11-25", max_loans=10,
                           loan_days=30)
    assert [i.data for i in doc if isinstance(i, QRCode)] == ["431190000001"]
    text = texts(doc)
    assert "431190000001" in text and "王芳，欢迎您！" in text and "最多借 10 册" in text


def test_a_chinese_loan_receipt_prints_and_renders(tmp_path):
    from PIL import Image

    from hardware.printer import PrinterSpec, build_printer

    printer, sim = build_printer(PrinterSpec(), tmp_path)
    assert printer.start(wait=5)
    try:
        header = ReceiptHeader("示例县图书馆", "城东24小时城市书房", "sim-01",
                               datetime(2026, 11, 26, 3, 12), "欧阳𡒄", "431110000017")
        doc = loan_receipt(Catalogue("zh-CN"), header,
                           [LentItem("南汉高祖刘䶮", "00020000000042", "2026-12-26")])
        result = printer.print_receipt(doc)
        assert result.replaced == ()  # the masked name hides the 4-byte character
        (job,) = sim.jobs
        assert job.cut and not job.lost
        assert "借书凭条" in job.text and "1. 南汉高祖刘䶮" in job.text and "欧**" in job.text
        png = job.wait_png()
        with Image.open(png) as image:
            assert image.width == 384
            histogram = image.convert("L").histogram()
            dark = sum(histogram[:128])
        assert dark > 2000  # text was drawn, not a blank strip
    finally:
        printer.close()
        sim.stop()
