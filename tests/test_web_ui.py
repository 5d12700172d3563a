"""End-to-end tests of the patron touchscreen in real headless Chromium (Debian's
``chromium``, driven by Playwright; no browser is downloaded) against the demo set-up:
``kiosk demo`` runs the reference hub with the sample county and the daemon on simulated
hardware, and the tests play the patron's hands through ``kiosk sim`` like a person at a
second terminal would.

Screenshots of each screen go to ``build/screenshots/`` for review; every screen is checked
with axe-core in the same browser.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.messages import Catalogue, texts
from sync import pins
from sync.sample import EDGE_CASES
from tests.daemon_helpers import remove_tree, short_dir

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "screenshots"
LANGS = ["zh-CN", "en"]
# 9 mm at CSS's 96 px per inch.
MIN_TARGET_PX = 9 / 25.4 * 96
E = EDGE_CASES



class Demo:
    """``kiosk demo`` in a child process, and ``kiosk sim`` against it."""

    def __init__(self, folder: Path, *, timeout_s: int = 600, warning_s: int = 590,
                 extra: str = "") -> None:
        self.folder = folder
        self.config = folder / "kiosk.toml"
        self.config.write_text(
            '[device]\nid = "sim-01"\nbranch = "CN-431121-0002"\nprofile = "sim"\n'
            f'[daemon]\ncontrol_socket = "{folder / "control.sock"}"\n'
            f'session_timeout_s = {timeout_s}\nsession_warning_s = {warning_s}\n'
            'pin = "if_set"\n'
            '[ui]\nport = 0\ndone_s = 600\n'
            '[lockers]\nopen_timeout_ms = 1500\n[door]\nleft_open_after_s = 2\n' + extra,
            encoding="utf-8")
        self.log = (folder / "demo.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kiosk", "--config", str(self.config), "demo",
             "--dir", str(folder / "data")],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.used: set[str] = set()
        self.url = self._wait_url()

    def kiosk(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "kiosk", "--config", str(self.config),
                               *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"kiosk {' '.join(args)}: {done.returncode}\n{done.stdout}"
                                 f"{done.stderr}")
        return done

    def sim(self, *args: str) -> Any:
        return json.loads(self.kiosk("sim", *args, "--json").stdout or "null")

    def _wait_url(self) -> str:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.folder / "demo.log").read_text())
            done = self.kiosk("status", "--json", check=False)
            if done.returncode == 0:
                status = json.loads(done.stdout)
                # Ready for patrons once the first snapshot came down from the hub.
                if status.get("ui", {}).get("url") and status["sync"].get("last_report"):
                    return status["ui"]["url"]
            time.sleep(0.5)
        raise RuntimeError("the demo did not come up:\n" + (self.folder / "demo.log").read_text())

    def fresh_items(self, n: int) -> list[str]:
        """``n`` books on the shelf here that no test used yet (the sample's random rows)."""
        edge = {str(v) for v in E.values()}
        rows = self.db("SELECT barcode FROM items WHERE status = 'available' AND"
                       " owning_branch = 'CN-431121-0002' AND loan_type = 'normal'"
                       " AND id NOT IN (SELECT item_id FROM holds WHERE status IN"
                       " ('waiting', 'in_transit', 'ready')) ORDER BY barcode")
        found = [r[0] for r in rows if r[0] not in edge and r[0] not in self.used][:n]
        assert len(found) == n, "the sample county ran out of books on the shelf"
        self.used.update(found)
        return found

    def _write(self, *statements: tuple[str, tuple]) -> None:
        conn = sqlite3.connect(self.folder / "data" / "demo.db", timeout=30)
        try:
            with conn:
                for sql, args in statements:
                    conn.execute(sql, args)
        finally:
            conn.close()

    def other_branch_item(self) -> tuple[str, str]:
        """A book on the shelf here that belongs to the county library (as the hub would
        have it), and that library's name."""
        (book,) = self.fresh_items(1)
        isil, name = self.db("SELECT isil, name FROM branches WHERE kind = 'central'")[0]
        self._write(("UPDATE items SET owning_branch = ? WHERE barcode = ?", (isil, book)))
        return book, name

    def ready_hold(self, card: str) -> tuple[int, str]:
        """A new hold of ``card``'s, ready in a free locker slot here: (hold id, slot)."""
        (book,) = self.fresh_items(1)
        taken = {r[0] for r in self.db("SELECT locker_slot FROM holds WHERE status = 'ready'"
                                       " AND locker_slot IS NOT NULL")}
        slot = next(s for s in ("A01", "A02", "A04") if s not in taken)
        self._write(
            ("UPDATE items SET status = 'on_hold_shelf' WHERE barcode = ?", (book,)),
            ("INSERT INTO holds (patron_id, item_id, pickup_branch, status, locker_slot,"
             " placed_at, ready_at, pickup_expires_on) SELECT p.id, i.id, 'CN-431121-0002',"
             " 'ready', ?, '2026-01-01T10:00:00+08:00', '2026-01-02T10:00:00+08:00',"
             " '2099-01-01' FROM patrons p, items i WHERE p.card_number = ? AND"
             " i.barcode = ?", (slot, card, book)))
        return self.db("SELECT max(id) FROM holds")[0][0], slot

    def set_pin(self, card: str, pin: str) -> None:
        """Give ``card``'s holder a PIN, as the hub would send it down."""
        self._write(("UPDATE patrons SET pin_hash = ? WHERE card_number = ?",
                     (pins.hash_pin(pin), card)))

    def on_loan(self, barcode: str) -> bool:
        """Whether the cache has an open loan of ``barcode``."""
        return bool(self.db("SELECT 1 FROM loans l JOIN items i ON i.id = l.item_id"
                            " WHERE i.barcode = ? AND l.returned_at IS NULL", barcode))

    def db(self, sql: str, *args: Any) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.folder / 'data' / 'demo.db'}?mode=ro", uri=True)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def reset(self) -> None:
        """Nobody at the kiosk: the pad and reader empty, devices plugged, no session. Said
        straight to the control socket (what ``kiosk sim`` says, without starting Python
        six times between tests)."""
        import requests

        from kiosk.control_client import ControlClient, DaemonError

        with ControlClient.connect(self.folder / "control.sock") as client:
            for cmd, args in (
                    ("sim", {"device": "remove", "barcodes": [], "all": True}),
                    ("sim", {"device": "card", "action": "remove"}),
                    ("sim", {"device": "printer", "action": "paper-in"}),
                    ("sim", {"device": "reader", "action": "replug", "fault": None}),
                    ("sim", {"device": "door", "action": "close", "name": "door"}),
                    ("session", {"action": "finish"})):
                with contextlib.suppress(DaemonError):
                    client.request(cmd, **args)
        requests.post(self.url + "api/press", json={"action": "dismiss"}, timeout=10)

    @classmethod
    @contextlib.contextmanager
    def started(cls, prefix: str, **kw: Any) -> Iterator[Any]:
        """A demo of its own in a short folder (a module's fixture), stopped and removed
        after."""
        folder = short_dir(prefix)
        running = cls(folder, **kw)
        try:
            yield running
        finally:
            running.stop()
            remove_tree(folder)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo.started("ui-") as running:
        yield running


