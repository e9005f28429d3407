"""The chart EVAL.md shows is a valid PNG, written without a plotting library."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from adapters.freeze import encode_png, freeze, metrics_chart
from adapters.runtime.workspace import Workspace
from evo_core.state import State
from tests.core.helpers import BASELINE, BETTER, GOOD
from tests.freeze.conftest import by_branch, make_work


def read_png(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, raw scanlines), checking signature, IHDR and every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, comp, filt, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + 3 * width)
    return width, height, raw


def test_encode_png_round_trips_pixels() -> None:
    pixels = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    w, h, raw = read_png(encode_png(2, 2, pixels))
    assert (w, h) == (2, 2)
    assert raw == b"\x00" + pixels[:6] + b"\x00" + pixels[6:]
    with pytest.raises(ValueError):
        encode_png(2, 2, b"short")


def test_the_chart_is_a_valid_png_with_the_metrics_drawn() -> None:
    series: list[dict[str, float | None]] = [
        {"recall": m.recall, "generalize": m.generalize, "tone_drift": m.tone_drift} for m in (BASELINE, GOOD, BETTER)
    ]
    series.append({"recall": None, "generalize": None, "tone_drift": None})
    w, h, raw = read_png(metrics_chart(series, width=120, height=60))
    assert (w, h) == (120, 60)
    assert bytes((31, 119, 180)) in raw  # recall's blue is drawn


def test_the_archived_plot_is_a_valid_png(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    c = by_branch(window_state, "a")
    fa = freeze(
        ws, c, window=window_state.window, head_metrics=BASELINE, work_dir=make_work(tmp_path / "w"),
        history=[("Luna-G000-genesis", BASELINE)],
    )
    w, h, _ = read_png((fa.path / "metrics.png").read_bytes())
    assert w > 0 and h > 0
