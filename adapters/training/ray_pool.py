"""Train a window's candidates on a Ray cluster (config ``[train] executor = "ray"``).

The same contract as ``adapters.training.pool.run_pool``: every spec trains at once, progress
dicts go to ``on_progress``, each result to ``on_done`` as it comes in, and a candidate whose
worker dies becomes a failed result with the reason; the runner stays the only ledger writer.

- **One detached, named actor per candidate** (``evo-train-<candidate>`` in the workspace's
  namespace, ``evo-<ledger id>``), so a runner killed mid-window and restarted **reattaches** to
  the candidates still training (or finished meanwhile) instead of training them twice; a
  candidate whose actor is gone is trained afresh, as the local pool does after a crash. The
  actor starts the training worker (``adapters.training.worker.main``, the local pool's entry)
  in a thread when it is created and keeps every message it sends; the runner polls them
  (``poll(since)``) twice a second. Once a result is recorded the actor is killed; actors of the
  workspace whose candidates are no longer due are swept at the next window.
- **Resources from the budget**: ``num_cpus`` = ``[train] cpus_per_candidate`` (0: the cluster's
  CPUs divided among the window's candidates, fractions allowed), the torch threads its integer
  part (at least 1); ``num_gpus`` = 1 on ``device = "cuda"``; on CPU ``memory`` = the budget's
  ``max_gpu_memory_gb`` (the peak resident memory the trainer enforces), so Ray never packs more
  students on a node than their budgets allow. A candidate no alive node can hold fails at once
  with what it asked for (never a window waiting forever).
- **Where it ran**: the actor fills the spec's ``Placement`` (node id, node address, the
  resources Ray assigned) before training, so ``train_args.json`` and the training event record it.
- **What must be shared**: the workspace's path (its ``models/``, ``cache/`` and ``work/``
  folders) at the same path on every node (NFS or a shared volume): the actor reads the parent
  weights and the window's teacher cache there and writes the candidate's folder there, so the
  artifacts are in the workspace before the freeze step. A node that does not see them fails the
  candidate saying so.
- **Deaths**: an actor killed (``ray.kill``, a lost node, Ray's out-of-memory killer) raises on
  the next poll; its candidate fails with ``Ray actor died: <cause>``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any, Sequence

import msgspec

from adapters.training.pool import Done, Progress, failed
from adapters.training.spec import TrainResult, TrainSpec
from evo_core.errors import EnvironmentFault
from evo_core.values import Placement

ACTOR_PREFIX = "evo-train-"
POLL_S = 0.5
GIB = 2**30


class RayUnavailable(EnvironmentFault):
    """The Ray cluster cannot be reached (one line for the CLI)."""


def namespace(ledger_id: str) -> str:
    return f"evo-{ledger_id[:16]}"


def actor_name(candidate: str) -> str:
    return ACTOR_PREFIX + candidate


def connect(address: str = "") -> Any:
    """The ``ray`` module, connected: to the cluster already initialised in this process, else
    ``address`` (config), else ``RAY_ADDRESS``, else a local Ray started for this runner."""
    import ray  # not installed: the CLI names the extra to install (ray)

    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS") or None
        if target and target != "auto":
            _reachable(target)  # ray.init retries an unreachable GCS for minutes
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            ray.init(address=target, log_to_driver=False, include_dashboard=False, logging_level=logging.ERROR,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = target or "a local Ray"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RayUnavailable(
                f"cannot reach the Ray cluster at {where} ({first}): start it with `ray start --head` "
                "or fix [train] ray_address / RAY_ADDRESS"
            ) from None
        finally:  # ray.init installs its own SIGTERM handler: the runner's must stay (WorkInterrupted)
            for number, handler in handlers.items():
                if handler is not None and threading.current_thread() is threading.main_thread():
                    signal.signal(number, handler)
    return ray


def _reachable(target: str, timeout_s: float = 5.0) -> None:
    """Refuse at once, in one line, a cluster address nothing answers at."""
    import socket

    hostport = target.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(f"the Ray address {target!r} is not HOST:PORT: fix [train] ray_address / RAY_ADDRESS")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayUnavailable(
            f"cannot reach the Ray cluster at {target} ({exc.strerror or exc}): start it with `ray start --head` "
            "or fix [train] ray_address / RAY_ADDRESS"
        ) from None


def resources(spec: TrainSpec, cpus: float) -> dict[str, float]:
    """What a candidate asks Ray for (module doc)."""
    cuda = spec.device.startswith("cuda")
    wanted = {"num_cpus": float(cpus), "num_gpus": 1.0 if cuda else 0.0}
    if not cuda:
        wanted["memory"] = float(int(spec.budget.max_gpu_memory_gb * GIB))
    return wanted


def cpus_each(ray: Any, candidates: int, configured: float) -> float:
    """CPUs per candidate: configured, else the cluster's divided among them (two decimals)."""
    if configured > 0:
        return float(configured)
    total = float(ray.cluster_resources().get("CPU", 1.0))
    return max(0.01, int(100 * total / max(1, candidates)) / 100)


def _infeasible(ray: Any, wanted: dict[str, float]) -> str | None:
    """Why no alive node can hold a candidate asking ``wanted``; None when one can."""
    need = {"CPU": wanted["num_cpus"], "GPU": wanted["num_gpus"], "memory": wanted.get("memory", 0.0)}
    for node in ray.nodes():
        if node.get("Alive") and all(node.get("Resources", {}).get(k, 0.0) >= v for k, v in need.items() if v > 0):
            return None
    asked = f"{need['CPU']:g} CPUs, {need['GPU']:g} GPUs, {need['memory'] / GIB:.1f} GiB memory"
    return (f"no node of the Ray cluster can hold it ({asked}): lower [budget] max_gpu_memory_gb or "
            "[train] cpus_per_candidate, or add a node")


