"""Train the open window's candidates (spec steps 2 SPAWN and 3 DISTILL), ledger first.

1. The window's candidates are planned first (the core's ``SpawnCandidates``: seeds
   ``seed_base`` + i, strategies in config order); ``train_window`` trains the ones it is given
   (the due ``TrainCandidate`` actions).
2. Data: the window's new conversations are those of cycles (since_cycle, cycle]; each branch
   samples ``new_per_branch`` of them with its strategy and seed; every branch adds the same
   replay buffer (samples of what HEAD, its parent and grandparent trained on). The new data's
   blake3 goes into every manifest. Each example is marked with the teachers that know it
   (``adapters.training.loss``): new conversations none, replay only HEAD learned G(N), replay
   older than HEAD (its parent's or grandparent's data) G(N) and G(N-1).
3. The teachers' outputs over the union of all branches' examples are computed once into the
   window's teacher cache (``work/window-<n>/``) and shared by every branch.
4. Each due candidate gets ``TrainingStarted`` appended, then all train at once: in the local
   pool (``[train] executor = "local"``: a process each) or on a Ray cluster (``"ray"``: an actor
   each, ``adapters.training.ray_pool``); each outcome is appended (FinishTraining /
   BreachBudget / FailTraining, with where it ran: ``Placement``) as soon as it is in.

While it runs, the workspace's activity file says "training window W: k/n candidates done"
with the steps of all of them (``adapters.runtime.activity``; ``evo status`` shows it).

Idempotent after a crash: a candidate still TRAINING in the ledger is trained again from
scratch (its output folder is cleared; ``TrainingStarted`` counts the attempt), unless its Ray
actor is still alive (then the runner reattaches to it); a finished one is never trained twice,
and a complete teacher cache is reused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

from msgspec.structs import replace

from adapters.runtime import activity
from adapters.runtime.app import App
from adapters.training.generation_weights import generation_dir, prune_cache, retire_frozen
from adapters.training.pool import Done, Progress, run_pool, threads_per_worker
from adapters.training.spec import Distill, Lora, Schedule, TrainResult, TrainSpec
from adapters.runtime.workspace import Workspace
from evo_core import commands as cmd
from evo_core.config import EvoConfig
from evo_core.errors import NothingPending
from evo_core.reactions import TrainCandidate, reactions
from evo_core.state import Candidate, CandidateStatus, Phase, State, Window
from evo_core.values import Placement

REPLAY_GENERATIONS = 3  # HEAD, its parent and its grandparent (spec: the last 3 generations)


def work_dir(ws: Workspace, name: str) -> Path:
    return ws.home / "work" / name


def _lineage(state: State, head: str, depth: int) -> list[str]:
    out: list[str] = []
    name: str | None = head
    while name is not None and len(out) < depth:
        out.append(name)
        name = state.generations[name].parent
    return out


def _data_ids(ws: Workspace, generation: str) -> list[str]:
    """What a generation trained on (``data_ids.json`` beside its weights), newest first."""
    for folder in (ws.archive / generation, work_dir(ws, generation)):
        path = folder / "data_ids.json"
        if path.is_file():
            ids: list[str] = json.loads(path.read_text())
            return ids
    return []


def _device(config: EvoConfig) -> str:
    if config.train.device != "auto":
        return config.train.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def example_teachers(
    new: set[str], replay: list[str], sources: list[list[str]], *, stabilized: bool
) -> dict[str, int]:
    """Which teachers know each example: NEW for the window's new conversations; for replay,
    BOTH when it is older than HEAD (in its parent's or grandparent's data, ``sources[1:]``) and
    a stabilizer teaches, else PRIMARY (only HEAD learned it)."""
    from adapters.training.loss import BOTH, NEW, PRIMARY

    older = {i for ids in sources[1:] for i in ids}
    out = {i: NEW for i in new}
    for i in replay:
        if i not in out:
            out[i] = BOTH if stabilized and i in older else PRIMARY
    return out


def build_specs(app: App, config: EvoConfig, state: State, window: Window, todo: list[Candidate]) -> list[TrainSpec]:
    from adapters.data import conversations, format, sampling
    from transformers import AutoTokenizer

    from adapters.models.hf import weights_hash
    from adapters.training.teacher_cache import build_cache

    ws = app.ws
    everything = conversations.load(ws)
    new = conversations.new_since(everything, window.since_cycle, window.cycle)
    if not new:
        return []
    by_id = {c.id: c for c in everything}
    t = config.train
    samples = {c.id: sampling.sample(new, t.new_per_branch, c.strategy, c.seed) for c in todo}
    sources = [_data_ids(ws, g) for g in _lineage(state, window.head, REPLAY_GENERATIONS)]
    replay = [i for i in sampling.replay_buffer(sources, t.replay_size, seed=window.number) if i in by_id]
    teachers = None if config.distill.scope == "all" else example_teachers(
        {i for ids in samples.values() for i in ids}, replay, sources, stabilized=window.parent is not None
    )
    delta = sampling.data_delta_hash(new)

    retire_frozen(ws, state)  # one copy of each candidate's weights, even after a crash
    prune_cache(ws, {window.head} | ({window.parent} if window.parent else set()))
    parent_dir = generation_dir(ws, window.head)
    stabilizer_dir = generation_dir(ws, window.parent) if window.parent else None
    window_dir = ws.home / "work" / f"window-{window.number}"
    window_dir.mkdir(parents=True, exist_ok=True)
    cache_path = window_dir / "teacher_cache.safetensors"
    device = _device(config)
    from adapters.training.precision import parameter_count, resolve_checkpointing, resolve_dtype, resolve_gguf_type

    parameters = parameter_count(parent_dir)
    dtype = resolve_dtype(config.model.dtype, device, parameters)
    wanted = sorted({i for ids in samples.values() for i in ids} | set(replay))
    tokenizer = AutoTokenizer.from_pretrained(str(parent_dir), local_files_only=True)
    parent_hash = weights_hash(parent_dir)
    stabilizer_hash = weights_hash(stabilizer_dir) if stabilizer_dir else ""
    build_cache(
        str(parent_dir),
        str(stabilizer_dir) if stabilizer_dir else None,
        [(i, format.render(by_id[i], tokenizer)) for i in wanted],
        str(cache_path),
        max_seq_len=t.max_seq_len,
        top_k=t.teacher_top_k,
        device=device,
        parent_name=window.head,
        stabilizer_name=window.parent or "",
        parent_hash=parent_hash,
        stabilizer_hash=stabilizer_hash,
        teachers=teachers,
        model_dtype=dtype,
    )
    d = config.distill
    threads = threads_per_worker(len(todo))
    return [
        TrainSpec(
            candidate=c.id,
            window=window.number,
            gen=c.gen,
            branch=c.branch,
            seed=c.seed,
            strategy=c.strategy,
            parent=window.head,
            parent_dir=str(parent_dir),
            stabilizer=window.parent,
            stabilizer_dir=str(stabilizer_dir) if stabilizer_dir else None,
            cache_path=str(cache_path),
            example_ids=tuple(samples[c.id] + [i for i in replay if i not in samples[c.id]]),
            new_count=len(samples[c.id]),
            data_delta_hash=delta,
            out_dir=str(work_dir(ws, c.id)),
            budget=c.budget,
            distill=Distill(
                alpha=d.alpha, beta=d.beta, temperature=d.temperature,
                stabilizer_weight=d.stabilizer_weight, scope=d.scope,
            ),
            lora=Lora(r=t.lora_r, alpha=t.lora_alpha, dropout=t.lora_dropout, target_modules=t.target_modules),
            steps=t.steps,
            batch_size=t.batch_size,
            learning_rate=t.learning_rate,
            schedule=Schedule(
                warmup_steps=t.warmup_steps, kind=t.schedule, min_lr_ratio=t.min_lr_ratio,
                max_grad_norm=t.max_grad_norm, divergence_factor=t.divergence_factor,
            ),
            device=device,
            threads=threads,
            parent_hash=parent_hash,
            stabilizer_hash=stabilizer_hash,
            dtype=dtype,
            gguf_type=resolve_gguf_type(config.model.gguf_type, parameters),
            gradient_checkpointing=resolve_checkpointing(config.model.gradient_checkpointing, parameters),
        )
        for c in todo
    ]


def record(app: App, result: TrainResult) -> None:
    """The core command a worker's result becomes; appended at once."""
    command: cmd.Command
    if result.status == "finished":
        command = cmd.FinishTraining(candidate=result.candidate, stats=result.stats, budget_used=result.budget_used,
                                     placement=result.placement)
    elif result.status == "breached":
        command = cmd.BreachBudget(
            candidate=result.candidate,
            resource=result.resource,
            limit=result.limit,
            used=result.used,
            budget_used=result.budget_used,
            placement=result.placement,
        )
    else:
        command = cmd.FailTraining(candidate=result.candidate, reason=result.reason or "training failed",
                                   budget_used=result.budget_used, placement=result.placement)
    app.execute(command)


