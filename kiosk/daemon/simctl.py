"""``kiosk sim ...`` inside the daemon: acting on the simulated devices it runs.

The simulated world keeps its physics: a book's tag keeps its AFI while it is off the pad
(lend a book, lift it, put it back: it still says "on loan"), and a book placed for the first
time carries the flag the catalogue implies (on loan if the cache has an open loan of it,
else on the shelf). Cards are placed through their card reader's worker (the kiosk's, or the
one outside the entrance), because the simulated MFRC522, like a real SPI bus, serves one
thread.
"""

from __future__ import annotations

import hashlib
from typing import Any

from drivers import iso14443a
from hardware.build import Devices
from hardware.security import SecurityPolicy
from hardware.sim.books import book_tag, uid_for
from kiosk.daemon import db
from kiosk.daemon.simverbs import DOOR_ACTIONS, PRINTER_ACTIONS, PRINTER_VERBS, READER_ACTIONS
from kiosk.daemon.workers import CardWorker, Worker


class SimError(Exception):
    """A ``sim`` request that cannot be carried out; ``code`` for scripts, ``message_key``
    and ``params`` for people."""

    def __init__(self, code: str, message_key: str, /, **params: Any) -> None:
        super().__init__(f"{code}: {params}")
        self.code = code
        self.message_key = message_key
        self.params = params


def card_uid(number: str) -> bytes:
    """A stable 7-byte UID (NXP, 0x04 ...) for a simulated card carrying ``number``."""
    return b"\x04" + hashlib.sha256(number.encode()).digest()[:6]


