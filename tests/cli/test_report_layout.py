"""The report's pictures as a reader sees them: lineage edges drawn first and never through a
box, one line per model's story (never joining unrelated candidates), rates within [0, 1] on
round ticks, each window's loss curves, and the same bytes for the same ledger."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from adapters.audit.report import NODE_H, NODE_W, gather, lineage_svg
from adapters.audit.report_plots import draw_metric
from adapters.freeze.plots import figure
from tests.cli.conftest import Evo, LedgerDriver
from tests.core.helpers import BAD_RECALL_LAWS, BETTER, GOOD

Box = tuple[float, float, float, float]


def three_windows(evo: Evo, driver: LedgerDriver) -> None:
    """Window 1 promoted, window 2 all failed, window 3 bred from window 1's winner: its edges
    must cross window 2's column; window 3's candidates leave loss curves in their archives."""
    driver.promote()
    driver.window(["fail", BAD_RECALL_LAWS, "fail"])
    driver.promote([BETTER, GOOD, BAD_RECALL_LAWS])
    for i, cid in enumerate(driver.candidates()):
        folder = evo.home / "models" / "archive" / cid
        folder.mkdir(parents=True, exist_ok=True)
        curve = [[s, round(2.5 * (0.97 + 0.01 * i) ** s + 0.3, 5)] for s in range(1, 120, 3)]
        (folder / "training.json").write_text(json.dumps({"loss_curve": curve}))


def _points(d: str) -> list[list[tuple[float, float]]]:
    """The path's pieces as point lists: a line's two ends, or a cubic's four control points
    (the curve stays inside their hull)."""
    tokens = re.findall(r"[MLC]|-?\d+(?:\.\d+)?", d)
    pieces: list[list[tuple[float, float]]] = []
    here: tuple[float, float] = (0.0, 0.0)
    i = 0
    while i < len(tokens):
        op = tokens[i]
        count = {"M": 1, "L": 1, "C": 3}[op]
        nums = [float(t) for t in tokens[i + 1 : i + 1 + 2 * count]]
        pts = [(nums[k], nums[k + 1]) for k in range(0, len(nums), 2)]
        if op != "M":
            pieces.append([here, *pts])
        here = pts[-1]
        i += 1 + 2 * count
    return pieces


def _enters(piece: list[tuple[float, float]], box: Box) -> bool:
    """Does the piece's bounding box reach into the box's interior (touching its edge is fine)?"""
    x0, y0, x1, y1 = box
    xs, ys = [p[0] for p in piece], [p[1] for p in piece]
    return min(xs) < x1 and max(xs) > x0 and min(ys) < y1 and max(ys) > y0


def _round(ticks: list[float]) -> bool:
    """Evenly spaced by 1, 2, 2.5 or 5 times a power of ten, each a whole multiple of the step."""
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    return (
        any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 2.5, 5, 10))
        and all(math.isclose(b - a, step, rel_tol=1e-6) for a, b in zip(ticks, ticks[1:]))
        and all(abs(t / step - round(t / step)) < 1e-6 for t in ticks)
    )


def test_lineage_edges_are_drawn_first_and_never_through_a_box(evo: Evo, driver: LedgerDriver) -> None:
    three_windows(evo, driver)
    with driver.app as app:
        svg = lineage_svg(gather(app))
    edges = [(m.start(), m.group(1)) for m in re.finditer(r'<path class="edge[^"]*" d="([^"]+)"', svg)]
    boxes = [(m.start(), (float(m.group(1)), float(m.group(2)))) for m in re.finditer(r'<rect x="(\d+)" y="(\d+)"', svg)]
    assert len(edges) == 9 and len(boxes) == 10  # every candidate has its parent's edge
    assert max(at for at, _ in edges) < min(at for at, _ in boxes)  # edges first: a box covers their ends
    rects = [(x, y, x + NODE_W, y + NODE_H) for _, (x, y) in boxes]
    long_edges = 0
    for _, d in edges:
        pieces = _points(d)
        long_edges += " L" in d
        for piece in pieces:
            assert not any(_enters(piece, r) for r in rects), (d, piece)
    assert long_edges == 3  # window 3 from window 1: around window 2's boxes


def test_metric_plots_join_only_heads_baseline_within_0_and_1_on_round_ticks(evo: Evo, driver: LedgerDriver) -> None:
    three_windows(evo, driver)
    with driver.app as app:
        data = gather(app)
    for plot in data.plots:
        with figure((4.8, 2.9)) as fig:
            ax = fig.add_subplot()
            draw_metric(ax, plot, {})
            joined = [line.get_label() for line in ax.get_lines()
                      if len(line.get_xdata()) > 1 and line.get_linestyle() not in ("None", "none", "")]
            assert joined == ["HEAD baseline"], plot.metric  # candidates are markers, never a line
            lo, hi = ax.get_ylim()
            assert 0.0 <= lo < hi <= 1.0, plot.metric  # every metric here is a rate (score too)
            ticks = [t for t in ax.get_yticks() if lo - 1e-9 <= t <= hi + 1e-9]
            assert len(ticks) >= 3 and _round(ticks), (plot.metric, ticks)
            assert all(float(t).is_integer() for t in ax.get_xticks())  # windows are whole numbers
            labels = ax.get_legend_handles_labels()[1]
            assert len(labels) == len(set(labels))  # one entry per series


def test_the_page_shows_each_windows_loss_curves_and_is_the_same_bytes_twice(
    evo: Evo, driver: LedgerDriver, tmp_path: Path
) -> None:
    three_windows(evo, driver)
    first, second = tmp_path / "a.html", tmp_path / "b.html"
    assert evo("report", "--out", str(first)).code == 0
    assert evo("report", "--out", str(second)).code == 0
    page = first.read_text(encoding="utf-8")
    assert first.read_bytes() == second.read_bytes()
    assert page.count('<svg class="loss"') == 1 and "training loss, window 3" in page
    for cid in driver.candidates():  # the legend names each curve's candidate
        assert f">{cid}<" in page
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # several matplotlib figures, no shared id
    refs = set(re.findall(r"url\(#([^)]+)\)", page)) | set(re.findall(r'href="#([^"]+)"', page))
    assert refs and refs <= set(ids)  # and every clip path and marker they use is still found
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page


@pytest.mark.parametrize("rate", [True, False])
def test_a_value_outside_0_1_is_not_forced_into_it(rate: bool) -> None:
    from projections.report_data import Plot, Point, Series

    y = 0.5 if rate else 1.7
    plot = Plot(metric="score", series=(Series(label="HEAD", points=(Point(x=1, y=y, label="g", passed=None),
                                                                   Point(x=2, y=y + 0.1, label="g", passed=None))),))
    with figure((4.8, 2.9)) as fig:
        ax = fig.add_subplot()
        draw_metric(ax, plot, {})
        lo, hi = ax.get_ylim()
        assert (0.0 <= lo and hi <= 1.0) if rate else (lo <= 1.7 and hi >= 1.8)
