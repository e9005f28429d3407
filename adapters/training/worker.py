"""The process entry of a training worker (``multiprocessing`` with the ``spawn`` method).

``main(spec_bytes, conn)`` decodes the ``TrainSpec`` (msgspec JSON), trains, exports a finished
candidate's ``model.gguf`` and checks its parity with llama.cpp (``export.json``; a GGUF that
does not match turns the result into a failure, ``FAIL - export parity``), sends every progress
dict as ``("progress", {...})`` (training steps, then the export's: ``{"export": "parity", "done":
3, "total": 8}``) and, last, ``("result", <TrainResult as msgspec JSON>)``. torch
and transformers are imported only inside, in the child, so the parent stays light. If the parent
has gone away, the next progress send fails, the run stops as failed and the worker exits: an
orphan never keeps training.
"""

from __future__ import annotations

from typing import Any

from adapters.runtime.activity import Progress, silent


def main(spec_bytes: bytes, conn: Any) -> None:
    import msgspec
    from msgspec.structs import replace

    from adapters.training.spec import TrainResult, TrainSpec
    from evo_core.values import BudgetUsed, TrainingStats

    try:
        spec = msgspec.json.decode(spec_bytes, type=TrainSpec)
    except msgspec.DecodeError as exc:
        result = TrainResult(
            candidate="?", status="failed", stats=TrainingStats(), budget_used=BudgetUsed(),
            reason=f"bad spec: {exc}",
        )
    else:
        from adapters.training.trainer import train

        result = train(spec, lambda info: conn.send(("progress", info)))
        _let_go()  # the training step's memory, before the export's own peak
        if result.status == "finished":

            def exporting(step: str, done: int, total: int | None) -> None:
                conn.send(("progress", {"candidate": spec.candidate, "export": step, "done": done, "total": total}))

            result = export(spec, result, exporting)
        result = replace(result, placement=spec.placement)
    try:
        conn.send(("result", msgspec.json.encode(result)))
        conn.close()
    except OSError:  # the parent is gone: nobody to tell
        pass


def _let_go() -> None:
    """Free what the last step left (peft's model holds reference cycles) and hand it back."""
    import gc

    from adapters.runtime import heap

    gc.collect()
    heap.release()


def export(spec: Any, result: Any, progress: Progress = silent) -> Any:
    """Export the candidate's weights to model.gguf and check parity; a mismatch fails it.
    ``progress(step, done, total)`` hears the export's steps (load, export, write, parity,
    quantize), which the parent shows as ``{"export": step, "done", "total"}`` dicts."""
    from msgspec.structs import replace

    from adapters.serving.gguf_export import ExportError, export_generation

    try:
        # the spec's served type (config [model] gguf_type, resolved by the orchestrator)
        record = export_generation(spec.out_dir, dtype=spec.gguf_type, name=spec.candidate, progress=progress)
    except (ExportError, OSError, ValueError, RuntimeError) as exc:
        return replace(result, status="failed", reason=f"export failed: {exc}")
    if not record.parity.passed:
        return replace(result, status="failed", reason=f"export parity ({record.parity.summary()})")
    if record.quantized is not None and not record.quantized.passed:
        return replace(result, status="failed", reason=f"export quantization ({record.quantized.summary()})")
    return result