class SimControl:
    """The simulators of ``devices``; ``None`` where a device is real. ``entrance`` is the
    worker of the card reader outside the entrance, if the kiosk has one."""

    def __init__(self, devices: Devices, cards: CardWorker, writer: db.Writer,
                 security: SecurityPolicy, *, entrance: Worker | None = None) -> None:
        self.devices = devices
        self.cards = cards
        self.entrance = entrance
        self.writer = writer
        self.security = security
        self.off_pad: dict[str, Any] = {}  # barcode -> the virtual tag, while it is lifted

    def _sim(self, name: str) -> Any:
        """The simulator behind ``name``; SimError when the kiosk has no such device or it
        is a real one."""
        sims, d = self.devices.sims, self.devices
        role, sim, device = {
            "card": ("card_reader", sims.card_chip, d.card_reader),
            "entrance_card": ("entrance_reader", sims.entrance_chip, d.entrance_reader),
            "pad": ("tag_reader", sims.tag_pad, d.tag_reader),
            "reader": ("tag_reader", sims.tag_pad, d.tag_reader),
            "printer": ("printer", sims.printer, d.printer),
            "door": ("door", sims.entrance, d.door),
            "locker": ("lockers", sims.locker_doors, d.lockers)}[name]
        if device is None:
            raise SimError("no_device", "daemon.sim.no_device", device=role)
        if sim is None:
            raise SimError("not_simulated", "daemon.sim.not_simulated", device=role)
        return sim

    async def handle(self, args: dict[str, Any]) -> dict[str, Any]:
        """Carry out one ``sim`` request (``{"device": ..., "action": ..., ...}``)."""
        device = args.get("device")
        handler = {"card": self._card, "entrance_card": self._card,
                   "place": self._place, "remove": self._remove,
                   "door": self._door, "printer": self._printer, "reader": self._reader,
                   "show": self._show}.get(str(device))
        if handler is None:
            raise SimError("bad_arguments", "daemon.control.bad_arguments",
                           detail=f"no simulated device {device!r}")
        return await handler(args)

    # -- cards ---------------------------------------------------------------------------

    async def _card(self, args: dict[str, Any]) -> dict[str, Any]:
        """A card on the kiosk's reader (``device`` ``card``) or on the one outside the
        entrance (``entrance_card``)."""
        from hardware.sim.mfrc522 import VirtualCard

        entrance = args.get("device") == "entrance_card"
        chip = self._sim("entrance_card" if entrance else "card")
        reader = self.devices.entrance_reader if entrance else self.devices.card_reader
        worker = self.entrance if entrance else self.cards
        assert worker is not None and reader is not None
        if args.get("action") == "remove":
            removed = await worker.call(_clear_field, chip)
            return {"removed": removed}
        if args.get("action") == "fault":  # the card (or chip) misbehaves next time
            try:
                await worker.call(chip.inject, str(args.get("fault")),
                                  int(args.get("count") or 1))
            except ValueError as exc:
                raise SimError("bad_arguments", "daemon.control.bad_arguments",
                               detail=str(exc)) from None
            return {"fault": args.get("fault")}
        if args.get("action") == "clear_faults":
            await worker.call(chip.clear_faults)
            return {"faults": []}
        number, uid_hex = args.get("card_number"), args.get("uid")
        blocks = {}
        if number:
            try:
                blocks[reader.spec.card_block] = (  # type: ignore[attr-defined]
                    iso14443a.encode_card_number(str(number)))
            except ValueError as exc:
                raise SimError("bad_arguments", "daemon.control.bad_arguments",
                               detail=str(exc)) from None
            uid = card_uid(str(number))
        else:
            try:
                uid = bytes.fromhex(str(uid_hex))
                card = VirtualCard(uid)
            except ValueError as exc:
                raise SimError("bad_arguments", "daemon.control.bad_arguments",
                               detail=f"a card UID is 4, 7 or 10 bytes in hex: {exc}") from None
        card = VirtualCard(uid, blocks=blocks)

        def place() -> None:
            _clear_field(chip)
            chip.place(card)

        await worker.call(place)
        return {"uid": uid.hex().upper(), "card_number": number}

    # -- books ---------------------------------------------------------------------------

    async def _place(self, args: dict[str, Any]) -> dict[str, Any]:
        pad = self._sim("pad")
        barcodes = [str(b) for b in args.get("barcodes") or []]
        if not barcodes:
            raise SimError("bad_arguments", "daemon.control.bad_arguments",
                           detail="no barcodes given")
        placed = []
        for barcode in barcodes:
            tag = self.off_pad.pop(barcode, None)
            if tag is None:
                lent = await self.writer.run(self.writer.read, db.item_on_loan, barcode)
                afi = self.security.afi_on_loan if lent else self.security.afi_on_shelf
                tag = book_tag(barcode, afi=afi)
            try:
                pad.place(tag)
            except ValueError:
                raise SimError("already_on_pad", "daemon.sim.already_on_pad",
                               barcode=barcode) from None
            placed.append({"barcode": barcode, "uid": tag.uid.hex().upper(),
                           "afi": f"0x{tag.afi:02X}"})
        return {"placed": placed}

    async def _remove(self, args: dict[str, Any]) -> dict[str, Any]:
        pad = self._sim("pad")
        if args.get("all"):
            wanted = {tag.uid: None for tag in pad.tags}
        else:
            wanted = {uid_for(str(b)): str(b) for b in args.get("barcodes") or []}
        removed = []
        for uid, barcode in wanted.items():
            tag = pad.remove(uid)
            if tag is None:
                raise SimError("not_on_pad", "daemon.sim.not_on_pad", barcode=barcode)
            name = barcode or _barcode_of(tag)
            if name:
                self.off_pad[name] = tag
            removed.append({"barcode": name, "uid": uid.hex().upper()})
        return {"removed": removed}

    # -- doors, printer, reader ----------------------------------------------------------

    async def _door(self, args: dict[str, Any]) -> dict[str, Any]:
        action, name = args.get("action"), str(args.get("name") or "door")
        sim = self._sim("door" if name == "door" else "locker")
        if action not in DOOR_ACTIONS:
            raise SimError("bad_arguments", "daemon.control.bad_arguments",
                           detail=f"door actions: {', '.join(DOOR_ACTIONS)}")
        try:
            if action == "open":
                sim.open_by_hand(name)
            elif action == "close":
                sim.close_by_hand(name)
            elif action == "jam":
                sim.inject(name, "jammed")
            else:
                sim.clear(name)
        except ValueError as exc:
            raise SimError("bad_arguments", "daemon.control.bad_arguments",
                           detail=str(exc)) from None
        return {"door": name, "open": sim.is_open(name)}

    async def _printer(self, args: dict[str, Any]) -> dict[str, Any]:
        sim, action = self._sim("printer"), args.get("action")
        if action in PRINTER_ACTIONS:
            fault, on = PRINTER_ACTIONS[str(action)]
            sim.inject(fault, on)
        elif action == "unplug":
            sim.unplug()
        elif action == "replug":
            sim.replug()
        else:
            raise SimError("bad_arguments", "daemon.control.bad_arguments",
                           detail=f"printer actions: {', '.join(PRINTER_VERBS)}")
        return {"faults": sorted(sim.faults), "plugged": sim.plugged}

    async def _reader(self, args: dict[str, Any]) -> dict[str, Any]:
        sim, action = self._sim("reader"), args.get("action")
        if action == "unplug":
            sim.unplug()
        elif action == "replug":
            sim.replug()
        elif action == "fault":
            try:
                sim.inject(str(args.get("fault")), int(args.get("count") or 1))
            except ValueError as exc:
                raise SimError("bad_arguments", "daemon.control.bad_arguments",
                               detail=str(exc)) from None
        else:
            raise SimError("bad_arguments", "daemon.control.bad_arguments",
                           detail=f"reader actions: {', '.join(READER_ACTIONS)}")
        return {"plugged": sim.plugged, "faults": [f for f, _ in sim.pending_faults]}

    async def _show(self, args: dict[str, Any]) -> dict[str, Any]:
        """What the simulated world looks like now (for people and tests)."""
        sims = self.devices.sims
        out: dict[str, Any] = {}
        if sims.tag_pad is not None:
            out["pad"] = [{"barcode": _barcode_of(tag), "uid": tag.uid.hex().upper(),
                           "afi": f"0x{tag.afi:02X}"} for tag in sims.tag_pad.tags]
            out["reader_plugged"] = sims.tag_pad.plugged
        if sims.card_chip is not None:
            out["cards"] = [c.uid.hex().upper() for c in sims.card_chip.field]
        if sims.printer is not None:
            jobs = sims.printer.jobs
            out["printer"] = {"faults": sorted(sims.printer.faults),
                              "plugged": sims.printer.plugged, "receipts": len(jobs),
                              "last_receipt": jobs[-1].lines if jobs else None,
                              "last_png": str(jobs[-1].png) if jobs and jobs[-1].png else None}
        if sims.entrance is not None:
            out["door"] = {"open": sims.entrance.is_open("door")}
        if sims.locker_doors is not None:
            out["lockers"] = {slot: {"open": sims.locker_doors.is_open(slot)}
                              for slot in sims.locker_doors.names}
        if sims.entrance_chip is not None:
            out["entrance_cards"] = [c.uid.hex().upper() for c in sims.entrance_chip.field]
        return out


def _clear_field(chip: Any) -> list[str]:
    removed = []
    for card in chip.field:
        chip.remove(card.uid)
        removed.append(card.uid.hex().upper())
    return removed


def _barcode_of(tag: Any) -> str | None:
    """The primary item id in a virtual tag's ISO 28560 data (None if it holds none)."""
    from drivers.iso28560 import TagDataError, decode

    try:
        return decode(bytes(tag.memory), dsfid=tag.dsfid or None).primary_item_id
    except (TagDataError, AttributeError, ValueError):
        return None
