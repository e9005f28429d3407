"""``evo report``: one static HTML page for auditors, made from the ledger.

The page is self-contained and works offline: inline CSS, inline SVG, no script, no font or
image from anywhere. It shows the lineage as a tree (genesis, then each window's candidates,
drawn from the generation that bred them), the metrics across windows and each window's
training loss curves (``report_plots``: matplotlib), the window-by-window table, and the ledger
checkpoint (``seq:hash``) it was made from, so a reader can check the ledger still extends it
(``evo verify --checkpoint``). Every piece of text from the ledger is escaped. The same ledger
and archives give the same bytes (no clock on the page).

The lineage is laid out on a grid: a column per window (the genesis first), a row per
candidate. An edge is drawn before the boxes and never through one: between neighbouring
columns it is a curve inside the gap between them; a longer one leaves its parent into that
gap, runs along the free lane between two rows (every column has its rows at the same
heights) and comes down the gap before its child's column.

``--out`` never overwrites anything but a report: an existing file that is not one (the ledger,
``config.toml``, your notes) is refused, and inside the workspace the page goes only to a new or
report ``.html`` file outside what evo keeps there (the ledger's files, config, snapshots, data,
the archive).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import msgspec

from adapters.freeze.loss_curve import Curve
from adapters.runtime.workspace import write_atomic
from evo_core.errors import UsageError
from projections.report_data import LineageNode, Plot, ReportData, ReportWindow, report_data

if TYPE_CHECKING:
    from adapters.runtime.app import App
    from ledger.record import Record

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
NODE_W, NODE_H, COL_STEP, ROW_STEP, PAD, TOP = 250, 52, 310, 76, 40, 34
GAP_X, GAP_Y = COL_STEP - NODE_W, ROW_STEP - NODE_H  # the free lanes between columns and rows

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; }
code, .mono, svg text { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.scroll { overflow-x: auto; border: 1px solid #ddd; padding: 4px; }
.node rect { fill: #fff; stroke: #888; stroke-width: 1.5; }
.node.pass rect { fill: #eef7ee; stroke: #4a4; }
.node.fail rect { fill: #fbeaea; stroke: #c33; stroke-dasharray: 4 3; }
.node.genesis rect { fill: #e8eefc; stroke: #3558b5; stroke-width: 2; }
.node.promoted rect { fill: #c9f0c9; stroke: #1a7f1a; stroke-width: 3; stroke-dasharray: none; }
.node.rolledback rect { fill: #fff0dc; stroke: #e07b00; stroke-width: 3; stroke-dasharray: 8 3; }
.node.head rect { stroke: #000; stroke-width: 4; }
.node .name { font-size: 11px; font-weight: bold; }
.node .status { font-size: 10px; }
.badge { font-size: 9px; font-weight: bold; }
.edge { fill: none; stroke: #aaa; stroke-width: 1.2; }
.edge.promoted { stroke: #1a7f1a; stroke-width: 2.5; }
.tick { font-size: 10px; fill: #444; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
svg.plot *, svg.loss * { stroke-linejoin: round; stroke-linecap: butt; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #f4f4f4; }
td ul { margin: 0; padding-left: 16px; }
li.pass { color: #1a6f1a; } li.fail { color: #b22; }
.checkpoint { font-size: 12px; word-break: break-all; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _f(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------- lineage


def _node_class(n: LineageNode) -> str:
    classes = ["node", n.kind]
    if n.kind == "candidate":
        classes.append("fail" if n.failed else "pass" if n.status == "PASS" else "open")
    if n.promoted and n.kind == "candidate":
        classes.append("promoted")
    if n.rolled_back:
        classes.append("rolledback")
    if n.head:
        classes.append("head")
    return " ".join(classes)


def _badges(n: LineageNode) -> str:
    words = []
    if n.head:
        words.append("HEAD")
    if n.promoted and n.kind == "candidate":
        words.append("PROMOTED")
    elif n.proposed:
        words.append("PROPOSED")
    if n.rolled_back:
        words.append("ROLLED BACK")
    return " · ".join(words)


def lineage_svg(data: ReportData) -> str:
    columns: dict[int | None, int] = {None: 0}
    for i, w in enumerate(data.windows):
        columns[w.number] = i + 1
    rows: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for n in data.nodes:
        col = columns.get(n.window, len(columns))
        row = rows.get(col, 0)
        rows[col] = row + 1
        place[n.name] = (PAD + col * COL_STEP, TOP + row * ROW_STEP)
    width = PAD * 2 + max(columns.values(), default=0) * COL_STEP + NODE_W
    height = TOP + max(rows.values(), default=1) * ROW_STEP + PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage">'
    ]
    parts.append(f'<text class="tick" x="{PAD}" y="{TOP - 12}">genesis</text>')
    for w in data.windows:
        wx = PAD + columns[w.number] * COL_STEP
        parts.append(f'<text class="tick" x="{wx}" y="{TOP - 12}">window {w.number} (cycle {w.cycle})</text>')
    for n in data.nodes:
        if n.parent is None or n.parent not in place:
            continue
        cls = "edge promoted" if n.promoted else "edge"
        parts.append(f'<path class="{cls}" d="{edge_path(place[n.parent], place[n.name])}"/>')
    for n in data.nodes:
        x, y = place[n.name]
        status = n.status if len(n.status) <= 28 else n.status[:27] + "…"
        score = "" if n.score is None else f"  {n.score:.4f}"
        parts.append(
            f'<g class="{_node_class(n)}"><title>{_e(n.name)}: {_e(n.status)}</title>'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="5"/>'
            f'<text class="name" x="{x + 6}" y="{y + 15}">{_e(n.name)}</text>'
            f'<text class="status" x="{x + 6}" y="{y + 31}">{_e(status)}{_e(score)}</text>'
            f'<text class="badge" x="{x + 6}" y="{y + 45}">{_e(_badges(n))}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def edge_path(parent: tuple[int, int], child: tuple[int, int]) -> str:
    """From the parent box's right side to the child box's left side, around every box."""
    (px, py), (cx, cy) = parent, child
    x1, y1, x2, y2 = px + NODE_W, py + NODE_H // 2, cx, cy + NODE_H // 2
    if cx == px + COL_STEP:  # neighbouring columns: within the gap between them
        mid = (x1 + x2) // 2
        return f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
    out_x, in_x = x1 + GAP_X // 2, x2 - GAP_X // 2
    lane = cy + NODE_H + GAP_Y // 2  # the lane under the child's row, free in every column
    return f"M{x1},{y1} L{out_x},{y1} L{out_x},{lane} L{in_x},{lane} L{in_x},{y2} L{x2},{y2}"


# ---------------------------------------------------------------- plots


def _colors(data: ReportData) -> dict[str, str]:
    labels = [s.label for s in data.plots[0].series] if data.plots else []
    out = {"HEAD": "#000"}
    branches = [label for label in labels if label != "HEAD"]
    for i, label in enumerate(branches):
        out[label] = COLORS[i % len(COLORS)]
    return out


def loss_plots(data: ReportData, curves: dict[str, Curve], colors: dict[str, str]) -> str:
    """A plot per window whose candidates left a loss curve in their archives."""
    from adapters.audit.report_plots import loss_svg

    out = []
    for w in data.windows:
        lines = [
            (c.name, curves[c.name], colors.get(f"branch {c.branch}", "#555555"))
            for c in w.candidates
            if curves.get(c.name)
        ]
        if lines:
            out.append(loss_svg(w.number, lines))
    return "".join(out) or "<p>No archived candidate has a loss curve yet.</p>"


# ---------------------------------------------------------------- table


def _candidates_cell(w: ReportWindow) -> str:
    if not w.candidates:
        return "-"
    items = []
    for c in sorted(w.candidates, key=lambda c: (c.rank is None, c.rank or 0, len(c.branch), c.branch)):
        cls = "fail" if c.failed else "pass" if c.status == "PASS" else ""
        rank = f", rank {c.rank}" if c.rank else ""
        score = f", score {_f(c.score)}" if c.score is not None else ""
        items.append(
            f'<li class="{cls}"><span class="mono">{_e(c.name)}</span> ({_e(c.strategy)}): '
            f"{_e(c.status)}{score}{rank}</li>"
        )
    return "<ul>" + "".join(items) + "</ul>"


def window_table(data: ReportData) -> str:
    head = (
        "<tr><th>window</th><th>cycle</th><th>HEAD at open</th><th>HEAD baseline</th><th>candidates</th>"
        "<th>outcome</th><th>approval</th><th>shadow</th><th>promoted</th><th>burn-in</th><th>rollbacks</th></tr>"
    )
    rows = []
    for w in data.windows:
        base = "-"
        if w.baseline is not None:
            b = w.baseline
            base = (
                f"score {_f(w.baseline_score)}<br>recall {b.recall:.3f}, generalize {b.generalize:.3f}<br>"
                f"tone_drift {b.tone_drift:.3f}, laws {b.law_violations}"
            )
        outcome = _e(w.outcome)
        if w.proposal_hash:
            outcome += f'<br><span class="mono">proposal {_e(w.proposal_hash[:16])}</span>'
        rollbacks = "<br>".join(_e(r) for r in w.rollbacks) or "-"
        cells = [
            str(w.number), str(w.cycle), f'<span class="mono">{_e(w.head)}</span>', base, _candidates_cell(w),
            outcome, _e(w.approval) or "-", _e(w.shadow) or "-", _e(w.promoted) or "-", _e(w.burn_in) or "-",
            rollbacks,
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not rows:
        rows.append('<tr><td colspan="11">no window has opened yet</td></tr>')
    return "<table>" + head + "".join(rows) + "</table>"


# ---------------------------------------------------------------- page


def render_report(data: ReportData, *, agent: str = "", curves: dict[str, Curve] | None = None) -> str:
    """The page; ``curves``: each archived candidate's training loss curve, by name."""
    from adapters.audit.report_plots import metric_svg

    title = f"evo report: {agent}" if agent else "evo report"
    checkpoint = data.checkpoint or "-"
    colors = _colors(data)
    plots = "".join(metric_svg(p, colors) for p in data.plots)
    skipped = ""
    if data.skipped:
        skipped = "<h3>Skipped windows</h3><ul>" + "".join(f"<li>{_e(s)}</li>" for s in data.skipped) + "</ul>"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
        f"<h1>{_e(title)}</h1>\n"
        f'<p>HEAD: <span class="mono">{_e(data.head or "-")}</span>; genesis: '
        f'<span class="mono">{_e(data.genesis or "-")}</span>; cycle {data.cycle}; '
        f"{len(data.windows)} window(s), {sum(n.kind == 'candidate' for n in data.nodes)} candidate(s).</p>\n"
        f'<p class="checkpoint">Made from ledger checkpoint <code>{_e(checkpoint)}</code> '
        f"(check the ledger still extends it: <code>evo verify --checkpoint {_e(checkpoint)}</code>).</p>\n"
        "<h2>Lineage</h2>\n"
        "<p>Each window's candidates are drawn from the generation that bred them. Green, thick: promoted; "
        "red, dashed: failed; orange: rolled back; black border: HEAD now.</p>\n"
        f'<div class="scroll">{lineage_svg(data)}</div>\n'
        "<h2>Metrics across windows</h2>\n"
        "<p>HEAD's baseline is the one line: each HEAD descends from the one before. A window's "
        "candidates are separate models, a marker each in their branch's colour.</p>\n"
        f'<div class="plots">{plots}</div>\n'
        "<h2>Training loss</h2>\n"
        f'<div class="plots">{loss_plots(data, curves or {}, colors)}</div>\n'
        "<h2>Windows</h2>\n"
        f'<div class="scroll">{window_table(data)}</div>\n{skipped}\n'
        f'<p class="checkpoint">Ledger checkpoint: <code>{_e(checkpoint)}</code></p>\n'
        "</body></html>\n"
    )


