"""Hostile and careless input (issue 13): each bad input gives one error line on stderr (after
argparse's usage line for a usage error), the right exit code (2 for a command line that cannot
mean anything, 1 otherwise), no traceback, and changes nothing: the ledger's bytes, its head, the
workspace's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Evo, Result


def snapshot(home: Path) -> dict[str, bytes]:
    """Every regular file of the workspace, by relative path (symlinks by their target)."""
    files: dict[str, bytes] = {}
    for path in sorted(home.rglob("*")):
        rel = str(path.relative_to(home))
        if path.is_symlink():
            files[rel] = b"-> " + str(path.readlink()).encode()
        elif path.is_file() and path.name != "ledger.lock":
            files[rel] = path.read_bytes()
    return files


def error_lines(r: Result) -> list[str]:
    """stderr's lines other than argparse's usage line(s)."""
    lines = [line for line in r.err.splitlines() if line.strip()]
    return [line for line in lines if not line.startswith(("usage:", "  ", "           "))]


def refused(r: Result, code: int, *words: str) -> str:
    """``r`` exited ``code`` with one error line naming ``words``, and no traceback."""
    assert r.code == code, (r.code, r.out, r.err)
    assert "Traceback" not in r.err
    lines = error_lines(r)
    assert len(lines) == 1, r.err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture
def beaten(evo: Evo) -> Evo:
    assert evo("heartbeat", "--count", "3").code == 0
    return evo


# ---------------------------------------------------------------- verify --checkpoint


@pytest.mark.parametrize(
    "checkpoint",
    ["", " ", "12", "12:", ":" + "a" * 64, "x:" + "a" * 64, "-1:" + "a" * 64, "3:" + "A" * 64, "3:abc"],
)
def test_verify_with_an_empty_or_malformed_checkpoint_is_a_usage_error(beaten: Evo, checkpoint: str) -> None:
    before = snapshot(beaten.home)
    refused(beaten("verify", "--checkpoint", checkpoint), 2, "checkpoint")
    assert snapshot(beaten.home) == before


# ---------------------------------------------------------------- cycles and counts


@pytest.mark.parametrize(
    "args",
    [
        ("heartbeat", "--cycle", "99999999999999999999999"),
        ("heartbeat", "--cycle", "9" * 5000),  # past Python's int-from-text limit
        ("heartbeat", "--cycle", str(2**53 + 1)),
        ("heartbeat", "--cycle", "-5"),
        ("heartbeat", "--cycle", "0"),
        ("heartbeat", "--cycle", "1e9"),
        ("heartbeat", "--cycle", "٣"),  # a digit, but not an ASCII one
        ("heartbeat", "--count", "0"),
        ("heartbeat", "--count", "1000001"),
        ("heartbeat", "--count", "-1"),
        ("status", "--at-cycle", "99999999999999999999999"),
        ("status", "--at-seq", "-1"),
        ("log", "--since", str(2**64)),
        ("ask", "hello", "--max-tokens", "99999999999999999999999"),
    ],
    ids=lambda a: " ".join(x[:12] for x in a),
)
def test_a_number_out_of_any_sane_range_is_a_usage_error(beaten: Evo, args: tuple[str, ...]) -> None:
    before = snapshot(beaten.home)
    line = refused(beaten(*args), 2)
    assert args[1] in line or "--" in line
    assert snapshot(beaten.home) == before


def test_a_cycle_and_count_that_end_past_the_bound_are_a_usage_error(beaten: Evo) -> None:
    before = snapshot(beaten.home)
    refused(beaten("heartbeat", "--cycle", str(2**53 - 1), "--count", "3"), 2, "--cycle")
    assert snapshot(beaten.home) == before


def test_the_bound_itself_is_a_cycle(beaten: Evo) -> None:
    assert beaten("heartbeat", "--cycle", str(2**53)).code == 0
