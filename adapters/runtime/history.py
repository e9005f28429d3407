"""The one verified history: the fold every acting process uses (``evo_core.authority``).

``verified_fold(ledger)`` is the ``EventStore`` fold of the runner, the router, the agent's API,
the CLI and ``evo verify``: each record is admitted (the machine could have produced it, its
signatures verify with the keys the ledger trusted then) before it is applied, else flagged.
Snapshots are not read: a snapshot file is something the agent can write, so the state that
decides what is served is folded from the records (about 700k records a second; a long-lived
process folds only what was appended since). ``ledger_id`` is the hash of record 0, what every
operator signature is bound to.
"""

from __future__ import annotations

from typing import Any

import msgspec

from evo_core.authority import verified
from evo_core.state import STATE_VERSION, State
from ledger.eventstore import SNAPSHOT_FORMAT, Fold
from ledger.port import LedgerPort


def ledger_id(ledger: LedgerPort) -> str:
    """The hash of record seq 0 ("" for an empty ledger)."""
    records = ledger.records()
    try:
        first = next(records, None)  # reads the first line only
    finally:
        records.close()  # type: ignore[attr-defined]
    return "" if first is None else str(first.hash)


def verified_fold(ledger: LedgerPort) -> Fold[Any]:
    from adapters.operator.crypto import CRYPTO

    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(State)
    return Fold(
        initial=State,
        evolve=verified(CRYPTO, lambda: ledger_id(ledger)),
        encode=encoder.encode,
        decode=decoder.decode,
        version=f"{SNAPSHOT_FORMAT};{STATE_VERSION};verified",
    )
