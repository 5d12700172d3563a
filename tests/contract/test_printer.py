"""Contract of the ReceiptPrinter role, run against every backend that can load here.

- ``sim``: the real ESC/POS driver, over a real pseudo-terminal, to the simulated printer,
  which renders each receipt to a PNG.
- ``real``: a printer named by ``KIOSK_TEST_PRINTER`` (a pyserial URL: ``/dev/kiosk-printer``,
  ``usblp:///dev/usb/lp0``, ``socket://192.168.1.50:9100``; ``KIOSK_TEST_PRINTER_BAUD``
  and ``KIOSK_TEST_PRINTER_DOTS`` when not 115200 and 384, ``KIOSK_TEST_PRINTER_CONFIRM=0``
  for a printer that does not answer GS r 1), for a technician on a Pi. It is
  only asked for its status, unless ``KIOSK_TEST_ALLOW_PRINT=1``: then it prints one short
  test receipt. Tests that must empty the roll, open the cover or pull the cable run on the
  simulator only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from drivers.errors import DeviceGone, DeviceTimeout
from drivers.escpos import REPLACEMENT, Cut, Feed, QRCode, Rule, Text
from hardware.printer import PrinterSpec, build_printer
from hardware.roles import DeviceOffline, PrinterProblem, PrinterStatus, ReceiptPrinter

REAL = os.environ.get("KIOSK_TEST_PRINTER")
BACKENDS = ["sim", *(["real"] if REAL else [])]
QR_DATA = "https://lib.example.cn/loan/CN-431121-0002/T0000123"
RECEIPT = [
    Text("城东24小时城市书房", align="center", bold=True, width=2, height=2),
    Text("借书凭条 Loan receipt", align="center"),
    Rule(),
    Text("读者 Reader: 欧阳𡒄"),
    Text("1. 南汉高祖刘䶮"),
    Text("   应还 Due 2026-12-25"),
    Rule(),
    QRCode(QR_DATA),
    Text("谢谢 Thank you", align="center"),
    Feed(2),
    Cut(),
]
PRINTED_LINES = ["城东24小时城市书", "房", "借书凭条 Loan receipt", "-" * 32,
                 f"读者 Reader: 欧阳{REPLACEMENT}", "1. 南汉高祖刘䶮", "   应还 Due 2026-12-25",
                 "-" * 32, "谢谢 Thank you"]


class Rig:
    def __init__(self, printer: ReceiptPrinter, sim) -> None:
        self.printer = printer
        self.sim = sim

    def needs_sim(self) -> None:
        if self.sim is None:
            pytest.skip("needs the simulator (empties the roll, opens the cover, pulls cables)")

    def may_print(self) -> None:
        if self.sim is None and not os.environ.get("KIOSK_TEST_ALLOW_PRINT"):
            pytest.skip("prints paper: set KIOSK_TEST_ALLOW_PRINT=1")


@pytest.fixture(params=BACKENDS)
def rig(request, tmp_path: Path):
    if request.param == "sim":
        spec = PrinterSpec(timeout_ms=500)
    else:
        dots = int(os.environ.get("KIOSK_TEST_PRINTER_DOTS", "384"))
        spec = PrinterSpec(url=REAL, baudrate=int(os.environ.get("KIOSK_TEST_PRINTER_BAUD",
                                                                 "115200")),
                           paper_dots=dots, chars_per_line=dots // 12,
                           confirm_printed=os.environ.get("KIOSK_TEST_PRINTER_CONFIRM") != "0")
    printer, sim = build_printer(spec, tmp_path)
    assert printer.start(wait=5), printer.link.last_error
    yield Rig(printer, sim)
    printer.close()
    if sim is not None:
        sim.stop()
        assert sim.errors == []


def problem_of(excinfo) -> list[str]:
    return excinfo.value.params["problems"]


def decode_qr(path: Path) -> list[str] | None:
    """The QR codes in the image, or None when no decoder is installed here."""
    try:
        from pyzbar.pyzbar import decode
    except ImportError:  # the package, or the libzbar0 it loads, is missing
        decode = None
    if decode is not None:
        return [found.data.decode() for found in decode(Image.open(path))]
    if shutil.which("zbarimg"):
        run = subprocess.run(["zbarimg", "--quiet", "--raw", str(path)], capture_output=True,
                             text=True, timeout=30, check=False)
        return run.stdout.splitlines()
    return None


def test_status_of_a_ready_printer(rig):
    status = rig.printer.status()
    assert isinstance(status, PrinterStatus)
    if rig.sim is not None:
        assert status.ready and status.online and not status.paper_near_end
    info = rig.printer.describe()
    assert info["driver"] == "escpos" and len(info["status_bytes"].split()) == 4


def test_receipt_in_chinese_and_english_with_a_qr_code(rig):
    rig.may_print()
    result = rig.printer.print_receipt(RECEIPT)
    assert result.replaced == ("𡒄",)  # four bytes in GB18030: beyond any printer font
    assert result.confirmed == rig.printer.spec.confirm_printed
    assert result.status.problems == []
    if rig.sim is None:
        return
    (job,) = rig.sim.jobs
    assert job.cut and not job.lost
    assert job.lines == PRINTED_LINES
    assert job.qr_codes == [QR_DATA]
    assert not rig.sim.unknown and rig.sim.dropped_bytes == 0


def test_rendered_receipt_is_paper_wide_not_blank_and_its_qr_code_reads(rig):
    rig.needs_sim()
    rig.printer.print_receipt(RECEIPT)
    png = rig.sim.jobs[0].wait_png()
    assert png.name == "receipt-0001.png"
    image = Image.open(png).convert("L")
    assert image.width == rig.printer.spec.paper_dots == 384
    heading = image.crop((0, 0, image.width, 60))  # the title's two lines
    assert sum(heading.histogram()[:128]) > 500  # dark dots
    decoded = decode_qr(png)
    if decoded is None:
        pytest.skip("no QR decoder here (pip install pyzbar with libzbar0, or zbar-tools)")
    assert decoded == [QR_DATA]


def test_80_mm_paper(tmp_path):
    printer, sim = build_printer(PrinterSpec(paper_dots=576, chars_per_line=48), tmp_path)
    try:
        assert printer.start(wait=5)
        printer.print_receipt([Text("借书凭条 " * 5 + "abc"), Rule(), Cut()])
        job = sim.jobs[0]
        assert job.lines == ["借书凭条 " * 5 + "abc", "-" * 48]  # 48 columns a line
        assert Image.open(job.wait_png()).width == 576
    finally:
        printer.close()
        sim.stop()


def test_paper_out_is_a_problem_before_printing_and_nothing_is_sent(rig):
    rig.needs_sim()
    rig.sim.inject("paper_out")
    assert rig.printer.status().paper_out
    with pytest.raises(PrinterProblem) as info:
        rig.printer.print_receipt(RECEIPT)
    assert problem_of(info) == ["paper_out"] and info.value.params["printed"] == "nothing"
    assert rig.printer.name in str(info.value)
    assert rig.sim.jobs == [] and rig.sim.dropped_bytes == 0
    rig.sim.inject("paper_out", on=False)
    rig.printer.print_receipt(RECEIPT)
    assert rig.sim.jobs[0].lines == PRINTED_LINES


def test_paper_running_out_mid_job_is_an_error_never_done(rig):
    rig.needs_sim()
    rig.sim.paper_runs_out_after(4)
    with pytest.raises(PrinterProblem) as info:
        rig.printer.print_receipt(RECEIPT)
    assert problem_of(info) == ["paper_out"] and info.value.params["printed"] == "partly"
    (job,) = rig.sim.jobs
    assert job.lost and not job.cut and len(job.lines) < len(PRINTED_LINES)
    assert rig.sim.dropped_bytes > 0


@pytest.mark.parametrize("fault", ["cover_open", "cutter_error"])
def test_cover_open_and_cutter_error_stop_printing(rig, fault):
    rig.needs_sim()
    rig.sim.inject(fault)
    status = rig.printer.status()
    assert getattr(status, fault) and not status.online and status.problems == [fault]
    with pytest.raises(PrinterProblem) as info:
        rig.printer.print_receipt(RECEIPT)
    assert problem_of(info) == [fault]
    assert rig.sim.jobs == []
    rig.sim.inject(fault, on=False)
    assert rig.printer.status().ready


@pytest.mark.parametrize("fault", ["cover_open", "cutter_error"])
def test_cover_opened_or_cutter_jammed_during_the_job(rig, fault):
    rig.needs_sim()
    rig.sim.inject_after(fault, 3)
    with pytest.raises(PrinterProblem) as info:
        rig.printer.print_receipt(RECEIPT)
    assert problem_of(info) == [fault] and info.value.params["printed"] == "partly"
    assert rig.sim.jobs[0].lost


def test_paper_near_end_still_prints_and_says_so(rig):
    rig.needs_sim()
    rig.sim.inject("paper_near_end")
    result = rig.printer.print_receipt(RECEIPT)
    assert result.status.paper_near_end and result.status.problems == []
    assert rig.printer.status().paper_near_end and rig.printer.status().ready
    assert rig.sim.jobs[0].lines == PRINTED_LINES


def test_a_printer_that_stops_answering_times_out_then_recovers(rig):
    rig.needs_sim()
    rig.sim.inject("no_status")
    start = time.monotonic()
    with pytest.raises(DeviceTimeout) as info:
        rig.printer.status()
    assert time.monotonic() - start < 0.5 + 0.5
    assert rig.printer.name in str(info.value)
    rig.sim.inject("no_status", on=False)
    assert rig.printer.status().ready


def test_unplug_goes_offline_fast_and_replug_prints_within_5_s(rig):
    rig.needs_sim()
    events = []
    rig.printer.link._on_change = lambda name, online, detail: events.append(online)
    rig.sim.unplug()
    with pytest.raises((DeviceGone, DeviceTimeout, DeviceOffline)):
        rig.printer.status()
    deadline = time.monotonic() + 2
    while rig.printer.link.online and time.monotonic() < deadline:
        with pytest.raises((DeviceGone, DeviceTimeout, DeviceOffline)):
            rig.printer.status()
    assert not rig.printer.link.online
    start = time.monotonic()
    with pytest.raises(DeviceOffline):
        rig.printer.print_receipt(RECEIPT)
    assert time.monotonic() - start < 0.05  # offline fails fast
    time.sleep(2.5)  # long enough for the backoff to reach its cap
    rig.sim.replug()
    replugged = time.monotonic()
    assert rig.printer.link.wait_online(5)
    assert time.monotonic() - replugged < 5
    rig.printer.print_receipt(RECEIPT)
    assert rig.sim.jobs[-1].lines == PRINTED_LINES
    assert events[0] is False and events[-1] is True
