"""EVAL.md's pictures: drawn with matplotlib, with axes, a legend and the gate thresholds, the
loss curve beside them, and the same bytes every time (the archive is hashed)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from PIL import Image

from adapters.freeze import freeze, metrics_chart
from adapters.freeze.documents import Facts, gate_lines, pictures
from adapters.freeze.loss_curve import curve_of, sparkline, summary
from adapters.freeze.plots import GateLine, draw_metrics, figure, rate_limits
from adapters.runtime.workspace import Workspace
from evo_core.state import State
from evo_core.values import GateResult
from tests.core.helpers import BASELINE, BETTER, GOOD
from tests.freeze.conftest import by_branch, make_work

CURVE = [[1, 2.5], [11, 1.9], [21, 1.2], [31, 0.9], [41, 1.0]]
POINTS: list[tuple[str, dict[str, float | None]]] = [
    (name, {"recall": m.recall, "generalize": m.generalize, "tone_drift": m.tone_drift})
    for name, m in (("Luna-G000-genesis", BASELINE), ("Luna-G001-a-c1", GOOD), ("Luna-G002-b-c2", BETTER))
]


def image(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGB")


def colours(img: Image.Image) -> set[tuple[int, int, int]]:
    return {c for _, c in img.getcolors(maxcolors=1 << 20) or []}


def test_the_metrics_chart_is_800_by_400_with_each_metric_drawn() -> None:
    gates = [GateLine(metric="recall", threshold=0.65, label="recall gate: ≥ 0.65")]
    img = image(metrics_chart(POINTS, gates))
    assert img.size == (800, 400)
    seen = colours(img)
    assert len(seen) > 50  # not blank: antialiased lines, text, markers
    for rgb in ((31, 119, 180), (44, 160, 44), (255, 127, 14)):  # recall, generalize, tone_drift
        assert rgb in seen


def test_the_chart_has_labelled_axes_a_legend_and_the_gate_thresholds_within_0_and_1() -> None:
    gates = [
        GateLine(metric="recall", threshold=0.65, label="recall gate: HEAD - ε = 0.65", bound=0.71),
        GateLine(metric="tone_drift", threshold=0.05, label="tone gate: drift ≤ 0.05"),
    ]
    with figure((8, 4)) as fig:
        ax = fig.add_subplot()
        draw_metrics(ax, POINTS, gates)
        labels = ax.get_legend_handles_labels()[1]
        assert {"recall", "generalize", "tone_drift", "this candidate"} <= set(labels)
        assert "recall gate: HEAD - ε = 0.65" in labels and "tone gate: drift ≤ 0.05" in labels
        assert ax.get_legend() is not None and ax.get_xlabel() and ax.get_ylabel()
        thresholds = sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")
        assert thresholds == [0.05, 0.65]
        lo, hi = ax.get_ylim()
        assert 0.0 <= lo < 0.01 and 0.85 < hi <= 1.0  # the tone threshold and BETTER's recall fit
        ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
        assert all(abs(t * 20 - round(t * 20)) < 1e-9 for t in ticks)  # round: multiples of 0.05
        assert [t.get_text() for t in ax.get_xticklabels()] == [name for name, _ in POINTS]


def test_rate_limits_stay_within_0_and_1_rounded_to_tenths() -> None:
    assert rate_limits([0.0, 1.0]) == (0.0, 1.0)
    assert rate_limits([0.62, 0.83]) == (0.5, 0.9)
    assert rate_limits([]) == (0.0, 1.0)


def _facts(gates: tuple[GateResult, ...], training: dict[str, object]) -> Facts:
    from tests.freeze.conftest import ranked_window

    c = by_branch(ranked_window([GOOD, GOOD, GOOD]).state, "a")
    return Facts(candidate=c, status="PASS", window=None, head_metrics=BASELINE, gates=gates,
                 training=training, export=None, missing=[], model_hash="", manifest_hash="")


def test_gate_lines_put_each_gate_on_its_metrics_scale() -> None:
    paired = GateResult(name="recall", passed=True, value=0.82, threshold=0.15, margin=0.05,
                        method="tango-paired", bound=0.10, confidence=0.95, n_items=30)
    raw = GateResult(name="generalize", passed=True, value=0.70, threshold=0.62, margin=0.08)
    tone = GateResult(name="tone", passed=True, value=0.01, threshold=0.05, margin=0.04, method="mean")
    laws = GateResult(name="laws", passed=True, value=0, threshold=0, margin=0)
    lines = {g.metric: g for g in gate_lines(_facts((paired, raw, tone, laws), {}))}
    assert set(lines) == {"recall", "generalize", "tone_drift"}  # laws is a count, not a rate
    # recall: HEAD 0.80 - epsilon 0.15; the bound on HEAD - candidate, 0.10, lands at 0.70 (passes: above)
    assert abs(lines["recall"].threshold - 0.65) < 1e-12 and abs((lines["recall"].bound or 0) - 0.70) < 1e-12
    assert lines["generalize"].threshold == 0.62 and lines["generalize"].bound is None
    assert lines["tone_drift"].threshold == 0.05


def test_the_loss_curve_is_read_summarised_and_drawn() -> None:
    curve = curve_of({"loss_curve": CURVE + [["bad"], [51, float("nan")]]})
    assert curve == [(1, 2.5), (11, 1.9), (21, 1.2), (31, 0.9), (41, 1.0)]
    line = summary(curve)
    assert line.startswith("loss 2.5000 (step 1) -> min 0.9000 (step 31) -> final 1.0000 (step 41), 5 points ")
    assert line.endswith(sparkline([2.5, 1.9, 1.2, 0.9, 1.0])) and sparkline([2.5, 0.9])[0] == "█"
    assert len(sparkline([float(i) for i in range(500)], width=24)) == 24
    assert summary([]) == "no loss curve recorded"
    made = pictures(_facts((), {"loss_curve": CURVE}), [])
    assert set(made) == {"metrics.png", "loss.png"}
    img = image(made["loss.png"])
    assert img.size == (800, 300) and (214, 39, 40) in colours(img)  # the loss line's red
    assert set(pictures(_facts((), {}), [])) == {"metrics.png"}  # no curve recorded: no loss plot


def test_the_pictures_are_the_same_bytes_in_another_process() -> None:
    """No date, no software version, no random id: a re-freeze hashes the same."""
    here = pictures(_facts((), {"loss_curve": CURVE}), [])
    code = (
        "import sys, hashlib; from tests.freeze.test_plots import _facts, CURVE; "
        "from adapters.freeze.documents import pictures; "
        "made = pictures(_facts((), {'loss_curve': CURVE}), []); "
        "print(' '.join(hashlib.sha256(made[k]).hexdigest() for k in sorted(made)))"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[2]).stdout.split()
    import hashlib

    assert there == [hashlib.sha256(here[k]).hexdigest() for k in sorted(here)]
    assert b"Software" not in here["metrics.png"] and b"matplotlib" not in here["loss.png"].lower()


def test_the_archive_holds_both_pictures_and_eval_md_shows_them(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    c = by_branch(window_state, "a")
    work = make_work(tmp_path / "w")
    (work / "training.json").write_text(
        '{"steps": 41, "loss_start": 2.5, "loss_final": 1.0, "walltime_minutes": 0.5, "loss_curve": %s}' % CURVE
    )
    fa = freeze(ws, c, window=window_state.window, head_metrics=BASELINE, work_dir=work,
                history=[("Luna-G000-genesis", BASELINE)])
    assert image((fa.path / "metrics.png").read_bytes()).size == (800, 400)
    assert image((fa.path / "loss.png").read_bytes()).size == (800, 300)
    text = (fa.path / "EVAL.md").read_text()
    assert "](metrics.png)" in text and "](loss.png)" in text
    assert "Loss curve: loss 2.5000 (step 1) -> min 0.9000 (step 31) -> final 1.0000 (step 41)" in text


def test_names_are_text_never_tex_or_markup() -> None:
    """A "$" is not TeX (an unbalanced one would raise) and a "<" is escaped in the report's SVG."""
    from adapters.freeze.plots import svg_element

    hostile = "Luna-$x^2$-<script>alert(1)</script>-$"
    assert image(metrics_chart([(hostile, POINTS[0][1])])).size == (800, 400)
    with figure((4, 2), salt="t") as fig:
        fig.add_subplot().set_title(hostile)
        svg = svg_element(fig, prefix="t-", css_class="plot", label=hostile)
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "$x^2$" in svg
    assert svg.startswith('<svg class="plot" role="img" aria-label="Luna-$x^2$-&lt;script&gt;')
