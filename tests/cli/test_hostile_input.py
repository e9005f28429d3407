"""Hostile and careless input (issue 13): each bad input gives one error line on stderr (after
argparse's usage line for a usage error), the right exit code (2 for a command line that cannot
mean anything, 1 otherwise), no traceback, and changes nothing: the ledger's bytes, its head, the
workspace's files."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tests.cli.conftest import Evo, Result


def snapshot(home: Path) -> dict[str, bytes]:
    """Every regular file of the workspace but the lock files, by relative path (symlinks by
    their target)."""
    files: dict[str, bytes] = {}
    for path in sorted(home.rglob("*")):
        rel = str(path.relative_to(home))
        if path.is_symlink():
            files[rel] = b"-> " + str(path.readlink()).encode()
        elif path.is_file() and path.name not in ("ledger.lock", "runner.lock"):  # locks, never content
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


# ---------------------------------------------------------------- config.toml


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "   \n# wiped\n"])
@pytest.mark.parametrize("command", [("heartbeat",), ("status",), ("train",), ("run", "--until-idle")])
def test_an_empty_config_is_refused_by_every_command(evo: Evo, text: str, command: tuple[str, ...]) -> None:
    (evo.home / "config.toml").write_text(text)
    before = snapshot(evo.home)
    refused(evo(*command), 1, "config.toml is empty")
    assert snapshot(evo.home) == before


@pytest.mark.parametrize(
    "section, setting",
    [
        ("approval", 'autonomous = "yes"'),
        ("approval", "autonomous = 1"),
        ("approval", 'autonomous = "true"'),
        ("train", 'steps = "600"'),
        ("train", "steps = 600.0"),
        ("train", "steps = true"),
        ("budget", 'max_walltime_minutes = "60"'),
        ("shadow", 'replay = "no"'),
        ("shadow", "replay = 0"),
        ("burn_in", "min_answers = false"),
        ("gates", "epsilon = true"),
    ],
)
def test_config_values_are_never_coerced_from_another_type(evo: Evo, section: str, setting: str) -> None:
    from evo_core.config import ConfigError, parse_config

    config = evo.home / "config.toml"
    key = setting.split(" = ")[0]
    text = "\n".join(
        setting if line.startswith(f"{key} = ") and current == section else line
        for current, line in _with_sections(config.read_text())
    )
    assert setting in text
    config.write_text(text)
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        parse_config(text)
    before = snapshot(evo.home)
    refused(evo("train"), 1, f"{section}.{key}")
    assert snapshot(evo.home) == before


def _with_sections(text: str) -> list[tuple[str, str]]:
    section, out = "", []
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        out.append((section, line))
    return out


def test_a_valid_config_still_takes_floats_as_integers_and_arrays_as_tuples() -> None:
    from evo_core.config import EvoConfig, parse_config, render_config

    config = parse_config(
        "[gates]\nepsilon = 0\n[train]\ntarget_modules = [\"q_proj\"]\n"
        "[approval]\nautonomous = true\ntrusted_keys = []\n"
    )
    assert config.gates.epsilon == 0.0 and isinstance(config.gates.epsilon, float)
    assert config.train.target_modules == ("q_proj",)
    assert config.approval.autonomous is True
    assert parse_config(render_config()) == EvoConfig()


def test_the_heartbeat_reads_the_same_names_the_config_knows() -> None:
    from evo_core import config_file
    from evo_core.config import EvoConfig, LedgerConfig

    assert config_file.TOP_LEVEL == set(EvoConfig.model_fields)
    assert config_file.LEDGER_SECTION == set(LedgerConfig.model_fields)
    default = EvoConfig()
    assert (default.agent_name, default.evo_period_cycles, default.ledger.snapshot_every) == (
        config_file.AGENT_NAME,
        config_file.EVO_PERIOD_CYCLES,
        config_file.SNAPSHOT_EVERY,
    )


# ---------------------------------------------------------------- the heartbeat's settings


@pytest.mark.parametrize("cache", ["edited", "created", "garbage"])
def test_a_settings_file_in_the_workspace_changes_nothing(evo: Evo, cache: str) -> None:
    """The period comes from config.toml's bytes, never from a file beside it (an old cache)."""
    import json

    settings = evo.home / ".evo" / "settings.json"
    settings.parent.mkdir(exist_ok=True)
    if cache == "garbage":
        settings.write_bytes(b"\xff not json")
    else:
        from evo_core.config import parse_config

        import blake3

        raw = (evo.home / "config.toml").read_bytes()
        period = parse_config(raw.decode()).evo_period_cycles
        assert period == 10
        forged = {
            "source": blake3.blake3(raw).hexdigest(), "agent_name": "Luna",
            "evo_period_cycles": 2, "snapshot_every": 1,
        }
        if cache == "edited":  # what the old cache held, with a shorter period
            settings.write_text(json.dumps(forged))
        else:
            settings.write_text(json.dumps({**forged, "source": "0" * 64}))
    before = settings.read_bytes()
    r = evo("heartbeat", "--count", "9")
    assert r.code == 0, r.err
    assert "window" not in r.out  # a period of 2 would have opened windows by now
    r = evo("heartbeat")
    assert "window 1 opened at cycle 10" in r.out
    assert settings.read_bytes() == before  # neither read nor rewritten
    assert evo("status").code == 0