class TrainingTally:
    """The window's training as one step: steps summed over its candidates, and how many are
    done (a candidate past its last step and not done yet is exporting its GGUF)."""

    def __init__(self, window: int, candidates: list[str], step: activity.Step):
        self.label = f"training window {window}"
        self.steps: dict[str, tuple[int, int]] = {c: (0, 0) for c in candidates}
        self.done: set[str] = set()
        self.exports: dict[str, str] = {}  # candidate: "parity 3/8 prompts"
        self.step = step
        self.what = ""

    def describe(self) -> None:
        exporting = [c for c, (k, n) in self.steps.items() if n and k >= n and c not in self.done]
        what = f"{self.label}: {len(self.done)}/{len(self.steps)} candidates done"
        if exporting:
            what += f", {len(exporting)} exporting GGUF"
            where = [f"{c} {self.exports[c]}" for c in exporting if c in self.exports]
            what += f" ({'; '.join(where)})" if where else ""
        if what != self.what:
            self.what = what
            self.step.describe(what)

    def progress(self, candidate: str, p: dict[str, Any]) -> None:
        if "export" in p:  # the worker's export, after its last step
            step = str(p["export"])
            self.exports[candidate] = f"{step} {activity.counted(step, int(p.get('done', 0)), p.get('total'))}"
            self.describe()
            return
        self.steps[candidate] = (int(p.get("step", 0)), int(p.get("steps", 0)))
        self.describe()
        self.step("train", sum(k for k, _ in self.steps.values()), sum(n for _, n in self.steps.values()))

    def finished(self, candidate: str) -> None:
        self.done.add(candidate)
        self.describe()


