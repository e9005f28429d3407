"""Per-candidate progress bars on stderr: step, loss, tokens and the budget left.

On a terminal the bars are redrawn in place; otherwise (logs, CI) a line is printed each time a
candidate crosses another tenth of its steps, and when it ends: the rule and the bar of
``adapters.runtime.activity``'s progress lines (one step's), here one line per candidate.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from adapters.runtime.activity import bar, counted, tenth
from adapters.training.spec import TrainResult


def _fmt_count(n: float) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else f"{n:.0f}"


def _budget(left: dict[str, Any]) -> str:
    parts = []
    if "steps" in left:
        parts.append(f"{_fmt_count(left['steps'])} steps")
    if "walltime" in left:
        parts.append(f"{left['walltime']:.1f} min")
    if "tokens" in left:
        parts.append(f"{_fmt_count(left['tokens'])} tok")
    return "left " + ", ".join(parts) if parts else ""


class ProgressBoard:
    def __init__(self, candidates: list[str], stream: TextIO | None = None, width: int = 20):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.width = width
        self.order = list(candidates)
        self.lines = {c: f"{c}  waiting" for c in candidates}
        self.tenths: dict[str, int] = {c: -1 for c in candidates}
        self.drawn = False

    def update(self, candidate: str, p: dict[str, Any]) -> None:
        if "export" in p:  # after its last step, the worker exports its GGUF and checks parity
            what, done, total = str(p["export"]), int(p.get("done", 0)), p.get("total")
            self.lines[candidate] = f"{candidate}  exporting GGUF: {what} {counted(what, done, total)}"
            if self.live:
                self._draw()
            elif done == 0:  # a log line per export step, not per tensor
                print(self.lines[candidate], file=self.stream, flush=True)
            return
        step, steps = int(p.get("step", 0)), int(p.get("steps", 0))
        self.lines[candidate] = (
            f"{candidate}  {bar(step, steps, self.width)} {step}/{steps}  loss {p.get('loss', float('nan')):.3f}"
            f"  {_fmt_count(p.get('tokens', 0))} tok  {_budget(p.get('budget_left', {}))}"
        )
        crossed = tenth(step, steps)
        if self.live:
            self._draw()
        elif crossed > self.tenths[candidate]:
            self.tenths[candidate] = crossed
            print(self.lines[candidate], file=self.stream, flush=True)

    def done(self, result: TrainResult) -> None:
        how = {
            "finished": f"finished: {result.stats.steps} steps, loss {result.stats.loss_start:.3f} -> {result.stats.loss_final:.3f}",
            "breached": f"BUDGET BREACHED: {result.resource} {result.used:g} > {result.limit:g}",
            "failed": f"FAILED: {result.reason}",
        }[result.status]
        self.lines[result.candidate] = f"{result.candidate}  {how}"
        if self.live:
            self._draw()
        else:
            print(self.lines[result.candidate], file=self.stream, flush=True)

    def _draw(self) -> None:
        if self.drawn:
            self.stream.write(f"\x1b[{len(self.order)}F")
        for c in self.order:
            self.stream.write("\x1b[2K" + self.lines[c] + "\n")
        self.stream.flush()
        self.drawn = True