def _open(demo: Demo, browser: Any) -> Iterator[Any]:
    demo.reset()
    context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="zh-CN")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(demo.url)
    tab.wait_for_selector("#main[data-screen=idle]")
    yield tab
    context.close()
    demo.reset()
    assert errors == [], f"errors in the page: {errors}"


@pytest.fixture
def page(demo: Demo, browser: Any) -> Iterator[Any]:
    yield from _open(demo, browser)


@pytest.fixture(scope="module")
def quick() -> Iterator[Demo]:
    """A demo of its own whose sessions warn after 5 s and end after 10 s."""
    with Demo.started("uq-", timeout_s=10, warning_s=5) as running:
        yield running


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def serious_violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def check_screen(page: Any, name: str) -> None:
    """Screenshot, axe-core, and every visible button at least 9 mm both ways."""
    shot(page, name)
    assert serious_violations(page) == [], name
    small = []
    for handle in page.query_selector_all("button"):
        box = handle.bounding_box()
        if box is not None and handle.is_visible() and \
                (box["width"] < MIN_TARGET_PX or box["height"] < MIN_TARGET_PX):
            small.append((handle.inner_text(), box))
    assert small == [], f"{name}: touch targets under 9 mm: {small}"


def screen(page: Any, name: str, timeout: float = 10_000) -> None:
    page.wait_for_selector(f"#main[data-screen={name}]", timeout=timeout)


