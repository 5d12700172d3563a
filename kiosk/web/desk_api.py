"""The staff desk's requests (see :mod:`kiosk.daemon.desk`), served beside the touchscreen.

``POST /api/desk/ACTION`` with a JSON object; every action but ``pin`` and ``cancel`` needs a
signed-in staff member (403 otherwise), so no patron session reaches them:

``pin``       ``{"pin"}``: the PIN of the staff card on the reader
``cancel``    the staff card's PIN prompt goes away
``sign_out``  the staff member signs out
``page``      ``{"page": "home"|"register"|"lend"}``
``stop``      ``{"stop": NAME|null}``: the van's current stop (one of ``[desk] stops``)
``patron``    ``{"card"}``: a patron card number typed in, as if the card was tapped
``item``      ``{"barcode"}``: a book's barcode typed in (lent to the card in session, else
              returned); its tag is not written
``override``  ``{"barcode", "reason"}``: lend a refused book anyway, with a reason
``register``  the registration form (``name``, ``id_type``, ``id_number``, ``phone``,
              ``village``, ``address``, ``patron_type``, ``guardian_name``,
              ``guardian_relation``, ``consent``: true): 422 with every problem, or 200
              and the desk waits for a blank card on the reader
``register_cancel``  the form is dropped
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import JSONResponse, Response

from kiosk.daemon.desk import Desk, DeskError
from sync.pins import valid_pin

Handler = Callable[[Desk, dict[str, Any]], Awaitable[dict[str, Any] | None]]


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise DeskError("staff.desk.bad_request", status=400, field=name)
    return value


async def _pin(desk: Desk, body: dict[str, Any]) -> dict[str, Any]:
    pin = _text(body, "pin")
    if not valid_pin(pin):
        raise DeskError("staff.desk.pin_format", status=400)
    answer = await desk.enter_pin(pin)
    if not answer["ok"]:
        raise DeskError(answer["message_key"], status=401, **answer["params"])
    return answer


async def _cancel(desk: Desk, body: dict[str, Any]) -> None:
    desk.cancel_pin()


async def _sign_out(desk: Desk, body: dict[str, Any]) -> None:
    desk.require_staff()
    await desk.sign_out()


async def _page(desk: Desk, body: dict[str, Any]) -> None:
    desk.show(_text(body, "page"))


async def _stop(desk: Desk, body: dict[str, Any]) -> None:
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        raise DeskError("staff.desk.bad_request", status=400, field="stop")
    await desk.choose_stop(stop)


async def _patron(desk: Desk, body: dict[str, Any]) -> None:
    await desk.patron(_text(body, "card"))


async def _item(desk: Desk, body: dict[str, Any]) -> None:
    await desk.typed_book(_text(body, "barcode"))


async def _override(desk: Desk, body: dict[str, Any]) -> None:
    await desk.override(_text(body, "barcode"), _text(body, "reason"))


async def _register(desk: Desk, body: dict[str, Any]) -> dict[str, Any]:
    answer = await desk.register(body)
    if not answer["ok"]:
        raise DeskError("registration.refused", status=422, problems=answer["problems"])
    return answer


async def _register_cancel(desk: Desk, body: dict[str, Any]) -> None:
    desk.cancel_registration()


ACTIONS: dict[str, Handler] = {
    "pin": _pin, "cancel": _cancel, "sign_out": _sign_out, "page": _page, "stop": _stop,
    "patron": _patron, "item": _item, "override": _override, "register": _register,
    "register_cancel": _register_cancel,
}


async def handle(desk: Desk | None, action: str, body: dict[str, Any] | Response
                 ) -> Response:
    """Answer one desk request (``body`` is the parsed JSON, or the parser's refusal)."""
    if isinstance(body, Response):
        return body
    handler = ACTIONS.get(action)
    if handler is None or desk is None:
        return JSONResponse({"error": "not_found", "message_key": "staff.desk.bad_request"},
                            status_code=404)
    try:
        answer = await handler(desk, body)
    except DeskError as exc:
        return JSONResponse({"error": exc.message_key, "message_key": exc.message_key,
                             "params": exc.params}, status_code=exc.status)
    return JSONResponse({"done": action, **(answer or {})})
