"""evo_core: the pure evolution core (events, state, evolve, decide, reactions, gates, config).

No I/O here: values in, values out. The config models (pydantic) are re-exported lazily so that
the heartbeat path, which imports this package, does not pay for pydantic.
"""

from __future__ import annotations

from typing import Any

from evo_core import commands, events
from evo_core.decide import decide
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
from evo_core.evolve import evolve, fold
from evo_core.reactions import Action, reactions
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
    "decide",
    "decode_event",
    "encode_event",
    "encode_value",
    "events",
    "evolve",
    "fold",
    "reactions",
    *sorted(_LAZY),
]
