"""One error family. Every error evo reports to its user is an ``EvoError``: its message is one
line that says what is wrong and how to fix it, and it carries the exit status the CLI returns.
The branches say who is at fault::

    EvoError                 exit 1 unless a branch says otherwise
    |- UsageError            exit 2: a command line that cannot mean anything
    |- DomainError           a refused command: the state does not allow it (``decide`` raises
    |                        one and changes nothing): IllegalTransition, CycleError,
    |                        NothingPending, StaleProposal, RollbackError, InvalidInput; the
    |                        CLI's Refused (a signed command refused and recorded)
    |- CorruptHistory        the history is damaged: a ledger record that breaks the chain
    |                        (ledger's CorruptRecord) or an event that cannot apply
    '- EnvironmentFault      what evo runs in is not usable: a bad config.toml (ConfigError),
                             a missing workspace or model folder (adapters' WorkspaceError and
                             its kinds), a key file (KeyFileError), a ledger another writer
                             moved meanwhile (ConcurrencyError)

The CLI maps the type (``except EvoError``: one line, ``exit_code``), never the message text.
Every layer may import this module: the core is the lowest one.
"""

from __future__ import annotations

from typing import ClassVar


class EvoError(Exception):
    """The root: an error evo reports as one line and exits with ``exit_code``."""

    exit_code: ClassVar[int] = 1


class UsageError(EvoError):
    """A command line that cannot mean anything (the CLI adds its usage line)."""

    exit_code = 2


class DomainError(EvoError):
    """A command that the current state does not allow (a refused command)."""


class CorruptHistory(EvoError):
    """A damaged history. In the core: a ledger event that cannot apply to the state before it
    (an unknown candidate or generation, no open window): the ledger was written by something
    other than ``decide``."""


class EnvironmentFault(EvoError):
    """What evo runs in is not usable: files, folders, config, keys, another writer."""


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
