"""The report's plots, drawn with matplotlib as inline SVG (``adapters.freeze.plots``).

A line joins only the points of one model's story: HEAD's baseline from window to window (each
HEAD descends from the last). A window's candidates are separate models, so each is a marker
alone (filled: passed every gate; hollow: failed), never a line to the candidate of the same
branch letter in another window. A rate's axis stays within [0, 1]; every tick is round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.freeze.loss_curve import Curve
from adapters.freeze.plots import draw_loss, figure, rate_limits, round_ticks, svg_element
from projections.report_data import Plot

RATES = ("recall", "generalize", "tone_drift")
SIZE = (4.8, 2.9)  # inches at 100 dpi
HEAD = "HEAD"


def draw_metric(ax: Any, plot: Plot, colors: dict[str, str]) -> None:
    values = [p.y for s in plot.series for p in s.points]
    windows = sorted({p.x for s in plot.series for p in s.points})
    for s in plot.series:
        color = colors.get(s.label, "#555555")
        if s.label == HEAD:
            ax.plot([p.x for p in s.points], [p.y for p in s.points], color=color, linestyle="--", linewidth=1.8, marker="s", markersize=6,
                    label="HEAD baseline", zorder=3)
            continue
        label: str | None = s.label  # once per branch
        for passed in (True, False):
            points = [p for p in s.points if (p.passed is not False) is passed]
            if not points:
                continue
            face = color if passed else "white"
            ax.plot([p.x for p in points], [p.y for p in points], linestyle="none", marker="o", markersize=6,
                    color=color, markerfacecolor=face, markeredgewidth=1.5, label=label, zorder=4)
            label = None
    rate = plot.metric in RATES or (values and all(0.0 <= v <= 1.0 for v in values))
    if values and rate:
        ax.set_ylim(*rate_limits(values))
    round_ticks(ax)
    if windows:
        ax.set_xlim(windows[0] - 0.5, windows[-1] + 0.5)
    round_ticks(ax, "x", integer=True)
    ax.set_xlabel("window")
    ax.set_ylabel(plot.metric)
    ax.set_title(f"{plot.metric} per window (filled: passed; hollow: failed)")
    ax.grid(axis="y", color="#e5e5e5")
    if values:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    else:
        ax.text(0.5, 0.5, "no evaluated window yet", transform=ax.transAxes, ha="center")


def metric_svg(plot: Plot, colors: dict[str, str]) -> str:
    with figure(SIZE, salt=f"report-{plot.metric}") as fig:
        draw_metric(fig.add_subplot(), plot, colors)
        return svg_element(fig, prefix=f"{plot.metric}-", css_class="plot", label=plot.metric)


def loss_svg(window: int, curves: Sequence[tuple[str, Curve, str]]) -> str:
    """One window's candidates, a line each (their own steps only)."""
    with figure(SIZE, salt=f"report-loss-{window}") as fig:
        draw_loss(fig.add_subplot(), curves, title=f"training loss, window {window}")
        return svg_element(fig, prefix=f"loss{window}-", css_class="loss", label=f"loss window {window}")