def line(page: Any, barcode: str, state: str, where: str = "#lines") -> Any:
    return page.wait_for_selector(f"{where} li[data-barcode='{barcode}'][data-state={state}]",
                                  timeout=10_000)


def english(page: Any) -> None:
    use(page, "en")


def use(page: Any, lang: str) -> None:
    """Switch the page to ``lang`` (zh-CN is where it starts)."""
    if lang != "zh-CN":
        page.click(f"[data-lang={lang}]")
    page.wait_for_function(f"document.documentElement.lang === {json.dumps(lang)}")


def text(lang: str, key: str, **params: Any) -> str:
    """A text of the catalogue, as the page shows it in ``lang``."""
    return Catalogue(lang).text(key, **params)


def alert(page: Any, text_: str, *, shown: bool = True, timeout: float = 15_000) -> None:
    """Wait until the alerts above the screen do (or no longer do) say ``text_``."""
    check = f"document.querySelector('#alerts').innerText.includes({json.dumps(text_)})"
    page.wait_for_function(check if shown else f"!{check}", timeout=timeout)


def afi(demo: Demo, barcode: str) -> str:
    return next(t["afi"] for t in demo.sim("show")["pad"] if t["barcode"] == barcode)


# -- borrowing -----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_borrow_shows_each_book_lent_with_its_due_date_then_a_receipt_and_a_rating(
        demo: Demo, page: Any, lang: str) -> None:
    use(page, lang)
    check_screen(page, f"idle-{lang}")
    assert text(lang, "ui.idle.tap_card") in page.inner_text("main")
    demo.sim("card", "--card", E["ok_patron"])
    screen(page, "session")
    assert page.inner_text("h1").startswith(text(lang, "ui.session.hello", name="")[:2])
    check_screen(page, f"session-empty-{lang}")
    (book,) = demo.fresh_items(1)
    demo.sim("place", book, E["reference_item"])
    lent = line(page, book, "lent")
    refused = line(page, E["reference_item"], "not_lent")
    due = demo.db("SELECT l.due_date FROM loans l JOIN items i ON i.id = l.item_id"
                  " WHERE i.barcode = ? AND l.returned_at IS NULL", book)
    assert text(lang, "ui.line.lent", due_date=due[0][0]) in lent.inner_text()
    title = demo.db("SELECT title FROM items WHERE barcode = ?", E["reference_item"])[0][0]
    assert text(lang, "circ.reason.item_not_for_loan", title=title) in refused.inner_text()
    # The screen said "lent" and the tag says so too: the flag was written before.
    assert afi(demo, book) == "0xC2"
    assert afi(demo, E["reference_item"]) == "0x07"
    check_screen(page, f"session-lent-{lang}")
    before = demo.db("SELECT coalesce(sum(value), 0) FROM daily_stats"
                     " WHERE metric = 'rating.4'")[0][0]
    page.click("#finish")
    screen(page, "done")
    page.wait_for_selector("#receipt.receipt-printed")
    assert text(lang, "ui.receipt.printed") in page.inner_text("#receipt")
    check_screen(page, f"done-{lang}")
    page.click("[data-score='4']")
    page.wait_for_selector("#rated")
    after = demo.db("SELECT sum(value) FROM daily_stats WHERE metric = 'rating.4'")[0][0]
    assert after == before + 1
    page.click("#dismiss")
    screen(page, "idle")


@pytest.mark.parametrize("lang", LANGS)
def test_a_blocked_patron_is_told_why_and_nothing_is_lent(
        demo: Demo, page: Any, lang: str) -> None:
    use(page, lang)
    demo.sim("card", "--card", E["blocked_patron"])
    screen(page, "session")
    page.wait_for_selector("#account-problem")
    assert text(lang, "ui.session.blocked") in page.inner_text("#account-problem")
    (book,) = demo.fresh_items(1)
    demo.sim("place", book)
    refused = line(page, book, "not_lent")
    assert text(lang, "ui.state.not_lent") in refused.inner_text()
    assert afi(demo, book) == "0x07"
    check_screen(page, f"session-blocked-{lang}")