def _death(exc: BaseException) -> str:
    text = str(exc)
    if "ray.kill" in text:
        cause = "killed with ray.kill"
    elif "OutOfMemory" in type(exc).__name__ or "out of memory" in text.lower() or "OOM" in text:
        cause = "out of memory"
    elif "node" in text.lower() and ("died" in text.lower() or "dead" in text.lower()):
        cause = "its node was lost"
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        cause = lines[0] if lines else type(exc).__name__
    return f"Ray actor died: {cause}"


def _actor_class(ray: Any) -> Any:
    class CandidateTrainer:
        """Trains one candidate in a thread started at creation; keeps what it sends."""

        def __init__(self, spec_bytes: bytes):
            import socket

            spec = msgspec.json.decode(spec_bytes, type=TrainSpec)
            context = ray.get_runtime_context()
            assigned = context.get_assigned_resources()
            here = Placement(
                executor="ray",
                node=str(context.get_node_id()),
                address=f"{socket.gethostname()} {ray.util.get_node_ip_address()}",
                cpus=float(assigned.get("CPU", 0.0)),
                gpus=float(assigned.get("GPU", 0.0)),
                memory_gb=round(float(assigned.get("memory", 0.0)) / GIB, 3),
            )
            self.spec = msgspec.structs.replace(spec, placement=here)
            self.lock = threading.Lock()
            self.messages: list[Any] = [("placement", msgspec.json.encode(here))]
            threading.Thread(target=self._run, name="evo-train", daemon=True).start()

        def _run(self) -> None:
            from adapters.training import worker

            spec = self.spec
            missing = [p for p in (spec.parent_dir, spec.cache_path) if not os.path.exists(p)]
            if missing:
                reason = (f"node {spec.placement.address if spec.placement else '?'} does not see the workspace "
                          f"({missing[0]} is missing): share it at the same path on every Ray node")
                self.send(("result", msgspec.json.encode(failed(spec, reason))))
                return
            try:
                worker.main(msgspec.json.encode(spec), self)
            except BaseException as exc:  # the worker reports its own failures; this is the last net
                self.send(("result", msgspec.json.encode(failed(spec, f"worker raised {type(exc).__name__}: {exc}"))))

        def send(self, message: Any) -> None:
            with self.lock:
                self.messages.append(message)

        def close(self) -> None:
            pass

        def poll(self, since: int) -> list[Any]:
            with self.lock:
                return self.messages[since:]

    return ray.remote(max_concurrency=2, max_restarts=0)(CandidateTrainer)


def live(ray: Any, ns: str) -> set[str]:
    """The candidates with an actor alive in namespace ``ns``."""
    from ray.util import list_named_actors

    names = list_named_actors(all_namespaces=True)
    return {n["name"][len(ACTOR_PREFIX):] for n in names
            if n.get("namespace") == ns and n["name"].startswith(ACTOR_PREFIX)}


def sweep(ray: Any, ns: str, keep: set[str]) -> list[str]:
    """Kill this workspace's actors whose candidates are not in ``keep`` (recorded meanwhile,
    or a window that ended); the candidates swept."""
    gone = []
    for candidate in sorted(live(ray, ns) - keep):
        try:
            ray.kill(ray.get_actor(actor_name(candidate), namespace=ns))
            gone.append(candidate)
        except ValueError:  # gone meanwhile
            pass
    return gone


def run_ray(
    specs: Sequence[TrainSpec],
    *,
    ray: Any,
    ns: str,
    cpus: float,
    on_progress: Progress | None = None,
    on_done: Done | None = None,
) -> dict[str, TrainResult]:
    """Train (or reattach to) every spec on the cluster; results by candidate (module doc)."""
    results: dict[str, TrainResult] = {}
    actors: dict[str, Any] = {}
    seen: dict[str, int] = {}
    placements: dict[str, Placement] = {}
    by_candidate = {s.candidate: s for s in specs}

    def finish(candidate: str, result: TrainResult) -> None:
        results[candidate] = result
        actor = actors.pop(candidate, None)
        if on_done is not None:
            on_done(result)
        if actor is not None:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - dead already: nothing to free
                pass

    trainer = _actor_class(ray)
    for spec in specs:
        name = actor_name(spec.candidate)
        try:
            actors[spec.candidate] = ray.get_actor(name, namespace=ns)  # reattach
        except ValueError:
            wanted = resources(spec, cpus)
            why = _infeasible(ray, wanted)
            if why is not None:
                finish(spec.candidate, failed(spec, why))
                continue
            actors[spec.candidate] = trainer.options(
                name=name, namespace=ns, lifetime="detached", **wanted
            ).remote(msgspec.json.encode(spec))
        seen[spec.candidate] = 0

    while actors:
        polls = {actors[c].poll.remote(seen[c]): c for c in list(actors)}
        ready, _ = ray.wait(list(polls), num_returns=len(polls), timeout=30.0)
        for ref in ready:
            candidate = polls[ref]
            spec = by_candidate[candidate]
            try:
                messages = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - RayActorError and its kin: the actor is gone
                placed = msgspec.structs.replace(spec, placement=placements.get(candidate))
                finish(candidate, failed(placed, _death(exc)))
                continue
            seen[candidate] += len(messages)
            for kind, body in messages:
                if kind == "placement":
                    placements[candidate] = msgspec.json.decode(body, type=Placement)
                elif kind == "result":
                    finish(candidate, msgspec.json.decode(body, type=TrainResult))
                    break
                elif on_progress is not None:
                    on_progress(candidate, body)
        if actors:
            time.sleep(POLL_S)
    return results


__all__ = ["RayUnavailable", "actor_name", "connect", "cpus_each", "live", "namespace", "resources", "run_ray", "sweep"]
