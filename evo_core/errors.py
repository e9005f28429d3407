"""Typed domain errors. ``decide`` raises one of these and changes nothing; the CLI prints its
message as one line and exits 1."""

from __future__ import annotations


class DomainError(Exception):
    """A command that the current state does not allow."""


class IllegalTransition(DomainError):
    """An event the current phase does not accept (see ``transitions.ACCEPTS``)."""


class CycleError(DomainError):
    """A heartbeat cycle that does not strictly increase."""


class NothingPending(DomainError):
    """A command about a proposal, window or candidate that is not there."""


class StaleProposal(DomainError):
    """An approval or rejection naming a proposal that is no longer the pending one."""


class RollbackError(DomainError):
    """A rollback to a target that was never promoted, or with nowhere to go."""


class InvalidInput(DomainError):
    """A value that can never be right (non-finite metric, duplicate seed, too many branches)."""


class CorruptHistory(DomainError):
    """A ledger event that cannot apply to the state before it (an unknown candidate or
    generation, no open window): the ledger was written by something other than ``decide``."""