@pytest.mark.parametrize("lang", LANGS)
def test_a_book_on_hold_for_another_reader_is_refused(demo: Demo, page: Any, lang: str) -> None:
    use(page, lang)
    demo.sim("card", "--card", E["small_fines_patron"])
    screen(page, "session")
    demo.sim("place", E["held_item"])
    refused = line(page, E["held_item"], "not_lent")
    title = demo.db("SELECT title FROM items WHERE barcode = ?", E["held_item"])[0][0]
    assert text(lang, "circ.reason.item_on_hold_for_other", title=title) in refused.inner_text()
    assert not demo.on_loan(E["held_item"])


@pytest.mark.parametrize("lang", LANGS)
def test_a_security_flag_that_does_not_stick_is_not_reported_lent(
        demo: Demo, page: Any, lang: str) -> None:
    use(page, lang)
    demo.sim("card", "--card", E["student_patron"])
    screen(page, "session")
    demo.kiosk("sim", "reader", "fault", "afi_not_stick")
    (book,) = demo.fresh_items(1)
    demo.sim("place", book)
    refused = line(page, book, "not_lent")
    assert page.query_selector(f"#lines li[data-barcode='{book}'][data-state=lent]") is None
    title = demo.db("SELECT title FROM items WHERE barcode = ?", book)[0][0]
    assert text(lang, "daemon.book.not_secured", title=title) in refused.inner_text()
    # The loan was undone: the book is not on loan in the cache.
    assert not demo.on_loan(book)
    check_screen(page, f"session-afi-failed-{lang}")


@pytest.mark.parametrize("lang", LANGS)
def test_printer_out_of_paper_says_the_loans_are_recorded_and_lists_them(
        demo: Demo, page: Any, lang: str) -> None:
    use(page, lang)
    demo.sim("printer", "paper-out")
    page.wait_for_selector(".alert")
    demo.sim("card", "--card", E["elderly_patron"])
    screen(page, "session")
    (book,) = demo.fresh_items(1)
    demo.sim("place", book)
    line(page, book, "lent")
    page.click("#finish")
    screen(page, "done")
    page.wait_for_selector("#receipt.receipt-failed")
    assert text(lang, "ui.receipt.failed") in page.inner_text("#receipt")
    line(page, book, "lent", where="#summary")
    check_screen(page, f"done-printer-failed-{lang}")


@pytest.mark.parametrize("lang", LANGS)
def test_reader_unplugged_mid_session_is_shown_and_nothing_is_half_done(
        demo: Demo, page: Any, lang: str) -> None:
    use(page, lang)
    demo.sim("card", "--card", E["child_patron"])
    screen(page, "session")
    demo.kiosk("sim", "reader", "unplug")
    down = text(lang, "ui.offline.tag_reader")
    alert(page, down)
    check_screen(page, f"session-reader-unplugged-{lang}")
    demo.kiosk("sim", "reader", "replug")
    alert(page, down, shown=False)


# -- returning, renewing -----------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_return_needs_no_card_and_the_flag_is_set_back(
        demo: Demo, page: Any, lang: str) -> None:
    (book,) = demo.fresh_items(1)
    demo.kiosk("circ", "checkout", "--card", E["borrower_patron"], "--item", book)
    use(page, lang)
    page.click("#start-return")
    screen(page, "session")
    assert page.inner_text("h1") == text(lang, "ui.session.returning")
    demo.sim("place", book)
    returned = line(page, book, "returned")
    assert text(lang, "ui.line.returned") in returned.inner_text()
    assert afi(demo, book) == "0x07"
    assert not demo.on_loan(book)
    check_screen(page, f"session-return-{lang}")
    page.click("#finish")
    screen(page, "done")


