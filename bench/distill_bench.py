"""Distillation benchmarks: tokens/s per candidate vs TRL's GKDTrainer, and a window's wall time.

``run(report)`` measures, in this run, side by side (medians of several repetitions, the sides'
repetitions interleaved so that drift and noisy neighbours hit both alike):

1. Distillation throughput (tokens/s per candidate): non-padding tokens through the student per
   second of a steady-state step (the median over the steps after the first ``WARMUP`` of each
   step's tokens / seconds: robust to a neighbour's bursts on a shared machine; model loading,
   trainer setup and saving excluded; the mean over the same steps is shown beside it). Ours: ``adapters.training.trainer.train`` (a fresh LoRA student on G(N),
   two teachers' top-k targets read from the shared teacher cache, which is built ONCE before).
   Anchor: TRL 1.16's ``GKDTrainer`` in its supervised mode (lmbda=0, seq_kd False, the same
   beta and temperature, ``include_num_input_tokens_seen="non_padding"``) with the same tiny
   Llama as student and (a second copy) as teacher, the same examples, batch 8 x 128 tokens,
   the same LoRA (a peft config handed to the trainer), learning rate, steps and torch threads.
   Goal: ours >= 1.4x while we use two teachers.
2. A 3-candidate window vs one candidate, both through ``adapters.training.pool.run_pool`` (real
   ``spawn``-ed workers; threads = ``threads_per_worker``: all cores for one, cores // 3 for
   three): the wall time of each window, process start to the last result. Goal: <= 2.5x.
3. On CUDA, the model FLOP utilisation of our trainer; "n/a (no GPU)" without one.

Every side runs in its own subprocess (``bench._distill_setup``) with the same environment, so
the allocator setting applies to both: ``GLIBC_TUNABLES`` as the caller set it, else
``DEFAULT_TUNABLES`` (TRL's speed moves with glibc's malloc thresholds; see DESIGN.md).
``BENCH_QUICK=1`` runs fewer steps and one repetition (a smoke run). ``BENCH_DISTILL_THREADS``
sets the torch threads of both sides in figure 1 (default: every core). On a shared machine a
busy neighbour makes multi-threaded torch collapse (OpenMP threads wait on a descheduled peer):
read the per-rep values and the two rates (median step, mean over steps) before the ratio.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

Report = Callable[[str, str, str, str], None]

QUICK = os.environ.get("BENCH_QUICK") == "1"
DEFAULT_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456"
ROOT = Path(__file__).resolve().parent.parent
MARK = "@@bench "

EXAMPLES = 96 if QUICK else 200
STEPS = 16 if QUICK else 40  # per repetition, per side
WARMUP = 4 if QUICK else 6  # steps left out of the steady-state rate
REPS = 1 if QUICK else 3
POOL_STEPS = 12 if QUICK else 60
POOL_REPS = 1 if QUICK else 2
REPLY_TIMEOUT = 300.0  # seconds a child may take for one answer before it is called hung


def _trl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trl")
    except PackageNotFoundError:
        return "?"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GLIBC_TUNABLES", DEFAULT_TUNABLES)
    env.update({
        "PYTHONUNBUFFERED": "1", "TRL_EXPERIMENTAL_SILENCE": "1", "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
    })
    return env


class Child:
    """A ``bench._distill_setup serve`` process: one request line in, one result line out."""

    def __init__(self, root: Path, side: str, threads: int, env: dict[str, str], device: str = "cpu") -> None:
        self.side = side
        self.stderr: IO[str] = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench._distill_setup", "serve", str(root), side, str(threads), device],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            text=True, bufsize=1,
        )
        self._buf = b""

    def _tail(self) -> str:
        self.stderr.seek(0)
        lines = [ln for ln in self.stderr.read().splitlines() if ln.strip()]
        return " | ".join(lines[-3:])[-400:]

    def read(self) -> dict[str, Any]:
        """The next result line (raw reads on the pipe: a buffered reader would hide lines that
        arrived together from ``select``)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + REPLY_TIMEOUT
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(MARK):
                    out: dict[str, Any] = json.loads(text[len(MARK):])
                    return out
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                tail = self._tail()
                self.close(kill=True)
                return {"error": f"{self.side}: no answer in {REPLY_TIMEOUT:.0f} s: {tail}"}
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait()
                return {"error": f"{self.side} exited with {self.proc.returncode}: {self._tail()}"}
            self._buf += chunk

    def ask(self, *numbers: int) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(" ".join(map(str, numbers)) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.proc.wait()
            return {"error": f"{self.side} exited with {self.proc.returncode}: {self._tail()}"}
        return self.read()

    def close(self, kill: bool = False) -> None:
        if kill and self.proc.poll() is None:
            self.proc.kill()
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if not self.stderr.closed:
            self.stderr.close()


def build_fixture(root: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench._distill_setup", "fixture", str(root), str(EXAMPLES)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    for line in out.stdout.splitlines():
        if line.startswith(MARK):
            fixture: dict[str, Any] = json.loads(line[len(MARK):])
            return fixture
    tail = " | ".join(ln for ln in out.stderr.splitlines()[-3:] if ln.strip())
    raise RuntimeError(f"fixture failed ({out.returncode}): {tail[-400:]}")


def throughput(root: Path, env: dict[str, str], threads: int) -> dict[str, Any]:
    """Both sides' servers start together (imports overlap), then their repetitions alternate."""
    sides = {"ours": Child(root, "ours", threads, env), "gkd": Child(root, "gkd", threads, env)}
    try:
        ready = {name: child.read() for name, child in sides.items()}
        rates: dict[str, list[float]] = {"ours": [], "gkd": []}
        means: dict[str, list[float]] = {"ours": [], "gkd": []}
        errors = {name: r["error"] for name, r in ready.items() if "error" in r}
        extra: dict[str, Any] = {}
        for rep in range(REPS):
            order = ["ours", "gkd"] if rep % 2 == 0 else ["gkd", "ours"]
            for name in order:
                if name in errors:
                    continue
                r = sides[name].ask(rep, STEPS, WARMUP)
                if "error" in r:
                    errors[name] = r["error"]
                    continue
                rates[name].append(r["rate"])
                means[name].append(r["mean_rate"])
                extra[name] = r
        return {"rates": rates, "means": means, "errors": errors, "extra": extra}
    finally:
        for child in sides.values():
            child.close()


def window_walls(root: Path, env: dict[str, str]) -> dict[str, Any]:
    driver = Child(root, "pool", 1, env)
    try:
        ready = driver.read()
        if "error" in ready:
            return {"error": ready["error"]}
        walls: dict[int, list[float]] = {1: [], 3: []}
        info: dict[int, Any] = {}
        for rep in range(POOL_REPS):
            for n in ([1, 3] if rep % 2 == 0 else [3, 1]):
                r = driver.ask(rep, POOL_STEPS, n)
                if "error" in r:
                    return {"error": r["error"]}
                walls[n].append(r["wall"])
                info[n] = r
        return {"walls": walls, "info": info}
    finally:
        driver.close()


# dense fp32 peak (TF32 off, torch's default for fp32 matmuls), TFLOP/s; BENCH_GPU_PEAK_TFLOPS overrides
FP32_PEAK_TFLOPS = {"H200": 67.0, "H100": 67.0, "A100": 19.5, "L40S": 91.6, "L4": 30.3, "A10": 31.2}


def mfu(report: Report, root: Path, env: dict[str, str], threads: int, fx: dict[str, Any]) -> None:
    """Our trainer on CUDA: achieved model FLOP/s (6 N + 12 L h s per token, the PaLM
    convention) over the device's dense fp32 peak."""
    child = Child(root, "ours", threads, env, device="cuda")
    try:
        r = child.read()
        rates = []
        for rep in range(REPS):
            if "error" in r:
                break
            r = child.ask(rep, STEPS, WARMUP)
            rates.append(r.get("rate", 0.0))
    finally:
        child.close()
    if "error" in r:
        report("model FLOP utilisation (CUDA)", "failed", "", r["error"])
        return
    rate = statistics.median(rates)
    from bench._distill_setup import HIDDEN, LAYERS, SEQ

    achieved = rate * (6 * fx["params"] + 12 * LAYERS * HIDDEN * SEQ)
    name = fx.get("gpu", "")
    peak = os.environ.get("BENCH_GPU_PEAK_TFLOPS") or next(
        (str(v) for k, v in FP32_PEAK_TFLOPS.items() if k in name), "")
    value = f"{achieved / (float(peak) * 1e12):.4%}" if peak else "peak unknown"
    report("model FLOP utilisation (CUDA)", value, "",
           f"{name}: {rate:,.0f} tok/s, {achieved / 1e12:.4f} TFLOP/s vs fp32 peak {peak or '?'} TFLOP/s")


def run(report: Report) -> None:
    env = child_env()
    cores = len(os.sched_getaffinity(0))
    threads = int(os.environ.get("BENCH_DISTILL_THREADS") or cores)
    tmp = Path(tempfile.mkdtemp(prefix="evo-distill-bench-", dir=os.environ.get("BENCH_DIR")))
    tunables = env["GLIBC_TUNABLES"]
    try:
        try:
            fx = build_fixture(tmp, env)
        except RuntimeError as exc:
            report("distillation benchmarks", "not run", ">= 1.4x / <= 2.5x", str(exc))
            return
        model = (f"{fx['params'] / 1e6:.2f}M-param Llama (vocab {fx['vocab']}), batch 8x128, "
                 f"{STEPS} steps ({WARMUP} warm-up left out), {threads} threads both sides, "
                 f"median of {REPS} reps")

        # 1. tokens/s per candidate, ours vs GKDTrainer
        tp = throughput(tmp, env, threads)
        ours, gkd, errors = tp["rates"]["ours"], tp["rates"]["gkd"], tp["errors"]
        means, extra = tp["means"], tp["extra"]

        def reps(name: str) -> str:
            return (f"reps (median step) {', '.join(f'{r:,.0f}' for r in tp['rates'][name])}; "
                    f"mean over steps {statistics.median(means[name]):,.0f}; "
                    f"{extra[name]['tokens_per_step']:,.0f} non-pad tok/step")

        o = statistics.median(ours) if ours else None
        g = statistics.median(gkd) if gkd else None
        if o is not None:
            report("distill tokens/s per candidate, ours (2 teachers, cached)", f"{o:,.0f}", "",
                   f"{model}; {reps('ours')}")
        else:
            report("distill tokens/s per candidate, ours (2 teachers, cached)", "failed", "", errors["ours"])
        if g is not None:
            report("  TRL GKDTrainer (lmbda=0, 1 teacher, same model/data/LoRA)", f"{g:,.0f}", "",
                   f"trl {_trl_version()} experimental.gkd, teacher = 2nd copy of G(N), beta 0.9, T 2.0, "
                   f"LoRA r8 qkvo via peft_config; {reps('gkd')}")
        else:
            report("  TRL GKDTrainer (lmbda=0, 1 teacher, same model/data/LoRA)", "failed", "",
                   f"could not run offline on CPU: {errors.get('gkd', '?')}")
        if o is not None and g is not None:
            paired = [a / b for a, b in zip(ours, gkd)]
            mean_ratio = statistics.median(means["ours"]) / statistics.median(means["gkd"])
            report("  ours vs GKDTrainer, tokens/s per candidate", f"{o / g:.2f}x", ">= 1.4x",
                   f"per rep {', '.join(f'{x:.2f}x' for x in paired)}; on mean-over-steps rates "
                   f"{mean_ratio:.2f}x; both sides in subprocesses under GLIBC_TUNABLES={tunables}")
        else:
            report("  ours vs GKDTrainer, tokens/s per candidate", "n/a", ">= 1.4x",
                   "a side failed (see above)")

        # 2. a 3-candidate window vs one candidate, real pool
        ww = window_walls(tmp, env)
        if "error" in ww:
            report("3-candidate window wall vs 1 candidate", "failed", "<= 2.5x", ww["error"])
        else:
            w1, w3 = statistics.median(ww["walls"][1]), statistics.median(ww["walls"][3])
            t3 = ww["info"][3]["threads"]
            report(f"window wall, 1 candidate ({cores} threads) / 3 candidates ({t3} thread each)",
                   f"{w1:.1f} s / {w3:.1f} s", "",
                   f"run_pool, spawned workers, {POOL_STEPS} steps each incl. start+load+save, "
                   f"median of {POOL_REPS}, {cores} cores")
            report("  3-candidate window vs 1 candidate (wall)", f"{w3 / w1:.2f}x", "<= 2.5x",
                   f"= {w3 / (3 * w1):.2f} of 3 x one candidate ({3 * w1:.1f} s)")

        # 3. model FLOP utilisation, CUDA only
        if fx.get("cuda"):
            mfu(report, tmp, env, cores, fx)
        else:
            report("model FLOP utilisation (CUDA)", "n/a (no GPU)", "", "torch.cuda.is_available() is False")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _print_report(figure: str, value: str, goal: str, anchor: str) -> None:
    print(f"| {figure} | {value} | {goal} | {anchor} |", flush=True)


if __name__ == "__main__":
    print("| figure | value | goal | anchor |\n| --- | --- | --- | --- |")
    run(_print_report)
