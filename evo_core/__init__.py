"""evo_core: the pure evolution core (events, values, state, evolve, decide, reactions, gates, config).

No I/O here: values in, values out. The config models (pydantic) are re-exported lazily so that
the heartbeat path, which imports this package, does not pay for pydantic.

No name exported here is a submodule's name, so ``from evo_core import reactions`` is always
the module: the functions ``decide``, ``evolve`` and ``reactions`` are imported from theirs
(``from evo_core.decide import decide``).
"""

from __future__ import annotations

from typing import Any

from evo_core import commands, events, values
from evo_core.errors import (
    CorruptHistory,
    CycleError,
    DomainError,
    IllegalTransition,
    InvalidInput,
    NothingPending,
    RollbackError,
    StaleProposal,
)
from evo_core.events import AnyEvent, Event, decode_event, encode_event, encode_value
from evo_core.evolve import fold
from evo_core.reactions import Action
from evo_core.state import STATE_VERSION, Candidate, CandidateStatus, Generation, Phase, State
from evo_core.transitions import ACCEPTS, accepts

_LAZY = {"EvoConfig", "ConfigError", "parse_config", "render_config", "validate_config", "HARD_CAP"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from evo_core import config

        return getattr(config, name)
    raise AttributeError(f"module 'evo_core' has no attribute {name!r}")


__all__ = [
    "ACCEPTS",
    "STATE_VERSION",
    "Action",
    "AnyEvent",
    "Candidate",
    "CandidateStatus",
    "CorruptHistory",
    "CycleError",
    "DomainError",
    "Event",
    "Generation",
    "IllegalTransition",
    "InvalidInput",
    "NothingPending",
    "Phase",
    "RollbackError",
    "StaleProposal",
    "State",
    "accepts",
    "commands",
    "decode_event",
    "encode_event",
    "encode_value",
    "events",
    "fold",
    "values",
    *sorted(_LAZY),
]