@pytest.mark.parametrize("lang", LANGS)
def test_my_loans_lists_due_dates_and_renews(demo: Demo, page: Any, lang: str) -> None:
    use(page, lang)
    demo.sim("card", "--card", E["borrower_patron"])
    screen(page, "session")
    page.click("#tab-loans")
    page.wait_for_selector("#loans li")
    check_screen(page, f"session-my-loans-{lang}")
    loans = page.query_selector_all("#loans li")
    barcodes = [li.get_attribute("data-barcode") for li in loans]
    open_loans = demo.db(
        "SELECT i.barcode, l.due_date FROM loans l JOIN items i ON i.id = l.item_id"
        " JOIN patrons p ON p.id = l.patron_id WHERE p.card_number = ?"
        " AND l.returned_at IS NULL ORDER BY l.renewals, i.barcode", E["borrower_patron"])
    assert sorted(barcodes) == sorted(b for b, _ in open_loans)
    for barcode, due in open_loans:
        shown = page.inner_text(f"#loans li[data-barcode='{barcode}']")
        assert due in shown
    barcode, due = open_loans[0]
    page.click(f"[data-renew='{barcode}']")
    page.wait_for_selector(f"#loans li[data-barcode='{barcode}'] [role=status]")
    after = demo.db("SELECT l.due_date FROM loans l JOIN items i ON"
                    " i.id = l.item_id WHERE i.barcode = ? AND l.returned_at IS NULL", barcode)
    status = page.inner_text(f"#loans li[data-barcode='{barcode}'] [role=status]")
    if after[0][0] != due:  # renewed: the new date is on the screen
        page.wait_for_function(
            f"document.querySelector(\"#loans li[data-barcode='{barcode}']\").innerText"
            f".includes({json.dumps(after[0][0])})")
    else:  # refused (renewal limit, a hold...): the reason is shown
        assert status.strip() and status != text(lang, "ui.error")


# -- sessions ----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_a_new_card_starts_a_new_session_and_hides_the_first_patrons_books(
        demo: Demo, page: Any, lang: str) -> None:
    use(page, lang)
    demo.sim("card", "--card", E["latin_name_patron"])
    screen(page, "session")
    (book,) = demo.fresh_items(1)
    demo.sim("place", book)
    line(page, book, "lent")
    first = page.inner_text("h1")
    demo.kiosk("sim", "card", "remove")
    demo.sim("card", "--card", E["rare_name_patron"])
    page.wait_for_function(f"document.querySelector('h1').innerText !== {json.dumps(first)}")
    assert page.query_selector(f"#lines li[data-barcode='{book}']") is None


@pytest.mark.parametrize("lang", LANGS)
def test_inactivity_warns_then_ends_the_session_without_asking_for_a_rating(
        quick: Demo, browser: Any, lang: str) -> None:
    for page in _open(quick, browser):
        use(page, lang)
        page.click("#start-return")
        screen(page, "session")
        page.wait_for_selector("#still-here", timeout=15_000)
        assert text(lang, "ui.warning.title") in page.inner_text("#dialog")
        check_screen(page, f"session-warning-{lang}")
        page.click("#still-here")
        page.wait_for_selector("#overlay", state="hidden")
        screen(page, "session")
        # Nothing more happens: the warning comes back, then the session ends.
        screen(page, "done", timeout=30_000)
        assert page.inner_text("h1") == text(lang, "ui.done.timeout")
        assert page.query_selector("#rating") is None


# -- accessibility tools ----------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_large_text_high_contrast_and_spoken_prompts(demo: Demo, page: Any, lang: str) -> None:
    use(page, lang)
    size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    page.click("#large")
    page.click("#contrast")
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") > size * 1.3
    assert page.get_attribute("#large", "aria-pressed") == "true"
    assert text(lang, "ui.tools.on") in page.inner_text("#large")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(0, 0, 0)"
    check_screen(page, f"idle-large-contrast-{lang}")
    with page.expect_request("**/api/speak") as spoken:
        page.click("#speech")
    assert json.loads(spoken.value.post_data) == {"text": text(lang, "ui.tools.speech_on"),
                                                  "lang": lang}
    with page.expect_request("**/api/speak") as spoken:
        demo.sim("card", "--card", E["ok_patron"])
    said = json.loads(spoken.value.post_data)
    hello = text(lang, "ui.session.hello", name="")
    assert said["text"].startswith(hello) and said["lang"] == lang


def test_a_right_to_left_language_mirrors_the_page(demo: Demo, page: Any) -> None:
    """A language is a catalogue folder: one with direction = "rtl" turns the page around
    without code. The page is given such a catalogue (a copy of English marked rtl)."""
    rtl = {**texts("zh-CN"), **texts("en"), "ui.idle.heading": "مرحبا"}
    page.route("**/api/languages", lambda route: route.fulfill(json={
        "languages": [{"code": "zh-CN", "name": "简体中文", "direction": "ltr"},
                      {"code": "ar", "name": "العربية", "direction": "rtl"}],
        "default": "zh-CN"}))
    page.route("**/api/texts/ar", lambda route: route.fulfill(json={
        "lang": "ar", "direction": "rtl", "texts": rtl}))
    page.reload()
    page.wait_for_selector("#main[data-screen=idle]")
    page.click("[data-lang=ar]")
    page.wait_for_function("document.documentElement.dir === 'rtl'")
    assert page.inner_text("h1") == "مرحبا"
    brand = page.query_selector("#brand").bounding_box()
    tools = page.query_selector("#tools").bounding_box()
    assert brand["x"] > tools["x"]  # the brand moved to the right, the tools to the left
    check_screen(page, "idle-rtl")


