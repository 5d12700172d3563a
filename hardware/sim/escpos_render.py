"""Drawing a simulated receipt as the paper would look: a PNG as wide as the print head.

The geometry is that of a thermal printer's font A: a one-byte character is a cell of
``paper_dots // chars_per_line`` dots (12 on 58 mm paper with 32 characters, and on 80 mm
with 48) by 24 dots, a two-byte (Chinese) character two cells; GS ! magnifies the cell;
a line advances 30 dots (the default line spacing) or the height of its tallest character.
QR codes are drawn with the ``qrcode`` package, module for module at the printer's module
size, so a scanner reads the PNG as it would read the paper.

Glyphs come from a CJK font found on the system: Noto Sans Mono CJK (Debian
``fonts-noto-cjk``), whose Latin letters are exactly half as wide as its Chinese ones, like
a printer's, or WenQuanYi (``fonts-wqy-microhei``/``zenhei``). Without one, Pillow's own
font is used, with a warning: Chinese then shows as empty boxes.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont

from hardware.sim.escpos_stream import Cell, PrintedLine, PrintedQR

CELL_HEIGHT = 24
LINE_DOTS = 30
MARGIN = 8  # blank paper above the first line and below the last
FONT_CANDIDATES = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "Noto Sans Mono CJK SC"),
    ("/usr/share/fonts/opentype/noto/NotoSansMonoCJKsc-Regular.otf", None),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", None),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", None),
)


@functools.lru_cache(maxsize=8)
def font(size: int = CELL_HEIGHT) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The receipt font at ``size`` pixels (see the module docstring for the choice)."""
    for path, face in FONT_CANDIDATES:
        if not Path(path).exists():
            continue
        for index in range(16):
            try:
                candidate = ImageFont.truetype(path, size, index=index)
            except OSError:
                break
            if face is None or candidate.getname()[0] == face:
                return candidate
    warnings.warn(RuntimeWarning("no CJK font found (install fonts-noto-cjk): simulated "
                                 "receipts show Chinese as empty boxes"), stacklevel=2)
    return ImageFont.load_default(size)


def _qr_matrix(qr: PrintedQR) -> list[list[bool]]:
    import qrcode
    from qrcode import constants

    levels = {"L": constants.ERROR_CORRECT_L, "M": constants.ERROR_CORRECT_M,
              "Q": constants.ERROR_CORRECT_Q, "H": constants.ERROR_CORRECT_H}
    code = qrcode.QRCode(error_correction=levels[qr.error], border=0)
    code.add_data(qr.data)
    code.make(fit=True)
    return code.get_matrix()


def _x(align: int, width: int, paper_dots: int) -> int:
    return {0: 0, 1: (paper_dots - width) // 2, 2: paper_dots - width}.get(align, 0)


def _line_height(line: PrintedLine) -> int:
    if line.feed_dots is not None:
        return max(line.feed_dots, max((CELL_HEIGHT * c.height for c in line.cells), default=0))
    return max([LINE_DOTS] + [CELL_HEIGHT * c.height + 6 for c in line.cells])


def _draw_cell(image: Image.Image, cell: Cell, x: int, baseline_y: int, col_dots: int) -> int:
    """Draw ``cell`` with its bottom at ``baseline_y``; returns its width in dots."""
    width = cell.columns * col_dots
    glyph = Image.new("L", (width, CELL_HEIGHT), 255)
    # CJK fonts put the ideographic em box from 0.88 em above the baseline to 0.12 below
    ImageDraw.Draw(glyph).text((0, round(CELL_HEIGHT * 0.88)), cell.char, font=font(), fill=0,
                               anchor="ls", stroke_width=1 if cell.bold else 0, stroke_fill=0)
    if cell.width != 1 or cell.height != 1:
        glyph = glyph.resize((width * cell.width, CELL_HEIGHT * cell.height))
    top = baseline_y - glyph.height
    # black ink wherever the glyph is dark: the cells of neighbours never erase each other
    image.paste(0, (x, top, x + glyph.width, baseline_y), mask=ImageChops.invert(glyph))
    return glyph.width


def render(items: Sequence[PrintedLine | PrintedQR], path: Path, *, paper_dots: int = 384,
           chars_per_line: int = 32) -> Path:
    """Write ``items`` as a receipt to ``path`` (PNG, ``paper_dots`` wide); returns ``path``.
    A QR code wider than the paper is left out, as the printers do."""
    col_dots = paper_dots // chars_per_line
    blocks: list[tuple[int, object]] = []
    for item in items:
        if isinstance(item, PrintedQR):
            matrix = _qr_matrix(item)
            size = len(matrix) * item.module_size
            if size <= paper_dots:
                blocks.append((size, (item, matrix)))
        else:
            blocks.append((_line_height(item), item))
    height = MARGIN * 2 + sum(h for h, _ in blocks)
    image = Image.new("L", (paper_dots, height), 255)
    draw = ImageDraw.Draw(image)
    y = MARGIN
    for block_height, block in blocks:
        if isinstance(block, PrintedLine):
            widths = [c.columns * col_dots * c.width for c in block.cells]
            x = _x(block.align, sum(widths), paper_dots)
            bottom = y + max([CELL_HEIGHT * c.height for c in block.cells], default=0)
            for cell in block.cells:
                x += _draw_cell(image, cell, x, bottom, col_dots)
        else:
            qr, matrix = block
            x0 = _x(qr.align, block_height, paper_dots)
            m = qr.module_size
            for row, bits in enumerate(matrix):
                for col, dark in enumerate(bits):
                    if dark:
                        draw.rectangle((x0 + col * m, y + row * m,
                                        x0 + col * m + m - 1, y + row * m + m - 1), fill=0)
        y += block_height
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