def test_no_command_writes_a_settings_cache(evo: Evo) -> None:
    for args in [("heartbeat",), ("status",), ("train",)]:
        evo(*args)
    assert not (evo.home / ".evo" / "settings.json").exists()


# ---------------------------------------------------------------- evo report --out


@pytest.mark.parametrize(
    "target",
    ["ledger.jsonl", "ledger.head", "config.toml", "models/lineage.csv", "models", "notes.html",
     "models/archive/Luna-G000-genesis/new.html", "snapshots/x.html", ".evo/x.html", "ledger.jsonl.html/.."],
)
def test_report_out_never_overwrites_a_workspace_file(beaten: Evo, target: str) -> None:
    home = beaten.home
    (home / "notes.html").write_text("<p>the operator's own notes</p>\n")
    before = snapshot(home)
    r = beaten("report", "--out", str(home / target))
    assert r.code == 2, r.err
    refused(r, 2, "--out")
    assert snapshot(home) == before


def test_report_out_never_overwrites_a_file_that_is_not_a_report(beaten: Evo, tmp_path: Path) -> None:
    mine = tmp_path / "mine.html"
    mine.write_text("<html>not evo's</html>\n")
    link = tmp_path / "link.html"
    link.symlink_to(beaten.home / "ledger.jsonl")
    before = snapshot(beaten.home)
    refused(beaten("report", "--out", str(mine)), 2, "not an evo report")
    assert mine.read_text() == "<html>not evo's</html>\n"
    refused(beaten("report", "--out", str(link)), 2, "--out")
    assert link.is_symlink() and snapshot(beaten.home) == before


def test_report_out_replaces_a_report_it_wrote(beaten: Evo, tmp_path: Path) -> None:
    out = tmp_path / "audit.html"
    assert beaten("report", "--out", str(out)).code == 0
    assert beaten("heartbeat").code == 0
    first = out.read_bytes()
    assert beaten("report", "--out", str(out)).code == 0
    assert out.read_bytes() != first  # the new checkpoint
    assert beaten("report").code == 0 and beaten("report").code == 0  # the default, twice


# ---------------------------------------------------------------- a missing ledger


@pytest.mark.parametrize(
    "command",
    [("heartbeat",), ("status",), ("status", "--at-cycle", "1"), ("log",), ("head",), ("timeline", "Luna-G000-genesis"),
     ("explain", "Luna-G000"), ("report",), ("train",), ("evaluate",), ("run", "--until-idle")],
)
def test_a_missing_ledger_with_its_head_is_an_error_never_a_new_ledger(beaten: Evo, command: tuple[str, ...]) -> None:
    ledger = beaten.home / "ledger.jsonl"
    kept = ledger.read_bytes()
    ledger.unlink()
    before = snapshot(beaten.home)
    line = refused(beaten(*command), 1, "ledger.jsonl is missing")
    assert "ledger.head" in line
    assert not ledger.exists()
    assert snapshot(beaten.home) == before
    ledger.write_bytes(kept)  # put back: all is well again
    assert beaten("heartbeat").code == 0


def test_verify_reports_a_missing_ledger(beaten: Evo) -> None:
    (beaten.home / "ledger.jsonl").unlink()
    r = beaten("verify")
    assert r.code == 1 and "Traceback" not in r.err
    assert not (beaten.home / "ledger.jsonl").exists()


def test_a_long_lived_ledger_never_recreates_a_deleted_file(beaten: Evo) -> None:
    from ledger.store import Ledger, LedgerMissing
    from evo_core.events import Heartbeat

    with Ledger(beaten.home) as ledger:
        ledger.append([Heartbeat(cycle=4)])
        (beaten.home / "ledger.jsonl").unlink()
        with pytest.raises(LedgerMissing):
            ledger.append([Heartbeat(cycle=5)])
        with pytest.raises(LedgerMissing):
            ledger.tail()
    assert not (beaten.home / "ledger.jsonl").exists()


def test_a_new_ledger_is_still_created_by_the_first_append(tmp_path: Path) -> None:
    from ledger.store import Ledger
    from evo_core.events import Heartbeat

    with Ledger(tmp_path / "fresh") as ledger:
        assert ledger.tail().seq == -1
        assert ledger.append([Heartbeat(cycle=1)]).seq == 0


# ---------------------------------------------------------------- verify --deep and links in an archive


def _writable(folder: Path) -> None:
    folder.chmod(0o755)