def test_the_next_patron_starts_in_the_default_language_and_plain_display(
        demo: Demo, page: Any) -> None:
    english(page)
    page.click("#large")
    page.click("#start-return")
    screen(page, "session")
    page.click("#finish")
    screen(page, "done")
    page.click("#dismiss")
    screen(page, "idle")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    assert page.get_attribute("#large", "aria-pressed") == "false"


def test_the_server_refuses_foreign_hosts_and_form_posts(demo: Demo) -> None:
    import requests

    assert requests.get(demo.url + "api/view", timeout=5).status_code == 200
    foreign = requests.get(demo.url + "api/view", headers={"Host": "evil.example"}, timeout=5)
    assert foreign.status_code == 400
    form = requests.post(demo.url + "api/press", data={"action": "finish"}, timeout=5)
    assert form.status_code == 415
    bad = requests.post(demo.url + "api/rating", json={"session": 1, "score": 9}, timeout=5)
    assert bad.status_code == 400
    assert requests.get(demo.url + "api/texts/xx", timeout=5).status_code == 404


@pytest.mark.parametrize("lang", LANGS)
def test_a_book_of_another_branch_says_where_it_goes_back_to(
        demo: Demo, page: Any, lang: str) -> None:
    book, branch = demo.other_branch_item()
    demo.kiosk("circ", "checkout", "--card", E["ok_patron"], "--item", book)
    use(page, lang)
    page.click("#start-return")
    screen(page, "session")
    demo.sim("place", book)
    returned = line(page, book, "returned")
    assert text(lang, "circ.route.transit", branch=branch) in returned.inner_text()
    check_screen(page, f"session-return-other-branch-{lang}")


# -- lockers, the entrance -------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_hold_pickup_opens_the_locker_and_lends_only_once_the_door_opened(
        demo: Demo, page: Any, lang: str) -> None:
    card = E["ready_hold_patron"]
    hold, slot = demo.ready_hold(card)
    use(page, lang)
    demo.sim("card", "--card", card)
    screen(page, "session")
    page.click("#tab-holds")
    page.wait_for_selector(f"#holds li[data-hold='{hold}']")
    assert text(lang, "ui.holds.where", slot=slot) in page.inner_text("#holds")
    check_screen(page, f"session-holds-{lang}")
    # First the lock jams: the hold stays ready and the patron is told.
    demo.kiosk("sim", "door", "jam", "--name", slot)
    page.click(f"[data-pickup='{hold}']")
    failed = page.wait_for_selector(f"#lines li[data-key='hold:{hold}'][data-state=not_lent]",
                                    timeout=15_000)
    title = demo.db("SELECT i.title FROM holds h JOIN items i ON i.id = h.item_id"
                    " WHERE h.id = ?", hold)[0][0]
    assert text(lang, "daemon.pickup.not_opened", slot=slot, title=title) in \
        failed.inner_text()
    assert demo.db("SELECT status FROM holds WHERE id = ?", hold) == [("ready",)]
    check_screen(page, f"session-locker-jammed-{lang}")
    # Cleared, tried again: the door opens, then the book is lent.
    demo.kiosk("sim", "door", "clear", "--name", slot)
    page.click("#tab-holds")
    page.click(f"[data-pickup='{hold}']")
    lent = page.wait_for_selector(f"#lines li[data-key='hold:{hold}'][data-state=lent]",
                                  timeout=15_000)
    assert demo.db("SELECT status FROM holds WHERE id = ?", hold) == [("fulfilled",)]
    due = demo.db("SELECT l.due_date FROM loans l JOIN holds h ON h.item_id = l.item_id"
                  " WHERE h.id = ? AND l.returned_at IS NULL", hold)[0][0]
    assert text(lang, "ui.line.lent", due_date=due) in lent.inner_text()
    # The picked-up hold is gone from the patron's list.
    page.wait_for_function(
        "fetch('/api/view').then(r => r.json()).then(v => v.session && v.session.account"
        f" && !v.session.account.holds.some(h => h.hold_id === {hold}))", polling=300)
    if page.query_selector("#tab-holds") is not None:
        page.click("#tab-holds")
        assert page.query_selector(f"[data-pickup='{hold}']") is None
    demo.kiosk("sim", "door", "close", "--name", slot)


