"""A tiny PNG writer (zlib + struct) and the metrics chart EVAL.md shows: no plotting library.

The chart is a line chart of recall, generalization and tone drift (all in [0, 1]) across
generations, oldest on the left, the frozen candidate on the right (behind a grey band). It has
no text; EVAL.md carries the legend.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

RGB = tuple[int, int, int]

WHITE: RGB = (255, 255, 255)
GRID: RGB = (225, 225, 225)
AXIS: RGB = (90, 90, 90)
BAND: RGB = (238, 238, 238)
# metric -> colour (EVAL.md names them)
COLOURS: dict[str, RGB] = {
    "recall": (31, 119, 180),  # blue
    "generalize": (44, 160, 44),  # green
    "tone_drift": (255, 127, 14),  # orange
}
COLOUR_NAMES = {"recall": "blue", "generalize": "green", "tone_drift": "orange"}


def encode_png(width: int, height: int, pixels: bytes | bytearray) -> bytes:
    """An 8-bit RGB PNG of ``width`` x ``height`` from row-major RGB bytes."""
    if len(pixels) != width * height * 3:
        raise ValueError(f"expected {width * height * 3} bytes of RGB, got {len(pixels)}")
    stride = width * 3
    raw = b"".join(b"\x00" + bytes(pixels[y * stride : (y + 1) * stride]) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


class Canvas:
    def __init__(self, width: int, height: int, background: RGB = WHITE):
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, colour: RGB) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i : i + 3] = bytes(colour)

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour: RGB) -> None:
        for y in range(max(0, y0), min(self.height, y1 + 1)):
            for x in range(max(0, x0), min(self.width, x1 + 1)):
                self.set(x, y, colour)

    def line(self, x0: int, y0: int, x1: int, y1: int, colour: RGB) -> None:
        """Bresenham, two pixels thick."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.set(x0, y0, colour)
            self.set(x0, y0 + 1, colour)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def png(self) -> bytes:
        return encode_png(self.width, self.height, self.pixels)


def metrics_chart(
    series: Sequence[dict[str, float | None]], *, width: int = 360, height: int = 180
) -> bytes:
    """One point per generation (dicts with recall / generalize / tone_drift, None = not
    measured); the last one is the candidate."""
    c = Canvas(width, height)
    left, right, top, bottom = 12, width - 12, 10, height - 12
    n = len(series)

    def x_at(i: int) -> int:
        return (left + right) // 2 if n <= 1 else left + round(i * (right - left) / (n - 1))

    def y_at(v: float) -> int:
        return bottom - round(min(max(v, 0.0), 1.0) * (bottom - top))

    if n:
        xc = x_at(n - 1)
        c.rect(xc - 6, top, xc + 6, bottom, BAND)
    for tick in (0.25, 0.5, 0.75, 1.0):
        c.rect(left, y_at(tick), right, y_at(tick), GRID)
    c.rect(left, top, left, bottom, AXIS)
    c.rect(left, bottom, right, bottom, AXIS)
    for name, colour in COLOURS.items():
        prev: tuple[int, int] | None = None
        for i, point in enumerate(series):
            value = point.get(name)
            if value is None:
                prev = None
                continue
            here = (x_at(i), y_at(float(value)))
            if prev is not None:
                c.line(*prev, *here, colour)
            c.rect(here[0] - 2, here[1] - 2, here[0] + 2, here[1] + 2, colour)
            prev = here
    return c.png()