@pytest.mark.parametrize("how", ["file swapped for a link to the same bytes", "extra link", "link to a folder"])
def test_verify_deep_reports_a_symlink_inside_an_archive(evo: Evo, tmp_path: Path, how: str) -> None:
    archive = evo.home / "models" / "archive" / "Luna-G000-genesis"
    assert evo("verify", "--deep").code == 0
    _writable(archive)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if how.startswith("file swapped"):  # the tree hash alone cannot see it: the bytes are the same
        card = archive / "GENESIS.md"
        (elsewhere / "GENESIS.md").write_bytes(card.read_bytes())
        card.chmod(0o644)
        card.unlink()
        card.symlink_to(elsewhere / "GENESIS.md")
    elif how == "extra link":
        (archive / "extra.gguf").symlink_to(elsewhere / "model.gguf")
    else:
        (archive / "weights").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(evo.home)
    r = evo("verify", "--deep")
    assert r.code == 1 and "Traceback" not in r.err
    assert "symbolic link" in r.out + r.err
    assert snapshot(evo.home) == before
    assert evo("verify").code == 0  # the shallow verify does not open archives


def test_verify_deep_reports_an_archive_folder_that_is_a_symlink(evo: Evo, tmp_path: Path) -> None:
    import shutil

    archive = evo.home / "models" / "archive" / "Luna-G000-genesis"
    copy = tmp_path / "copy"
    shutil.copytree(archive, copy)
    _writable(archive)
    for p in archive.iterdir():
        p.chmod(0o644)
    shutil.rmtree(archive)
    archive.symlink_to(copy, target_is_directory=True)
    r = evo("verify", "--deep")
    assert r.code == 1 and "symbolic link" in r.out + r.err


# ---------------------------------------------------------------- one runner per workspace


def _start_runner(home: Path, log: Path) -> "subprocess.Popen[bytes]":
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "--home", str(home), "run"],
            stdout=out, stderr=subprocess.STDOUT, cwd=root,
        )


def _wait(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_second_runner_exits_1_naming_the_holder_and_a_killed_one_leaves_no_lock(
    beaten: Evo, tmp_path: Path
) -> None:
    import json
    import signal
    import socket

    lock = beaten.home / ".evo" / "runner.lock"
    proc = _start_runner(beaten.home, tmp_path / "run.log")
    try:
        def holding() -> bool:
            try:
                return json.loads(lock.read_bytes())["pid"] == proc.pid
            except (OSError, ValueError, KeyError):
                return proc.poll() is not None
        assert _wait(holding) and proc.poll() is None, (tmp_path / "run.log").read_text()
        ledger = beaten.ledger_bytes
        line = refused(beaten("run", "--until-idle"), 1, "another runner", f"pid {proc.pid}", socket.gethostname(), "since")
        assert "runner.lock" in line
        assert beaten.ledger_bytes == ledger
        assert json.loads(lock.read_bytes())["pid"] == proc.pid  # the holder's note is left alone
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    r = beaten("run", "--until-idle")  # the kernel released the killed runner's lock
    assert r.code == 0, r.err
    assert beaten("run", "--until-idle").code == 0  # and this one released its own


def test_the_runner_lock_is_per_workspace(beaten: Evo) -> None:
    from adapters.runtime.runner_lock import RunnerBusy, RunnerLock
    from adapters.runtime.workspace import Workspace

    with RunnerLock(Workspace(beaten.home)):
        with pytest.raises(RunnerBusy, match=r"pid \d+ on host"):
            RunnerLock(Workspace(beaten.home)).acquire()
        other = beaten.home.parent / "other"
        with RunnerLock(Workspace(other)):
            pass


# ---------------------------------------------------------------- the operator's commands (lead)


@pytest.mark.parametrize("command", [["approve"], ["reject", "--reason", "r"], ["rollback"]])
def test_non_utf8_arguments_are_a_usage_error_and_change_nothing(evo: Evo, command: list[str]) -> None:
    before = evo.ledger_bytes
    bad = b"op\xff\xfe".decode("utf-8", "surrogateescape")  # what Python makes of such argv bytes
    r = evo(*command, "--operator", bad)
    assert r.code == 2 and r.err.splitlines()[-1].startswith("evo: error: argument") and "UTF-8" in r.err
    assert "Traceback" not in r.err and evo.ledger_bytes == before


@pytest.mark.parametrize("given", ["", "   ", "abc", "zzzzzzzzzz", "0" * 65, "ab cd ef gh"])
def test_a_malformed_proposal_is_a_usage_error_not_a_refusal(evo: Evo, given: str) -> None:
    before = evo.ledger_bytes
    key = evo.home.parent / "operator" / "operator.key"
    r = evo("approve", "--proposal", given, "--key", str(key))
    assert r.code == 2 and "--proposal" in r.err.splitlines()[-1]
    assert evo.ledger_bytes == before