@pytest.mark.parametrize("lang", LANGS)
def test_night_entry_opens_for_a_valid_card_and_says_why_not_for_a_blocked_one(
        demo: Demo, page: Any, lang: str) -> None:
    use(page, lang)
    visits = demo.db("SELECT coalesce(sum(value), 0) FROM daily_stats"
                     " WHERE metric = 'visits'")[0][0]
    demo.sim("entry-card", "--card", E["ok_patron"])
    alert(page, text(lang, 'ui.entry.ok'))
    assert demo.db("SELECT sum(value) FROM daily_stats WHERE metric = 'visits'")[0][0] \
        == visits + 1
    demo.kiosk("sim", "door", "close")
    demo.kiosk("sim", "entry-card", "remove")
    demo.sim("entry-card", "--card", E["blocked_patron"])
    refused = text(lang, "daemon.entry.patron_blocked")
    alert(page, refused)
    check_screen(page, f"idle-entry-refused-{lang}")
    demo.kiosk("sim", "entry-card", "remove")


@pytest.mark.parametrize("lang", LANGS)
def test_a_door_left_open_shows_an_alarm_until_it_is_closed(
        demo: Demo, page: Any, lang: str) -> None:
    use(page, lang)
    demo.kiosk("sim", "door", "open")
    alarm = text(lang, "ui.door.alarm")
    alert(page, alarm)
    check_screen(page, f"idle-door-alarm-{lang}")
    demo.kiosk("sim", "door", "close")
    alert(page, alarm, shown=False)


# -- the PIN ---------------------------------------------------------------------------------


def type_pin(page: Any, pin: str) -> None:
    for digit in pin:
        page.click(f".keypad [data-key='{digit}']")
    assert page.inner_text("#pin-dots .dots").strip() == "●" * len(pin)  # never the digits
    page.click("#pin-ok")


@pytest.mark.parametrize("lang", LANGS)
def test_a_pin_is_asked_before_lending_and_the_books_wait_for_it(
        demo: Demo, page: Any, lang: str) -> None:
    card = E["hold_patron"]
    demo.set_pin(card, "2468")
    use(page, lang)
    demo.sim("card", "--card", card)
    screen(page, "session")
    page.wait_for_selector("#pin-dots")
    assert text(lang, "daemon.pin.enter", attempts=3) in page.inner_text("#pin-message")
    check_screen(page, f"session-pin-{lang}")
    (book,) = demo.fresh_items(1)
    demo.sim("place", book)
    time.sleep(1.0)  # time enough to lend, were it allowed
    assert not demo.on_loan(book)
    type_pin(page, "1111")
    wrong = text(lang, "daemon.pin.wrong", left=2)
    page.wait_for_function("document.querySelector('#pin-message').innerText.includes("
                           f"{json.dumps(wrong)})")
    type_pin(page, "2468")
    line(page, book, "lent")
    assert afi(demo, book) == "0xC2"


@pytest.mark.parametrize(("lang", "who"), [("zh-CN", "max_loans_patron"),
                                           ("en", "lost_card_patron")])
def test_too_many_wrong_pins_lock_the_card_out(demo: Demo, page: Any, lang: str,
                                               who: str) -> None:
    use(page, lang)
    card = E[who]
    demo.set_pin(card, "1357")
    demo.sim("card", "--card", card)
    screen(page, "session")
    for _ in range(3):
        page.wait_for_selector("#pin-ok")
        type_pin(page, "0000")
        time.sleep(0.3)
    screen(page, "done")
    locked = text(lang, "daemon.pin.locked", minutes=15)
    assert locked in page.inner_text("#done-message")
    check_screen(page, f"done-pin-locked-{lang}")
    # The card stays locked out: the next tap ends at once, even with the right PIN known.
    demo.kiosk("sim", "card", "remove")
    page.click("#dismiss")
    screen(page, "idle")
    use(page, lang)
    demo.sim("card", "--card", card)
    page.wait_for_selector("#done-message")
    assert page.query_selector("#pin-ok") is None