def _train_window(
    app: App,
    config: EvoConfig,
    candidates: list[str],
    *,
    on_progress: Progress | None = None,
    on_done: Done | None = None,
    target: Callable[..., Any] | None = None,
) -> dict[str, TrainResult]:
    state = app.state()
    window = state.window
    if state.phase is not Phase.WINDOW or window is None:
        raise NothingPending(f"no evolution window is open (phase {state.phase.value}); heartbeats open one")
    todo = [state.candidates[c] for c in candidates if TrainCandidate(candidate=c) in reactions(state)]
    if not todo:
        return {}
    what = f"training window {window.number}: the teachers' outputs for {len(todo)} candidate(s)"
    with activity.step(app.ws.home, "train", what, subject=f"window {window.number}") as step:
        return _train(app, config, state, window, todo, step, on_progress=on_progress, on_done=on_done, target=target)


def _train(
    app: App,
    config: EvoConfig,
    state: State,
    window: Window,
    todo: list[Candidate],
    step: activity.Step,
    *,
    on_progress: Progress | None,
    on_done: Done | None,
    target: Callable[..., Any] | None,
) -> dict[str, TrainResult]:
    t = config.train
    ray: Any = None  # the connected ray module under executor = "ray"
    if t.executor == "ray":  # an unreachable cluster is refused before the teacher cache is built
        from adapters.training import ray_pool

        ray = ray_pool.connect(t.ray_address)
    specs = build_specs(app, config, state, window, todo)
    if not specs:  # nothing new to learn: every due candidate fails with the reason
        reason = f"no new conversations in cycles {window.since_cycle + 1}..{window.cycle} to learn from"
        for c in todo:
            if c.status is CandidateStatus.SPAWNED:
                app.execute(cmd.StartTraining(candidate=c.id))
            app.execute(cmd.FailTraining(candidate=c.id, reason=reason))
        return {}
    ns, cpus = "", 0.0
    attached: set[str] = set()
    if ray is not None:
        ns = ray_pool.namespace(state.ledger_id)
        attached = ray_pool.live(ray, ns) & {s.candidate for s in specs}  # still on the cluster
        ray_pool.sweep(ray, ns, keep=attached)  # recorded meanwhile, or an older window's
        cpus = ray_pool.cpus_each(ray, len(specs), t.cpus_per_candidate)
        specs = [replace(s, threads=max(1, int(cpus))) for s in specs]
    else:
        specs = [local_placement(s, t.cpus_per_candidate) for s in specs]
    for spec in specs:
        if spec.candidate in attached:
            continue  # its actor trains on (or has finished): reattach, never train it twice
        shutil.rmtree(spec.out_dir, ignore_errors=True)  # a crashed attempt starts afresh
        app.execute(cmd.StartTraining(candidate=spec.candidate))

    by_candidate = {s.candidate: s for s in specs}
    tally = TrainingTally(window.number, list(by_candidate), step)
    tally.describe()

    def progress(candidate: str, p: dict[str, Any]) -> None:
        tally.progress(candidate, p)
        if on_progress is not None:
            on_progress(candidate, p)

    def done(result: TrainResult) -> None:
        if result.status == "finished":  # what it trained on: the next windows' replay source
            spec = by_candidate[result.candidate]
            (Path(spec.out_dir) / "data_ids.json").write_text(json.dumps(list(spec.example_ids)))
        record(app, result)
        tally.finished(result.candidate)
        if on_done is not None:
            on_done(result)

    if ray is not None:
        return ray_pool.run_ray(specs, ray=ray, ns=ns, cpus=cpus, on_progress=progress, on_done=done)
    return run_pool(specs, on_progress=progress, on_done=done, target=target)


def local_placement(spec: TrainSpec, cpus: float) -> TrainSpec:
    """``spec`` placed on this machine: its threads (``cpus`` when configured) and GPU."""
    import socket

    threads = max(1, int(cpus)) if cpus > 0 else spec.threads
    return replace(spec, threads=threads, placement=Placement(
        executor="local", node=socket.gethostname(), cpus=float(threads),
        gpus=1.0 if spec.device.startswith("cuda") else 0.0,
    ))


def train_window(
    app: App,
    config: EvoConfig,
    candidates: list[str],
    *,
    on_progress: Progress | None = None,
    on_done: Done | None = None,
    target: Callable[..., Any] | None = None,
) -> dict[str, TrainResult]:
    """Train these candidates of the open window at once (those the core still says are due:
    ``TrainCandidate``); the projection files are rebuilt once, at the end."""
    with app.deferred():
        return _train_window(app, config, candidates, on_progress=on_progress, on_done=on_done, target=target)
