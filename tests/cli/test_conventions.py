"""The CLI's conventions: `--version`, `--home` after the command, shell completion (checked in a
real bash), a quiet exit when the reader of stdout goes away (a real pipe), `--at-seq` past the
end, `timeline` by unique prefix, and the one JSON shape `log --json`, `timeline --json` and
models/evolution_log.jsonl share."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.cli.conftest import Evo, LedgerDriver

ROOT = Path(__file__).resolve().parents[2]
SHARED = ["seq", "at", "cycle", "type", "summary", "event"]


def run_evo(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adapters.cli", *args], input=stdin, capture_output=True, text=True, cwd=ROOT,
        timeout=300,
    )


def test_version_prints_the_installed_version() -> None:
    r = run_evo("--version")
    assert r.returncode == 0 and r.stdout == f"evo {version('evo')}\n" and r.stderr == ""


def test_home_is_taken_after_the_command_too_and_two_different_ones_are_refused(evo: Evo) -> None:
    from adapters.cli import main

    home = str(evo.home)
    evo.capsys.readouterr()
    assert main(["status", "--home", home, "--json"]) == 0
    assert json.loads(evo.capsys.readouterr().out)["head"]
    assert main(["probes", "validate", "--home", home, "--help"][:-1]) in (0, 1)  # nested commands take it too
    evo.capsys.readouterr()
    assert main(["--home", home, "head", "--home", home]) == 0  # the same twice is fine
    assert main(["--home", home, "head", "--home", home + "-other"]) == 2
    assert "--home given twice" in evo.capsys.readouterr().err


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_completion_script_completes_commands_actions_and_options(tmp_path: Path) -> None:
    r = run_evo("completion", "bash")
    assert r.returncode == 0 and r.stderr == ""
    script = tmp_path / "evo.bash"
    script.write_text(r.stdout)

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        body = (
            f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; COMP_LINE='{line}'; "
            f"COMP_POINT={len(line)}; _shtab_evo; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        )
        done = subprocess.run(["bash", "-c", body], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("evo", "sta") == ["status"]
    assert complete("evo", "config", "s") == ["show", "set"]
    assert complete("evo", "ingest", "--f") == ["--format"]
    assert "--home" in complete("evo", "status", "--h")
    zsh = run_evo("completion", "zsh")
    assert zsh.returncode == 0 and "#compdef evo" in zsh.stdout


def test_the_completion_library_stays_out_of_a_heartbeat(evo: Evo) -> None:
    code = (
        "import sys; from adapters.cli import main; rc = main(['--home', sys.argv[1], 'heartbeat']);"
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('shtab', 'tomlkit', 'importlib_metadata')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(evo.home)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip().endswith("0 []"), out.stdout + out.stderr


def test_log_json_into_a_reader_that_stops_early_exits_quietly(evo: Evo) -> None:
    evo("heartbeat", "--count", "30000")  # far more than a pipe holds
    for command in ("log --json", "log"):
        shell = (
            f"set -o pipefail; {sys.executable} -m adapters.cli --home {evo.home} {command} | head -1 >/dev/null; "
            "echo status=${PIPESTATUS[0]}"
        )
        r = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert r.stdout.strip() == "status=0", (command, r.stdout, r.stderr)
        assert r.stderr == "", (command, r.stderr)  # no traceback, no "Exception ignored"


def test_status_at_a_seq_past_the_ledgers_end_is_one_line_and_exit_1(evo: Evo) -> None:
    evo("heartbeat", "--count", "3")
    last = int(evo("head").out.split(":")[0])
    assert evo("status", "--at-seq", str(last)).code == 0
    r = evo("status", "--at-seq", str(last + 1))
    assert r.code == 1 and r.out == ""
    assert r.err == f"evo: error: --at-seq {last + 1} is past the ledger's end (its last record is seq {last})\n"


def _window_with_candidates(driver: LedgerDriver) -> list[str]:
    from evo_core import commands as cmd

    driver.open_window()
    driver.do(cmd.SpawnCandidates(config=driver.config))
    return driver.candidates()


def test_timeline_takes_a_unique_prefix_and_names_the_candidates_of_an_ambiguous_one(
    evo: Evo, driver: LedgerDriver
) -> None:
    names = _window_with_candidates(driver)
    assert len(names) >= 2
    a = names[0]
    unique = next(a[:n] for n in range(1, len(a) + 1) if sum(x.startswith(a[:n]) for x in names) == 1)
    whole = evo("timeline", "--json", a)
    assert whole.code == 0 and json.loads(whole.out)
    assert evo("timeline", "--json", unique).out == whole.out
    common = unique[:-1]
    r = evo("timeline", common)
    assert r.code == 1 and r.out == "" and r.err.count("\n") == 1
    assert f"{common!r} is ambiguous: it matches {', '.join(x for x in names if x.startswith(common))}" in r.err
    assert evo("timeline", "Luna-G999").code == 1


def test_log_timeline_and_the_evolution_log_share_one_json_shape(evo: Evo, driver: LedgerDriver) -> None:
    cid = _window_with_candidates(driver)[0]
    log = [json.loads(line) for line in evo("log", "--json").out.splitlines()]
    timeline = json.loads(evo("timeline", "--json", cid).out)
    evolution = [json.loads(x) for x in (evo.home / "models" / "evolution_log.jsonl").read_text().splitlines()]
    for rows, extra in ((log, ["hash"]), (timeline, []), (evolution, ["action", "timestamp"])):
        assert rows
        for row in rows:
            assert list(row)[: len(SHARED) + len(extra)] == SHARED + extra, row
    by_seq = {row["seq"]: row for row in log}
    for row in [*timeline, *evolution]:  # the same record reads the same in all three
        assert {k: row[k] for k in SHARED} == {k: by_seq[row["seq"]][k] for k in SHARED}
    assert [row["cycle"] for row in log] == sorted(row["cycle"] for row in log)
    assert log[-1]["event"]["type"] == log[-1]["type"]
    since = [json.loads(line) for line in evo("log", "--json", "--since", str(log[-2]["seq"])).out.splitlines()]
    assert since == log[-2:]  # a record's cycle does not depend on where the listing starts


def test_a_command_needing_an_extra_not_installed_says_which_in_one_line(
    evo: Evo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapters.cli.evo as cli

    def needs_gguf(args: object) -> int:
        raise ModuleNotFoundError("No module named 'gguf'", name="gguf")

    monkeypatch.setattr(cli, "cmd_head", needs_gguf)  # as `evo init --demo` without the serve extra
    r = evo("head")
    assert r.code == 1 and r.out == "" and r.err.count("\n") == 1
    assert r.err.startswith("evo: error: this command needs the Python package 'gguf', which is not installed")
    assert "serve extra" in r.err and "-e '.[serve]'" in r.err

    def bug(args: object) -> int:
        raise ModuleNotFoundError("No module named 'adapters.nowhere'", name="adapters.nowhere")

    monkeypatch.setattr(cli, "cmd_head", bug)  # evo's own module missing is a bug: never dressed up
    with pytest.raises(ModuleNotFoundError):
        evo("head")


def test_init_demo_without_the_serve_extra_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code = (
        "import sys; sys.modules['gguf'] = None;"  # as if the serve extra were not installed
        "from adapters.cli import main; sys.exit(main(['--home', sys.argv[1], 'init', '--demo']))"
    )
    r = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (
        "evo: error: this command needs the Python package 'gguf', which is not installed: install evo's serve "
        "extra (from the source tree: .venv/bin/pip install -c constraints.txt -e '.[serve]')\n"
    )
    assert not home.exists()
