"""The desk on the van's laptop (``[desk] laptop_listen``): served over TLS only, the desk
only, nothing of the patrons' kiosk until staff sign in at the kiosk, and then the
registration form filled in on the laptop (in real headless Chromium) while the card is
written at the kiosk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sync.sample import EDGE_CASES
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.sip2_server import make_tls
from tests.test_desk_ui import VAN_PIN, VAN_STAFF, desk_post, good_form
from tests.test_web_ui import Demo


class LaptopDemo(Demo):
    def __init__(self, folder: Any) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        _, self.cert = make_tls(folder)
        super().__init__(folder, extra=(
            '[desk]\nlaptop_listen = "127.0.0.1"\nlaptop_port = 0\n'
            f'laptop_cert = "{self.cert}"\nlaptop_key = "{folder / "ils.key"}"\n'))
        status = self.sim_status()
        self.laptop = status["ui"]["laptop"]["url"]

    def sim_status(self) -> Any:
        import json

        return json.loads(self.kiosk("status", "--json").stdout)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.laptop + path, verify=str(self.cert), timeout=10, **kw)

    def post(self, path: str, body: dict[str, Any], **kw: Any) -> requests.Response:
        return requests.post(self.laptop + path, json=body, verify=str(self.cert), timeout=10,
                             **kw)


@pytest.fixture(scope="module")
def demo() -> Iterator[LaptopDemo]:
    with LaptopDemo.started("lap-") as running:
        yield running


@pytest.fixture(autouse=True)
def _nobody_signed_in(demo: LaptopDemo) -> Iterator[None]:
    desk_post(demo, "sign_out")
    demo.reset()
    yield
    desk_post(demo, "sign_out")
    demo.reset()


def sign_in_at_the_kiosk(demo: LaptopDemo) -> None:
    demo.sim("card", "--card", VAN_STAFF)
    for _ in range(50):
        if desk_post(demo, "pin", pin=VAN_PIN).status_code == 200:
            break
    demo.sim("card", "remove")


def test_the_laptop_desk_is_tls_only_and_shows_nothing_before_sign_in(demo: LaptopDemo
                                                                      ) -> None:
    assert demo.laptop.startswith("https://127.0.0.1:")
    demo.sim("card", "--card", str(EDGE_CASES["ok_patron"]))  # a patron at the kiosk
    view = demo.get("api/view").json()
    assert view["screen"] == "laptop" and view["session"] is None and view["desk"] is None
    assert demo.get("api/languages").json()["laptop"] is True
    # The patron's requests do not exist there; the desk's need a signed-in staff member.
    assert demo.post("api/press", {"action": "finish"}).status_code in (404, 405)
    assert demo.post("api/desk/page", {"page": "register"}).status_code == 403
    # Plain HTTP to the TLS port gets nothing; an unknown Host is refused.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(demo.laptop.replace("https", "http") + "api/view", timeout=5)
    assert demo.get("api/view", headers={"Host": "evil.example"}).status_code == 400
    # The kiosk's own loopback page never answers the laptop's name either.
    assert requests.get(demo.url + "api/view", headers={"Host": "evil.example"},
                        timeout=5).status_code == 400


def test_staff_fill_the_form_on_the_laptop_and_the_card_is_written_at_the_kiosk(
        demo: LaptopDemo) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = chromium.new_context(ignore_https_errors=True, locale="zh-CN",
                                       viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(demo.laptop)
        page.wait_for_selector("#laptop-sign-in")
        sign_in_at_the_kiosk(demo)
        page.wait_for_selector("#desk-who")
        page.click("#desk-tab-register")
        page.wait_for_selector("#reg-form")
        good_form(page, "阿依古丽·买买提", "110105198506120034")
        page.click("#reg-submit")
        page.wait_for_selector("#reg-card[data-state=waiting_card]")
        demo.sim("card", "04C0FFEE123456")
        page.wait_for_selector("#reg-issued", timeout=15_000)
        number = page.inner_text("#reg-card-number")
        assert demo.db("SELECT name, card_uid FROM patrons WHERE card_number = ?", number) == [
            ("阿依古丽·买买提", "04C0FFEE123456")]
        # Signing out at the laptop: it goes back to "sign in at the kiosk".
        page.click("#desk-sign-out")
        page.wait_for_selector("#laptop-sign-in")
        context.close()
        chromium.close()
    assert errors == []