def gather(app: App) -> ReportData:
    """The report's data from the whole ledger, with the checkpoint of the last record read."""
    last: list[Record] = []

    def tap(records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            last[:] = [record]
            yield record

    data = report_data(tap(app.store.ledger.records()))
    checkpoint = f"{last[0].seq}:{last[0].hash}" if last else ""
    return msgspec.structs.replace(data, checkpoint=checkpoint)


def archived_curves(app: App) -> dict[str, Curve]:
    """Each frozen candidate's loss curve, from the training.json in the archive the ledger names."""
    from adapters.freeze.archive import resolve_archive
    from adapters.freeze.loss_curve import read_curve
    from evo_core.events import CandidateFrozen

    out = {}
    for record in app.store.ledger.records():
        if isinstance(record.event, CandidateFrozen):
            curve = read_curve(resolve_archive(app.ws, record.event.archive))
            if curve:
                out[record.event.candidate] = curve
    return out


def default_path(app: App) -> Path:
    return app.ws.models / "report.html"


# what evo keeps in a workspace (by the first part of a path inside it): never a report's place
_KEPT = ("ledger.jsonl", "ledger.head", "ledger.lock", "config.toml", "snapshots", "data", ".evo")
_PAGE_START = b'<!DOCTYPE html>\n<html lang="en"><head>'


def is_report(path: Path) -> bool:
    """Does ``path`` hold a page ``render_report`` wrote (its fixed start and title)?"""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    return head.startswith(_PAGE_START) and b"<title>evo report" in head


def check_out_path(app: App, path: Path) -> None:
    """Refuse (``UsageError``) a ``--out`` that would overwrite anything but a report, or put
    a file among what evo keeps in the workspace."""
    resolved = path.resolve()
    home = app.ws.home.resolve()
    if resolved.is_relative_to(home):
        parts = resolved.relative_to(home).parts
        if not parts or parts[0] in _KEPT or parts[:2] == ("models", "archive") or resolved.suffix != ".html":
            raise UsageError(
                f"--out {path}: that is evo's own place in the workspace {app.ws.home}; "
                f"write the report to a new .html file (default {default_path(app)})"
            )
    if resolved.is_dir():
        raise UsageError(f"--out {path} is a folder: name the report's file (e.g. {path / 'report.html'})")
    if (resolved.exists() or path.is_symlink()) and not is_report(resolved):
        raise UsageError(
            f"--out {path}: the file exists and is not an evo report; refusing to overwrite it "
            "(choose a new path, or remove the file yourself)"
        )


def write_report(app: App, path: Path | None = None, *, data: ReportData | None = None) -> Path:
    """Write the page (atomically) to ``path`` (default ``<home>/models/report.html``); see
    ``check_out_path`` for what it refuses to overwrite."""
    target = path if path is not None else default_path(app)
    check_out_path(app, target)
    page = render_report(data if data is not None else gather(app), agent=app.agent, curves=archived_curves(app))
    write_atomic(target, page)
    return target
