"""A candidate's training loss curve: read from its ``training.json`` (``loss_curve``: the
trainer's ``[step, loss]`` pairs) and said in one line (start, min, final and a sparkline),
as EVAL.md and ``evo explain`` show it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

Curve = list[tuple[int, float]]

BARS = "▁▂▃▄▅▆▇█"
TRAINING = "training.json"


def curve_of(training: dict[str, Any]) -> Curve:
    """The ``(step, loss)`` points of a training.json, in step order; anything malformed
    (an older file without a curve, a hand-edited one) is left out."""
    points = []
    for item in training.get("loss_curve") or []:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            continue
        step, loss = item
        if isinstance(step, int) and isinstance(loss, (int, float)) and math.isfinite(loss):
            points.append((step, float(loss)))
    return sorted(points)


def read_curve(folder: Path) -> Curve:
    """The curve in ``folder/training.json`` (an archive or a work folder); [] when absent."""
    try:
        training = json.loads((Path(folder) / TRAINING).read_text())
    except (OSError, ValueError):
        return []
    return curve_of(training) if isinstance(training, dict) else []


def sparkline(values: list[float], width: int = 24) -> str:
    """``values`` as up to ``width`` block characters (each the mean of its share), low to high."""
    if not values:
        return ""
    n = min(width, len(values))
    buckets = [values[i * len(values) // n : (i + 1) * len(values) // n] for i in range(n)]
    means = [sum(b) / len(b) for b in buckets]
    lo, hi = min(means), max(means)
    if hi - lo <= 0:
        return BARS[0] * n
    return "".join(BARS[round((m - lo) / (hi - lo) * (len(BARS) - 1))] for m in means)


def summary(curve: Curve) -> str:
    """``loss 2.3141 -> min 0.8123 (step 480) -> final 0.8456 over 600 steps ▇▆▄▃▂▁▁``."""
    if not curve:
        return "no loss curve recorded"
    (first_step, start), (last_step, final) = curve[0], curve[-1]
    low_step, low = min(curve, key=lambda p: (p[1], p[0]))
    return (
        f"loss {start:.4f} (step {first_step}) -> min {low:.4f} (step {low_step}) -> final {final:.4f} "
        f"(step {last_step}), {len(curve)} points {sparkline([loss for _, loss in curve])}"
    )
