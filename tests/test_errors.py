"""One error family (STYLE rule 15): one root that carries its exit code, branches by who is at
fault, and no other exception root in evo_core, ledger, projections or adapters."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

from adapters.operator import signing
from adapters.operator.approvals import Refused
from adapters.data.conversations import IngestError
from adapters.freeze.archive import ArchiveExists
from adapters.models.hf import ModelError
from adapters.serving.generations import ServingError
from adapters.serving.gguf_export import ExportError
from adapters.runtime.workspace import WorkspaceError
from evo_core.config import ConfigError
from evo_core.errors import (
    CorruptHistory,
    CycleError,
    DomainError,
    EnvironmentFault,
    EvoError,
    IllegalTransition,
    InvalidInput,
    NothingPending,
    RollbackError,
    StaleProposal,
    UsageError,
)
from ledger.record import CorruptRecord
from ledger.store import ConcurrencyError

ROOT = Path(__file__).resolve().parent.parent
# Not errors a user is told about: a training run's divergence (caught and recorded by the
# trainer), the runner's stop signal (a BaseException on purpose, so no handler eats it), a
# closed stdout (the reader left: the command ends quietly, exit 0) and evo serve's HTTP answer
# to a refused request (caught by the server's handler and sent as an OpenAI error body).
OUTSIDE = {"Diverged", "Interrupted", "StdoutClosed", "ApiError"}
BUILTIN_EXCEPTIONS = {name for name, value in vars(builtins).items()
                      if isinstance(value, type) and issubclass(value, BaseException)}

BRANCHES: dict[type[EvoError], list[type[EvoError]]] = {
    DomainError: [IllegalTransition, CycleError, NothingPending, StaleProposal, RollbackError, InvalidInput, Refused],
    CorruptHistory: [CorruptRecord],
    EnvironmentFault: [
        ConfigError, ConcurrencyError, signing.KeyFileError, WorkspaceError,
        ArchiveExists, ModelError, IngestError, ExportError, ServingError,
    ],
    UsageError: [],
}


def test_no_exception_root_outside_the_family() -> None:
    roots = []
    for package in ("evo_core", "ledger", "projections", "adapters"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.ClassDef) or node.name in OUTSIDE | {"EvoError"}:
                    continue
                builtin = [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in BUILTIN_EXCEPTIONS]
                if builtin:
                    roots.append(f"{path.relative_to(ROOT)}: {node.name}({builtin[0]})")
    assert not roots, "errors outside evo_core.errors' family (derive from one of its branches):\n" + "\n".join(roots)


@pytest.mark.parametrize("branch", list(BRANCHES), ids=lambda b: b.__name__)
def test_each_error_is_in_the_branch_of_who_is_at_fault(branch: type[EvoError]) -> None:
    assert issubclass(branch, EvoError)
    others = [b for b in BRANCHES if b is not branch]
    for kind in BRANCHES[branch]:
        assert issubclass(kind, branch), kind
        assert not any(issubclass(kind, other) for other in others), kind


def test_the_exit_codes() -> None:
    assert EvoError.exit_code == 1
    assert UsageError.exit_code == 2
    for branch, kinds in BRANCHES.items():
        for kind in [branch, *kinds]:
            assert kind.exit_code == (2 if kind is UsageError else 1), kind
