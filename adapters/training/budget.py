"""The hard budget of one training run, measured while it runs.

``BudgetMeter`` counts what a candidate consumes and answers ``check()`` with the FIRST breached
resource as ``(resource, limit, used)`` or None. Resource names are the core's
(``evo_core.gates.BUDGET_RESOURCES``): "steps", "walltime", "gpu_memory", "tokens", "disk";
within one check they are tested in that order.

When the trainer asks:
- ``before_step()``: a step that WOULD exceed ``max_steps`` is a breach (used = max_steps + 1),
  plus every other resource (the run may already be over its time);
- ``after_step(tokens)``: walltime, memory and tokens (the non-pad tokens that went through the
  student); the out_dir's size too every ``disk_every`` steps;
- ``after_save()``: the out_dir's size (disk).

Units: GB here means GiB (2**30 bytes). Memory is the peak ALLOCATED CUDA memory of the device
(``torch.cuda.max_memory_allocated``) on CUDA; on CPU it is the peak resident set size of this
process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux), which includes the Python
interpreter, torch itself and both teachers' cached targets: a worker process's whole footprint.
Walltime counts from the meter's creation (model loading included).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

from evo_core.values import BudgetLimits, BudgetUsed

GIB = float(1 << 30)
Breach = tuple[str, float, float]


def dir_size(path: str | os.PathLike[str]) -> int:
    """Bytes of every regular file under ``path`` (0 when it does not exist)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def peak_memory_gb(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return float(torch.cuda.max_memory_allocated(torch.device(device))) / GIB
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (GIB if sys.platform == "darwin" else GIB / 1024)  # macOS reports bytes


class BudgetMeter:
    def __init__(
        self, limits: BudgetLimits, out_dir: str | os.PathLike[str], device: str = "cpu",
        *, disk_every: int = 50,
    ) -> None:
        self.limits = limits
        self.out_dir = Path(out_dir)
        self.device = device
        self.disk_every = max(1, disk_every)
        self.steps = 0
        self.tokens = 0
        self.disk_bytes = 0
        self.memory_gb = 0.0
        self._start = time.perf_counter()

    def walltime_minutes(self) -> float:
        return (time.perf_counter() - self._start) / 60.0

    def _sample_memory(self) -> float:
        self.memory_gb = max(self.memory_gb, peak_memory_gb(self.device))
        return self.memory_gb

    def _sample_disk(self) -> float:
        self.disk_bytes = dir_size(self.out_dir)
        return self.disk_bytes / GIB

    def used(self) -> BudgetUsed:
        return BudgetUsed(
            steps=self.steps,
            walltime_minutes=self.walltime_minutes(),
            gpu_memory_gb=self._sample_memory(),
            tokens_processed=self.tokens,
            disk_gb=self.disk_bytes / GIB,
        )

    def left(self) -> dict[str, float]:
        """Limit minus use per resource (negative once breached): the progress bar's view."""
        lim = self.limits
        return {
            "steps": lim.max_steps - self.steps,
            "walltime": lim.max_walltime_minutes - self.walltime_minutes(),
            "gpu_memory": lim.max_gpu_memory_gb - self.memory_gb,
            "tokens": lim.max_tokens_processed - self.tokens,
            "disk": lim.max_disk_gb - self.disk_bytes / GIB,
        }

    def check(self, *, disk: bool = False, next_step: bool = False) -> Breach | None:
        """The first breached resource, or None. ``next_step``: count the step about to run;
        ``disk``: measure the out_dir now (else its last measured size is used)."""
        lim = self.limits
        steps = self.steps + (1 if next_step else 0)
        if steps > lim.max_steps:
            return ("steps", float(lim.max_steps), float(steps))
        minutes = self.walltime_minutes()
        if minutes > lim.max_walltime_minutes:
            return ("walltime", float(lim.max_walltime_minutes), minutes)
        memory = self._sample_memory()
        if memory > lim.max_gpu_memory_gb:
            return ("gpu_memory", float(lim.max_gpu_memory_gb), memory)
        if self.tokens > lim.max_tokens_processed:
            return ("tokens", float(lim.max_tokens_processed), float(self.tokens))
        disk_gb = self._sample_disk() if disk else self.disk_bytes / GIB
        if disk_gb > lim.max_disk_gb:
            return ("disk", float(lim.max_disk_gb), disk_gb)
        return None

    def before_step(self) -> Breach | None:
        return self.check(next_step=True)

    def after_step(self, tokens: int) -> Breach | None:
        self.steps += 1
        self.tokens += int(tokens)
        return self.check(disk=self.steps % self.disk_every == 0)

    def after_save(self) -> Breach | None:
        return self.check(disk=True)
