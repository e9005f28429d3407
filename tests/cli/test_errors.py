"""The CLI maps an error by its type, never its text: one line on stderr, the error's exit code,
no traceback (``adapters.cli.main``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from adapters.cli import evo as cli
from evo_core.config import ConfigError
from evo_core.errors import EvoError, NothingPending, UsageError
from ledger.record import CorruptRecord
from ledger.store import ConcurrencyError


class Teapot(EvoError):
    exit_code = 3


@pytest.mark.parametrize(
    "error, code",
    [
        (NothingPending("nothing to approve: no proposal is pending (phase idle)"), 1),
        (CorruptRecord(7, "hash mismatch"), 1),
        (ConcurrencyError(4, 5), 1),
        (ConfigError("config.toml: gates.epsilon: must be > 0 (got -1)"), 1),
        (Teapot("a branch's own exit code"), 3),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_an_error_prints_one_line_and_exits_with_its_code(
    error: EvoError, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def command(args: argparse.Namespace) -> int:
        raise error

    monkeypatch.setattr(cli, "cmd_head", command)
    assert cli.main(["--home", str(tmp_path), "head"]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"evo: error: {error}\n"


def test_a_usage_error_adds_the_usage_line_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def command(args: argparse.Namespace) -> int:
        raise UsageError("--key signs here, --signature brings a signature made elsewhere: not both")

    monkeypatch.setattr(cli, "cmd_head", command)
    assert cli.main(["--home", str(tmp_path), "head"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("usage: ") and lines[-1] == (
        "evo: error: --key signs here, --signature brings a signature made elsewhere: not both"
    )
