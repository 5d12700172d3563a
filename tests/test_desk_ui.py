"""The staff desk on the kiosk's screen, in real headless Chromium against ``kiosk demo``:
staff sign-in and lockout, the registration form (valid and every invalid field), writing the
card (success, write failure, card taken away mid-write), lending to the new reader at once,
an override with a reason, and the van stop on every event. The ID number must appear in
plain text nowhere: not in the database file, the log, or an outbox payload."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from sync.sample import EDGE_CASES
from tests.test_web_ui import Demo, check_screen, line, text

VAN_STAFF, VAN_PIN = "9900000001", "2468"
ADMIN, ADMIN_PIN = "9900000002", "1357"  # locked out by the lockout test: nobody else uses it
# A valid mainland resident ID (GB 11643 check character X) of a made-up person.
ID_NUMBER = "11010519491231002X"


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo.started("desk-") as running:
        yield running


def desk_post(demo: Demo, action: str, **body: Any) -> Any:
    import requests

    return requests.post(f"{demo.url}api/desk/{action}", json=body, timeout=10)


def control(demo: Demo, cmd: str, **args: Any) -> Any:
    from kiosk.control_client import ControlClient

    with ControlClient.connect(demo.folder / "control.sock") as client:
        return client.request(cmd, **args)


def reset(demo: Demo) -> None:
    desk_post(demo, "sign_out")
    desk_post(demo, "cancel")
    with contextlib.suppress(Exception):
        control(demo, "sim", device="card", action="clear_faults")
    demo.reset()


@pytest.fixture
def page(demo: Demo, browser: Any) -> Iterator[Any]:
    reset(demo)
    context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="zh-CN")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(demo.url)
    tab.wait_for_selector("#main[data-screen=idle]")
    yield tab
    context.close()
    reset(demo)
    assert errors == [], f"errors in the page: {errors}"


def tap_staff(demo: Demo, page: Any, card: str = VAN_STAFF) -> None:
    demo.sim("card", "--card", card)
    page.wait_for_selector("#main[data-desk=pin]")


def type_pin(page: Any, pin: str) -> None:
    for digit in pin:
        page.click(f"#main .keypad [data-key='{digit}']")
    page.click("#desk-pin-ok")


def sign_in(demo: Demo, page: Any) -> None:
    tap_staff(demo, page)
    type_pin(page, VAN_PIN)
    page.wait_for_selector("#desk-who")
    demo.sim("card", "remove")


def audit(demo: Demo) -> list[tuple[str, str]]:
    return [(a, c) for a, c in demo.db("SELECT action, staff_card FROM staff_audit ORDER BY id")]


def open_form(page: Any, via: str = "#desk-tab-register") -> None:
    page.click(via)
    page.wait_for_selector("#reg-form")


def fill(page: Any, **fields: str) -> None:
    for name, value in fields.items():
        selector = f"#reg-{name}"
        if page.eval_on_selector(selector, "n => n.tagName") == "SELECT":
            page.select_option(selector, value)
        else:
            page.fill(selector, value)


def good_form(page: Any, name: str, id_number: str = ID_NUMBER) -> None:
    fill(page, name=name, id_type="resident_id", id_number=id_number, phone="13800138000",
         village="柳树湾", patron_type="adult")
    page.check("#reg-consent")


def problem(page: Any, field: str) -> str:
    return page.inner_text(f"[data-field={field}] .field-problem")


# -- signing in -------------------------------------------------------------------------------


def test_staff_sign_in_with_a_wrong_pin_then_the_right_one_and_out(demo: Demo, page: Any) -> None:
    before = len(audit(demo))
    tap_staff(demo, page)
    check_screen(page, "desk-pin")
    type_pin(page, "9999")
    page.wait_for_function("document.querySelector('#desk-pin-message').innerText.includes("
                           + json.dumps(text("zh-CN", "staff.sign_in.wrong_pin", left=4)) + ")")
    type_pin(page, VAN_PIN)
    page.wait_for_selector("#main[data-desk=home]")
    assert "流动图书车馆员王芳" in page.inner_text("#desk-who")
    check_screen(page, "desk-home")
    page.click("#desk-sign-out")
    page.wait_for_selector("#main[data-screen=idle]")
    assert [a for a, _ in audit(demo)[before:]] == ["sign_in_refused", "sign_in", "sign_out"]


def test_desk_requests_are_refused_without_a_signed_in_staff_member(demo: Demo,
                                                                   page: Any) -> None:
    """A patron at the kiosk cannot reach a staff function, not even by posting to it."""
    demo.sim("card", "--card", str(EDGE_CASES["ok_patron"]))
    page.wait_for_selector("#main[data-screen=session]")
    for action, body in (("page", {"page": "register"}), ("stop", {"stop": "石门村"}),
                         ("register", {"name": "x"}), ("override", {"barcode": "1",
                                                                    "reason": "x"})):
        answer = desk_post(demo, action, **body)
        assert answer.status_code == 403, action
        assert answer.json()["message_key"] == "staff.desk.not_signed_in"
    assert page.query_selector("#main[data-screen=desk]") is None


def test_too_many_wrong_pins_lock_the_staff_card(demo: Demo, page: Any) -> None:
    tap_staff(demo, page, ADMIN)
    for _ in range(5):
        type_pin(page, "0000")
    locked = text("zh-CN", "staff.sign_in.locked_out", minutes=15)
    page.wait_for_function("document.querySelector('#desk-pin-message').innerText.includes("
                           + json.dumps(locked) + ")")
    check_screen(page, "desk-locked")
    type_pin(page, ADMIN_PIN)  # the right PIN, too late
    page.wait_for_function("document.querySelector('#desk-pin-message').innerText.includes("
                           + json.dumps(locked) + ")")
    assert page.query_selector("#desk-who") is None
    rows = demo.db("SELECT action FROM staff_audit WHERE staff_card = ? ORDER BY id", ADMIN)
    assert [r[0] for r in rows][-2:] == ["sign_in_locked_out", "sign_in_refused"]


# -- registering a reader and writing the card ----------------------------------------------


def test_every_invalid_field_is_named_and_nothing_is_registered(demo: Demo, page: Any) -> None:
    sign_in(demo, page)
    patrons = demo.db("SELECT count(*) FROM patrons")[0][0]
    open_form(page)
    page.click("#reg-submit")  # everything empty
    page.wait_for_selector("#reg-problems")
    assert problem(page, "name") == text("zh-CN", "registration.name.missing")
    assert problem(page, "id_number") == text("zh-CN", "registration.id.missing")
    assert problem(page, "village") == text("zh-CN", "registration.village.missing")
    assert page.inner_text("[data-field=consent] .field-problem")
    check_screen(page, "desk-register-problems")
    cases = [
        ({"id_number": "11010519491231002"}, "id_number", "registration.id.bad_length"),
        ({"id_number": "110105194912310021"}, "id_number", "registration.id.bad_check_digit"),
        ({"id_number": "11010519491331002X"}, "id_number", "registration.id.bad_birth_date"),
        ({"id_number": "99010519491231002X"}, "id_number", "registration.id.bad_region"),
        ({"name": "王<script>"}, "name", "registration.name.bad_characters"),
        ({"phone": "12345"}, "phone", None),
        ({"patron_type": "child", "guardian_name": ""}, "guardian_name",
         "registration.guardian_name.missing"),
    ]
    for change, field, key in cases:
        good_form(page, "李四")
        fill(page, **change)
        page.click("#reg-submit")
        # The form is drawn again with this submission's problems: wait for exactly these.
        selector = f"[data-field={field}] .field-problem"
        wanted = json.dumps(text("zh-CN", key) if key is not None else None)
        page.wait_for_function(
            f"(() => {{ const n = document.querySelector({json.dumps(selector)});"
            f" return n !== null && ({wanted} === null || n.innerText === {wanted}); }})()")
        assert page.get_attribute(f"#reg-{field}", "aria-invalid") == "true"
    assert demo.db("SELECT count(*) FROM patrons")[0][0] == patrons


def test_a_new_reader_gets_a_written_card_a_slip_and_borrows_at_once(demo: Demo,
                                                                     page: Any) -> None:
    sign_in(demo, page)
    page.select_option("#desk-stop", "柳树湾")
    page.wait_for_function("document.querySelector('#desk-stop').value === '柳树湾'")
    open_form(page, "#desk-register")
    good_form(page, "王小梅")
    page.click("#reg-submit")
    page.wait_for_selector("#reg-card[data-state=waiting_card]")
    check_screen(page, "desk-register-waiting")
    demo.sim("card", "04A1B2C3D4E5F6")  # a blank card
    page.wait_for_selector("#reg-issued", timeout=15_000)
    number = page.inner_text("#reg-card-number")
    page.wait_for_selector("#reg-slip[data-slip=printed]", timeout=15_000)
    check_screen(page, "desk-register-issued")
    row = demo.db("SELECT card_uid, id_masked, registered_txn FROM patrons WHERE card_number = ?",
                  number)[0]
    assert row[0] == "04A1B2C3D4E5F6" and row[1] == "110105********002X"
    # The card really holds the number: tapped again, the desk lends to the new reader.
    demo.sim("card", "remove")
    demo.sim("card", "--card", number)
    books = demo.fresh_items(3)
    demo.sim("place", *books)
    for barcode in books:
        line(page, barcode, "lent")
    check_screen(page, "desk-lend")
    events = demo.db("SELECT seq, kind, stop, payload FROM outbox WHERE payload LIKE ?"
                     " ORDER BY seq", f"%{number}%")
    kinds = [k for _, k, _, _ in events]
    assert kinds[0] == "patron_registered" and kinds.count("checkout") == 3
    assert {s for _, _, s, _ in events} == {"柳树湾"}
    assert events[0][0] < min(seq for seq, k, _, _ in events if k == "checkout")
    assert ("desk_checkout", VAN_STAFF) in audit(demo)
    registered = demo.db("SELECT details, txn_id FROM staff_audit WHERE action ="
                         " 'register_reader' ORDER BY id DESC LIMIT 1")[0]
    assert json.loads(registered[0]) == {"card": number, "patron_type": "adult"}
    assert registered[1] == row[2]  # the registration's own event
    # The ID number in plain text: nowhere on disk (database, its WAL, the demo's log,
    # receipts), and in no payload.
    for path in demo.folder.rglob("*"):
        if path.is_file():
            assert ID_NUMBER.encode() not in path.read_bytes(), path
    assert all(ID_NUMBER not in p for *_, p in events)


def test_a_card_that_fails_to_write_is_not_issued_and_can_be_tried_again(demo: Demo,
                                                                        page: Any) -> None:
    sign_in(demo, page)
    open_form(page)
    demo.sim("card", "04A1B2C3D4E5F7")  # put down first: it waits for the form
    page.wait_for_selector("#reg-form[data-card=ready]")
    control(demo, "sim", device="card", action="fault", fault="wrong_key", count=1)
    patrons = demo.db("SELECT count(*) FROM patrons")[0][0]
    good_form(page, "赵六", "110105194912310062")
    page.click("#reg-submit")
    page.wait_for_selector("#reg-card[data-state=failed]", timeout=15_000)
    assert "没有发出" in page.inner_text("#reg-card")
    check_screen(page, "desk-register-write-failed")
    assert demo.db("SELECT count(*) FROM patrons")[0][0] == patrons
    demo.sim("card", "remove")
    demo.sim("card", "04A1B2C3D4E5F7")  # the same card again, held still this time
    page.wait_for_selector("#reg-issued", timeout=15_000)
    assert demo.db("SELECT count(*) FROM patrons")[0][0] == patrons + 1


def test_a_card_taken_away_mid_write_is_not_issued(demo: Demo, page: Any) -> None:
    sign_in(demo, page)
    open_form(page)
    demo.sim("card", "04A1B2C3D4E5F8")
    page.wait_for_selector("#reg-form[data-card=ready]")
    control(demo, "sim", device="card", action="fault", fault="leave_after_auth", count=1)
    patrons = demo.db("SELECT count(*) FROM patrons")[0][0]
    left = demo.db("SELECT sum(last_number + 1 - next_number) FROM card_ranges")[0][0]
    good_form(page, "钱七", "110105194912310089")
    page.click("#reg-submit")
    page.wait_for_selector("#reg-card[data-state=failed]", timeout=15_000)
    assert demo.db("SELECT count(*) FROM patrons")[0][0] == patrons
    # The number was not used: the next card gets it.
    assert demo.db("SELECT sum(last_number + 1 - next_number) FROM card_ranges")[0][0] == left


def test_a_card_that_already_holds_a_number_is_not_overwritten(demo: Demo, page: Any) -> None:
    sign_in(demo, page)
    open_form(page, "#desk-register")
    good_form(page, "孙八", "110105194912310118")
    page.click("#reg-submit")
    page.wait_for_selector("#reg-card[data-state=waiting_card]")
    demo.sim("card", "--card", str(EDGE_CASES["ok_patron"]))
    page.wait_for_selector("#reg-card[data-state=failed]")
    assert page.inner_text("#reg-card") == text("zh-CN", "staff.desk.card.not_blank")


# -- desk loans -----------------------------------------------------------------------------


def test_staff_lend_to_a_blocked_reader_only_with_a_reason(demo: Demo, page: Any) -> None:
    sign_in(demo, page)
    page.click("#desk-tab-lend")
    page.fill("#desk-card", str(EDGE_CASES["blocked_patron"]))
    page.click("#desk-card-go")
    page.wait_for_selector("#main[data-desk=lend] #desk-finish")
    book = demo.fresh_items(1)[0]
    demo.sim("place", book)
    line(page, book, "not_lent")
    page.click(f"[data-override='{book}']")
    page.fill("#desk-override-reason", "读者已在服务台补办手续")
    check_screen(page, "desk-override")
    page.click("#desk-override-go")
    line(page, book, "lent")
    assert demo.on_loan(book)
    rows = demo.db("SELECT action, details FROM staff_audit WHERE action = 'checkout_override'")
    assert rows and json.loads(rows[-1][1])["reason"] == "读者已在服务台补办手续"


def test_a_book_whose_tag_cannot_be_read_is_lent_and_taken_back_by_its_barcode(
        demo: Demo, page: Any) -> None:
    sign_in(demo, page)
    page.click("#desk-tab-lend")
    page.fill("#desk-card", str(EDGE_CASES["ok_patron"]))
    page.click("#desk-card-go")
    page.wait_for_selector("#main[data-desk=lend] #desk-finish")
    book = demo.fresh_items(1)[0]
    page.fill("#desk-barcode", book)
    page.click("#desk-barcode-go")
    lent = line(page, book, "lent")
    assert text("zh-CN", "daemon.book.typed_no_tag") in lent.inner_text()
    assert demo.on_loan(book)
    # Its tag was not written, so nothing waits in the flag journal for it.
    assert demo.db("SELECT count(*) FROM flag_pending WHERE barcode = ?", book) == [(0,)]
    page.click("#desk-finish")
    page.wait_for_selector("#main[data-desk=lend] #desk-card")  # no session any more
    page.fill("#desk-barcode", book)  # no card in session: taken back
    page.click("#desk-barcode-go")
    line(page, book, "returned")
    assert not demo.on_loan(book)
    rows = demo.db("SELECT action FROM staff_audit WHERE details LIKE ? ORDER BY id",
                   f'%"item": "{book}"%')
    assert [r[0] for r in rows] == ["desk_checkout", "desk_checkin"]
    # A barcode that is no barcode is refused and says why.
    answer = desk_post(demo, "item", barcode="书 1")
    assert answer.status_code == 422
    assert answer.json()["message_key"] == "staff.desk.bad_barcode"


def test_what_staff_are_typing_survives_the_screen_being_drawn_again(demo: Demo,
                                                                    page: Any) -> None:
    """The desk is drawn again whenever the daemon says anything; a number half typed, and
    the focus, stay where they were."""
    sign_in(demo, page)
    page.click("#desk-tab-lend")
    page.wait_for_selector("#desk-card")
    page.click("#desk-card")
    page.keyboard.type("43111")
    page.evaluate("document.querySelector('#desk-card').dataset.old = 'yes'")
    demo.sim("printer", "paper-out")  # a printer event: the whole screen drawn again
    page.wait_for_function("document.querySelector('#alerts').innerText.length > 0")
    assert page.get_attribute("#desk-card", "data-old") is None  # a new input, redrawn
    assert page.input_value("#desk-card") == "43111"
    assert page.evaluate("document.activeElement.id") == "desk-card"
    page.keyboard.type("0000001")
    assert page.input_value("#desk-card") == "431110000001"
