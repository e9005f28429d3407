"""The process entry of a training worker (``multiprocessing`` with the ``spawn`` method).

``main(spec_bytes, conn)`` decodes the ``TrainSpec`` (msgspec JSON), trains, sends every progress
dict as ``("progress", {...})`` and, last, ``("result", <TrainResult as msgspec JSON>)``. torch
and transformers are imported only inside, in the child, so the parent stays light. If the parent
has gone away, the next progress send fails, the run stops as failed and the worker exits: an
orphan never keeps training.
"""

from __future__ import annotations

from typing import Any


def main(spec_bytes: bytes, conn: Any) -> None:
    import msgspec

    from adapters.training.spec import TrainResult, TrainSpec
    from evo_core.events import BudgetUsed, TrainingStats

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
    try:
        conn.send(("result", msgspec.json.encode(result)))
        conn.close()
    except OSError:  # the parent is gone: nobody to tell
        pass
