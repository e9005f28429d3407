"""The pictures: EVAL.md's PNG charts (metrics across generations with the gate thresholds,
the training loss curve) and the figure plumbing ``evo report`` shares, drawn with matplotlib.

matplotlib is imported only when a picture is drawn. Every figure is drawn under matplotlib's
default style (a user's matplotlibrc changes nothing) with the Agg renderer and saved without
a date, a software version or random ids (``svg.hashsalt`` fixed), so the same values give the
same bytes: an archive is hashed, and the report's page must be the same for the same ledger.
"""

from __future__ import annotations

import io
import math
import re
from html import escape
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec

from adapters.freeze.loss_curve import Curve

# metric -> colour, the same in every picture (matplotlib's tab10)
COLOURS = {"recall": "#1f77b4", "generalize": "#2ca02c", "tone_drift": "#ff7f0e", "score": "#9467bd"}
LOSS_COLOUR = "#d62728"
DPI = 100
METRICS_SIZE = (8.0, 4.0)  # inches: 800 x 400 pixels
LOSS_SIZE = (8.0, 3.0)  # 800 x 300


class GateLine(msgspec.Struct, frozen=True, kw_only=True):
    """A gate's threshold on its metric's scale (drawn as a dashed line), and where the
    candidate's evidence stands against it (``bound``: a paired gate's confidence bound on
    that scale; None: the value itself was compared)."""

    metric: str
    threshold: float
    label: str
    bound: float | None = None


@contextmanager
def figure(size: tuple[float, float], *, salt: str = "evo") -> Iterator[Any]:
    """A fresh matplotlib Figure (no pyplot, no global state) under the default style."""
    import matplotlib.style
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    # text.parse_math off: a name with "$" in it is text, not TeX
    rc = rc_context({"svg.hashsalt": salt, "svg.fonttype": "none", "font.size": 9, "axes.titlesize": 10,
                     "axes.spines.top": False, "axes.spines.right": False, "legend.fontsize": 8,
                     "text.parse_math": False})
    with matplotlib.style.context("default"), rc:
        yield Figure(figsize=size, dpi=DPI, layout="constrained")


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


_ID = re.compile(r'id="([^"]+)"')


def svg_element(fig: Any, *, prefix: str, css_class: str, label: str) -> str:
    """The figure as an ``<svg>`` element to put inline in an HTML page: no XML prolog, no
    global style, every id (and every reference to one) prefixed so that several figures
    on one page never share an id."""
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue().decode("utf-8")
    text = text[text.index("<svg") :]
    text = re.sub(r"<style[^>]*>.*?</style>", "", text, flags=re.S)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    for name in sorted(set(_ID.findall(text)), key=len, reverse=True):
        text = text.replace(f'id="{name}"', f'id="{prefix}{name}"').replace(f"#{name})", f"#{prefix}{name})")
        text = text.replace(f'href="#{name}"', f'href="#{prefix}{name}"')
    return text.replace("<svg ", f'<svg class="{css_class}" role="img" aria-label="{escape(label)}" ', 1).strip()


def rate_limits(values: Sequence[float]) -> tuple[float, float]:
    """The y range of a rate (a value in [0, 1]): the values with a margin, rounded out to a
    tenth, never outside [0, 1]."""
    lo, hi = min(values, default=0.0), max(values, default=1.0)
    lo = max(0.0, math.floor((lo - 0.05) * 10) / 10)
    hi = min(1.0, math.ceil((hi + 0.05) * 10) / 10)
    return lo, hi


def round_ticks(ax: Any, axis: str = "y", *, integer: bool = False) -> None:
    """At most 6 ticks on round numbers (1, 2, 2.5 or 5 times a power of ten)."""
    from matplotlib.ticker import MaxNLocator

    locator = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10], integer=integer)
    getattr(ax, f"{axis}axis").set_major_locator(locator)


# ---------------------------------------------------------------- EVAL.md


def metrics_chart(points: Sequence[tuple[str, dict[str, float | None]]], gates: Sequence[GateLine] = ()) -> bytes:
    """``draw_metrics`` as a PNG of 800 x 400."""
    with figure(METRICS_SIZE, salt="eval-metrics") as fig:
        draw_metrics(fig.add_subplot(), points, gates)
        return png_bytes(fig)


def draw_metrics(ax: Any, points: Sequence[tuple[str, dict[str, float | None]]], gates: Sequence[GateLine]) -> None:
    """recall, generalize and tone drift (rates) per generation, oldest first, the candidate
    last (shaded); each gate's threshold a dashed line in its metric's colour, and a paired
    gate's bound a bar from the candidate's value."""
    names = [name for name, _ in points]
    last = len(names) - 1
    ys: list[float] = []
    if names:
        ax.axvspan(last - 0.3, last + 0.3, color="#eeeeee", zorder=0, label="this candidate")
    for metric in ("recall", "generalize", "tone_drift"):
        xs = [i for i, (_, values) in enumerate(points) if values.get(metric) is not None]
        vs = [float(points[i][1][metric] or 0.0) for i in xs]
        ys += vs
        ax.plot(xs, vs, color=COLOURS[metric], marker="o", linewidth=1.8, label=metric)
    for g in gates:
        colour = COLOURS.get(g.metric, "#555555")
        ax.axhline(g.threshold, color=colour, linestyle="--", linewidth=1.1, label=g.label)
        ys.append(g.threshold)
        value = points[last][1].get(g.metric) if names else None
        if g.bound is not None and value is not None:
            ax.plot([last, last], [value, g.bound], color=colour, linewidth=4, alpha=0.45, solid_capstyle="butt")
            ys.append(g.bound)
    ax.set_ylim(*rate_limits(ys))
    round_ticks(ax)
    ax.set_xlim(-0.5, max(last + 0.5, 0.5))
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=7)
    ax.set_xlabel("generation (oldest first; the candidate last)")
    ax.set_ylabel("rate (0 to 1)")
    ax.set_title("Probe metrics across generations, with the gates")
    ax.grid(axis="y", color="#e5e5e5")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def loss_chart(curve: Curve, *, title: str = "Training loss") -> bytes:
    """The training loss per step (a PNG of 800 x 300)."""
    with figure(LOSS_SIZE, salt="eval-loss") as fig:
        draw_loss(fig.add_subplot(), [("loss", curve, LOSS_COLOUR)], title=title)
        return png_bytes(fig)


def draw_loss(ax: Any, curves: Sequence[tuple[str, Curve, str]], *, title: str) -> None:
    """One line per (label, curve, colour): a line joins the points of one run only."""
    for label, curve, colour in curves:
        ax.plot([s for s, _ in curve], [v for _, v in curve], color=colour, linewidth=1.5, label=label)
    round_ticks(ax)
    round_ticks(ax, "x", integer=True)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(color="#e5e5e5")
    if len(curves) > 1:
        ax.legend(loc="upper right", frameon=False)
