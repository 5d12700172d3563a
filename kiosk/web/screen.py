"""What the touchscreen shows, kept from the daemon's published events (no I/O).

The page never works anything out for itself: the server sends it the whole :meth:`Screen.view`
after every change, and the page draws it. A page that reloads, reconnects or switches
language draws the same thing again, and two screens (the kiosk and a technician's browser)
always agree. Texts are message keys with their parameters, drawn in the page's language.

Screens: ``idle`` (attract: tap your card, or return books), ``session`` (a patron's card,
or anonymous returns: the lines of the books placed), ``done`` (the session ended: the
receipt's fate, the lines once more, and the rating question), back to ``idle`` after
``done_s`` seconds or a tap. ``desk`` (not None while a staff card is asking for its PIN or
staff are signed in) is the staff desk's own view, drawn instead of the patron's screens.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

# A line's state on the screen, from the daemon's events. "working" until the daemon says
# more; "lent" only comes from the "lent" event, which the daemon publishes after the tag's
# security flag was written and read back.
LINE_EVENTS = {
    "lent": "lent",
    "not_lent": "not_lent",
    "returned": "returned",
    "not_returned": "not_returned",
    "hand_to_staff": "hand_to_staff",
    "unreadable": "unreadable",
    "picked_up": "lent",
    "pickup_failed": "not_lent",
}
DONE_S = 20.0


@dataclass
class Line:
    key: str  # the tag's UID, or "hold:N" for a pickup
    barcode: str | None
    state: str = "working"
    title: str = ""
    due_date: str = ""
    message_key: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    staff: dict[str, Any] | None = None  # a "hand to staff" message on top of the state

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "barcode": self.barcode, "state": self.state,
                "title": self.title, "due_date": self.due_date,
                "message_key": self.message_key, "params": self.params,
                "notes": self.notes, "staff": self.staff}


class Screen:
    """Feed every published event to :meth:`feed`; :meth:`view` is what to draw. ``account``
    is what the server looked up about the card holder (name, loans, ready holds)."""

    def __init__(self, *, done_s: float = DONE_S) -> None:
        self.done_s = done_s
        self.version = 0
        self.daemon: dict[str, Any] = {"state": "starting", "offline": []}
        self.printer_problems: list[str] = []
        self.door_alarm = False
        self.session: dict[str, Any] | None = None
        self.lines: dict[str, Line] = {}
        self.warning: dict[str, Any] | None = None
        self.done: dict[str, Any] | None = None
        self.entry: dict[str, Any] | None = None
        self.desk: dict[str, Any] | None = None  # the staff desk (kiosk.daemon.desk)
        self._done_at: float | None = None

    # -- events ----------------------------------------------------------------------------

    def feed(self, event: dict[str, Any]) -> bool:
        """Take one bus event; True when the view changed."""
        kind = event.get("event")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None and kind in LINE_EVENTS:
            handler = self._on_line
        if handler is None:
            return False
        changed = handler(event)
        if changed is not False:
            self.version += 1
            return True
        return False

    def set_account(self, session: int, account: dict[str, Any]) -> bool:
        """The card holder's account, looked up when the session started."""
        if self.session is None or self.session["id"] != session:
            return False
        self.session["account"] = account
        self.version += 1
        return True

    def set_mode(self, mode: str) -> bool:
        if self.session is None or self.session["mode"] == mode:
            return False
        self.session["mode"] = mode
        self.warning = None
        self.version += 1
        return True

    def still_here(self) -> bool:
        if self.warning is None:
            return False
        self.warning = None
        self.version += 1
        return True

    def rated(self, session: int) -> bool:
        done = self.done
        if done is None or done["session"] != session or done["rated"] or \
                not done["ask_rating"]:
            return False
        self.done["rated"] = True
        self.version += 1
        return True

    def tick(self, now: float) -> bool:
        """Leave the "done" screen once it has been shown for ``done_s`` seconds."""
        shown = self._done_at
        if self.done is not None and shown is not None and now - shown >= self.done_s:
            return self.dismiss()
        return False

    def dismiss(self) -> bool:
        if self.done is None:
            return False
        self.done, self._done_at = None, None
        self.version += 1
        return True

    def _on_state(self, event: dict[str, Any]) -> None:
        self.daemon = {"state": event.get("state", ""), "offline": list(event.get("offline") or [])}

    def _on_device(self, event: dict[str, Any]) -> None:
        offline = [d for d in self.daemon["offline"] if d != event.get("device")]
        if not event.get("online"):
            offline.append(str(event.get("device")))
        self.daemon = {**self.daemon, "offline": offline}

    def _on_printer(self, event: dict[str, Any]) -> None:
        self.printer_problems = list(event.get("problems") or [])

    def _on_door_alarm(self, event: dict[str, Any]) -> None:
        self.door_alarm = True

    def _on_door_alarm_cleared(self, event: dict[str, Any]) -> None:
        self.door_alarm = False

    def _on_session_started(self, event: dict[str, Any]) -> None:
        self.session = {"id": event.get("session"), "mode": event.get("mode", "lend"),
                        "card": event.get("card"), "account": None,
                        "holds": list(event.get("holds") or []), "pin": None,
                        "pin_locked": None}
        self.lines, self.warning, self.done, self._done_at = {}, None, None, None

    def _on_loan_committed(self, event: dict[str, Any]) -> bool:
        return self._line(event) is not None

    def _on_line(self, event: dict[str, Any]) -> bool:
        line = self._line(event)
        if line is None:
            return False
        what = str(event.get("event"))
        params = dict(event.get("params") or {})
        if what == "hand_to_staff":
            line.staff = {"message_key": event.get("message_key", ""), "params": params}
            if line.state == "working":
                line.state = "hand_to_staff"
        else:
            # The latest word counts: a book lifted and placed again after a failure, or a
            # locker tried again after it jammed, may well succeed the second time.
            line.state = LINE_EVENTS[what]
            line.message_key = str(event.get("message_key") or "")
            line.params = params
        if what == "pickup_failed" and not line.title:
            line.title = self._hold_title(event.get("hold_id"))
        line.title = str(params.get("title") or line.title or line.barcode or "")
        line.due_date = str(params.get("due_date") or line.due_date)
        line.notes = list(event.get("notes") or line.notes)
        self.warning = None
        return True

    def _on_warning(self, event: dict[str, Any]) -> bool:
        if not self._ours(event):
            return False
        self.warning = {"message_key": event.get("message_key"),
                        "params": dict(event.get("params") or {}), "mono": event.get("mono")}
        return True

    def _on_session_ended(self, event: dict[str, Any]) -> bool:
        if not self._ours(event):
            return False
        receipts = int(event.get("receipts") or 0)
        self.done = {"session": self.session["id"], "reason": event.get("reason"),
                     "card": self.session["card"], "mode": self.session["mode"],
                     "lines": [line.as_dict() for line in self.lines.values()],
                     "receipt": "printing" if receipts else "none", "receipt_problem": None,
                     "rated": False, "message": self.session.get("pin_locked"),
                     # Nobody is there to rate a session that timed out or was cut short.
                     "ask_rating": event.get("reason") == "finished"}
        self._done_at = event.get("mono")
        self.session, self.lines, self.warning = None, {}, None
        return True

    def _on_receipt_printed(self, event: dict[str, Any]) -> bool:
        if self.done is None or self.done["session"] != event.get("session"):
            return False
        if self.done["receipt"] != "failed":
            self.done["receipt"] = "printed"
        return True

    def _on_receipt_failed(self, event: dict[str, Any]) -> bool:
        if self.done is None or self.done["session"] != event.get("session"):
            return False
        self.done["receipt"] = "failed"
        self.done["receipt_problem"] = {"message_key": event.get("message_key"),
                                        "params": dict(event.get("params") or {})}
        return True

    def _on_pin_needed(self, event: dict[str, Any]) -> bool:
        if not self._ours(event):
            return False
        self.session["pin"] = {"message_key": event.get("message_key"),
                               "params": dict(event.get("params") or {})}
        return True

    def _on_pin_ok(self, event: dict[str, Any]) -> bool:
        if not self._ours(event):
            return False
        self.session["pin"] = None
        return True

    def _on_pin_locked(self, event: dict[str, Any]) -> bool:
        if not self._ours(event):
            return False
        self.session["pin_locked"] = {"message_key": event.get("message_key"),
                                      "params": dict(event.get("params") or {})}
        return True

    def _on_locker_opened(self, event: dict[str, Any]) -> bool:
        line = self._line(event)
        if line is None:
            return False
        line.message_key = "ui.holds.opened"
        line.params = {"slot": event.get("slot") or ""}
        return True

    def _on_desk(self, event: dict[str, Any]) -> None:
        self.desk = event.get("desk")

    def _on_entry(self, event: dict[str, Any]) -> None:
        self.entry = {"ok": True, "mono": event.get("mono")}

    def _on_entry_refused(self, event: dict[str, Any]) -> None:
        """A card refused at the entrance, or a door that did not open for it."""
        self.entry = {"ok": False, "message_key": event.get("message_key"),
                      "params": dict(event.get("params") or {}), "mono": event.get("mono")}

    _on_entry_failed = _on_entry_refused

    def _ours(self, event: dict[str, Any]) -> bool:
        """Whether ``event`` belongs to the session on the screen."""
        return self.session is not None and event.get("session") == self.session["id"]

    def _hold_title(self, hold_id: object) -> str:
        holds = self.session["holds"] if self.session else []
        return next((str(h.get("title") or "") for h in holds if h.get("hold_id") == hold_id),
                    "")

    def _line(self, event: dict[str, Any]) -> Line | None:
        if not self._ours(event):
            return None
        hold = event.get("hold_id")
        key = f"hold:{hold}" if hold is not None else str(event.get("uid") or "")
        if not key:
            return None
        line = self.lines.get(key)
        if line is None:
            line = self.lines[key] = Line(key, event.get("barcode"))
        elif event.get("barcode") and not line.barcode:
            line.barcode = event.get("barcode")
        return line

    # -- the view --------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        if self.session is not None:
            screen = "session"
        elif self.done is not None:
            screen = "done"
        else:
            screen = "idle"
        session = None
        if self.session is not None:
            session = {**self.session, "lines": [line.as_dict() for line in self.lines.values()],
                       "warning": self.warning}
        return copy.deepcopy({
            "version": self.version, "screen": screen, "daemon": self.daemon,
            "printer_problems": self.printer_problems, "door_alarm": self.door_alarm,
            "session": session, "done": self.done, "entry": self.entry, "desk": self.desk,
        })
