"""The operator's and the agent's CLI: every command, its errors and its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import blake3
import pytest

from adapters.cli import build_parser
from evo_core.state import Phase
from tests.cli.conftest import Evo, LedgerDriver, trusted_operator_key
from tests.core.helpers import BAD_RECALL_LAWS, GENESIS, GOOD

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def subprocess_evo(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adapters.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


# ---------------------------------------------------------------- init


def test_init_makes_a_workspace_with_genesis_as_head(evo: Evo) -> None:
    home = evo.home
    assert (home / "config.toml").is_file()
    assert os.readlink(home / "models" / "Luna-GHEAD") == f"archive/{GENESIS}"
    assert not (home / "models" / "Luna-GHEAD-PARENT").is_symlink()
    assert (home / "models" / "archive" / GENESIS).is_dir()
    lineage = (home / "models" / "lineage.csv").read_text()
    assert GENESIS in lineage
    status = json.loads(evo("status", "--json").out)
    assert status["head"] == GENESIS and status["phase"] == "idle"


def test_init_refuses_an_existing_workspace_and_changes_nothing(evo: Evo) -> None:
    before = evo.ledger_bytes
    r = evo("init")
    assert r.code == 1 and "already an evo workspace" in r.err
    assert evo.ledger_bytes == before


def test_init_rejects_bad_numbers_as_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fresh = Evo(tmp_path / "fresh", capsys)
    assert fresh("init", "--period", "0").code == 2
    assert fresh("init", "--max-concurrent", "nine").code == 2
    r = fresh("init", "--max-concurrent", "9")  # above the hard cap: the config says so
    assert r.code == 1 and "max_concurrent_experiments" in r.err
    assert not (tmp_path / "fresh" / "ledger.jsonl").exists()
    assert not (tmp_path / "fresh" / "config.toml").exists()


def test_commands_outside_a_workspace_say_how_to_make_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = Evo(tmp_path / "nowhere", capsys)("status")
    assert r.code == 1 and "evo init" in r.err and r.err.count("\n") == 1


# ---------------------------------------------------------------- heartbeat


def test_heartbeats_count_up_and_open_a_window_at_the_period(evo: Evo) -> None:
    assert evo("heartbeat", "--count", "9").out.startswith("cycle 1..9")
    r = evo("heartbeat")
    assert r.code == 0 and "cycle 10" in r.out and "window 1 opened" in r.out
    appended = json.loads(evo("heartbeat", "--json").out)
    assert [a["event"] for a in appended] == [{"type": "Heartbeat", "cycle": 11}]
    assert json.loads(evo("status", "--json").out)["phase"] == "window"


def test_a_heartbeat_that_goes_back_is_refused_and_appends_nothing(evo: Evo) -> None:
    evo("heartbeat", "--cycle", "5")
    before = evo.ledger_bytes
    for cycle in ("5", "3"):
        r = evo("heartbeat", "--cycle", cycle)
        assert r.code == 1 and "does not increase" in r.err and r.err.count("\n") == 1
    assert evo.ledger_bytes == before
    assert evo("heartbeat", "--cycle", "-4").code == 2
    assert evo("heartbeat", "--cycle", "nan").code == 2
    assert evo.ledger_bytes == before


def test_crossing_several_multiples_opens_one_window_and_records_the_rest_skipped(evo: Evo) -> None:
    evo("heartbeat", "--cycle", "35")
    out = evo("log", "--json").out.splitlines()
    types = [json.loads(line)["event"]["type"] for line in out]
    assert types[-3:] == ["Heartbeat", "WindowOpened", "WindowSkipped"]
    skipped = json.loads(out[-1])["event"]
    assert (skipped["first_cycle"], skipped["last_cycle"], skipped["count"]) == (20, 30, 2)
    assert "evolution in progress" in skipped["reason"]


def test_a_heartbeat_imports_neither_pydantic_nor_torch(evo: Evo) -> None:
    code = (
        "import sys; from adapters.cli import main; rc = main(['--home', sys.argv[1], 'heartbeat']);"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'torch', 'transformers', 'peft', 'llama_cpp', 'evo_core.config'));"
        "print(rc, heavy)"
    )
    evo("heartbeat")
    out = subprocess.run(
        [sys.executable, "-c", code, str(evo.home)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.stdout.strip().endswith("0 []"), out.stdout + out.stderr


def test_an_edited_config_takes_effect_on_the_next_heartbeat(evo: Evo) -> None:
    config = evo.home / "config.toml"
    config.write_text(config.read_text().replace("evo_period_cycles = 10", "evo_period_cycles = 4"))
    r = evo("heartbeat", "--count", "4")
    assert "window 1 opened at cycle 4" in r.out


def test_a_malformed_config_is_one_clear_line_and_appends_nothing(evo: Evo) -> None:
    """A heartbeat validates what it reads (the top level and [ledger]); a command that reads
    the whole config (here `evo train`) validates all of it."""
    config = evo.home / "config.toml"
    before = evo.ledger_bytes
    for bad, field, command in [
        ("[budget]\nmax_steps = 0\n", "budget.max_steps", "train"),
        ("[train]\nsteps = \"600\"\n", "train.steps", "train"),
        ("evo_period_cycles = nan\n", "evo_period_cycles", "heartbeat"),
        ("evo_period_cycles = 0\n", "evo_period_cycles", "heartbeat"),
        ("evo_period_cycles = true\n", "evo_period_cycles", "heartbeat"),
        ("agent_name = \"no spaces\"\n", "agent_name", "heartbeat"),
        ("[ledger]\nsnapshot_every = 1.5\n", "ledger.snapshot_every", "heartbeat"),
        ("[ledger]\nsnapshot_evry = 5\n", "ledger.snapshot_evry", "heartbeat"),
        ("evo_perod_cycles = 5\n", "evo_perod_cycles", "heartbeat"),
        ("evo_period_cycles = \n", "not valid TOML", "heartbeat"),
    ]:
        config.write_text(bad)
        r = evo(command)
        assert r.code == 1 and field in r.err and r.err.count("\n") == 1, (bad, r.err)
    assert evo.ledger_bytes == before


# ---------------------------------------------------------------- operator commands


def test_approve_and_reject_with_nothing_pending_are_refused(evo: Evo, operator_key: Path) -> None:
    before = evo.ledger_bytes
    r = evo("approve", "--key", str(operator_key))
    assert r.code == 1 and "no proposal is pending" in r.err
    assert evo("reject", "--reason", "no", "--key", str(operator_key)).code == 1
    assert evo("reject", "--key", str(operator_key)).code == 2  # --reason is required
    r = evo("approve")  # no key, and nothing pending: that is what it says
    assert r.code == 1 and "no proposal is pending" in r.err
    assert evo.ledger_bytes == before


def test_rollback_with_no_earlier_generation_is_refused(evo: Evo) -> None:
    before = evo.ledger_bytes
    r = evo("rollback")
    assert r.code == 1 and "no earlier promoted generation" in r.err
    r = evo("rollback", "--to", "Luna-G007")
    assert r.code == 1 and "never promoted" in r.err
    assert evo.ledger_bytes == before


def test_a_pending_proposal_is_shown_and_approved_by_its_hash(
    evo: Evo, driver: LedgerDriver, operator_key: Path
) -> None:
    driver.window([GOOD, BAD_RECALL_LAWS, "breach"])
    assert driver.state.proposal is not None
    digest = driver.state.proposal.hash
    proposal_file = evo.home / "models" / "PROMOTION_PROPOSAL.json"
    document = json.loads(proposal_file.read_text())
    assert document["proposal_hash"] == digest
    assert evo("status").out.count(digest[:16]) >= 1

    key = str(operator_key)
    stale = "f" * 64 if not digest.startswith("f") else "e" * 64
    r = evo("approve", "--proposal", stale, "--key", key)
    assert r.code == 1 and "not the pending one" in r.err
    refused = [json.loads(x) for x in evo("log", "--json", "--type", "ApprovalRefused").out.splitlines()]
    assert [x["event"]["proposal_hash"] for x in refused] == [stale]  # recorded for auditors
    assert json.loads(evo("status", "--json").out)["phase"] == "proposed"

    r = evo("approve", "--proposal", digest[:12], "--operator", "alice", "--key", key)
    assert r.code == 0 and "approved" in r.out.lower()
    assert json.loads(evo("status", "--json").out)["phase"] == "approved"
    before = evo.ledger_bytes
    assert evo("approve", "--key", key).code == 1  # approved once: nothing pending any more
    assert evo.ledger_bytes == before


def test_reject_records_the_reason_and_closes_the_evolution(
    evo: Evo, driver: LedgerDriver, operator_key: Path
) -> None:
    driver.window([GOOD, GOOD, GOOD])
    r = evo("reject", "--reason", "tone drifts on greetings", "--key", str(operator_key))
    assert r.code == 0
    last = json.loads(evo("log", "--json", "--type", "Rejected").out.splitlines()[-1])
    assert last["event"]["reason"] == "tone drifts on greetings"
    assert not (evo.home / "models" / "PROMOTION_PROPOSAL.json").exists()
    assert json.loads(evo("status", "--json").out)["phase"] == "idle"


def test_rollback_after_a_promotion_repoints_the_links(evo: Evo, driver: LedgerDriver) -> None:
    new_head = driver.promote()
    models = evo.home / "models"
    assert os.readlink(models / "Luna-GHEAD") == f"archive/{new_head}"
    assert os.readlink(models / "Luna-GHEAD-PARENT") == f"archive/{GENESIS}"

    assert evo("rollback", "--reason", "answers got worse").code == 2  # unsigned: a usage error
    r = evo("rollback", "--reason", "answers got worse", "--key", str(trusted_operator_key(evo)))
    assert r.code == 0, r.err
    assert os.readlink(models / "Luna-GHEAD") == f"archive/{GENESIS}"
    assert not (models / "Luna-GHEAD-PARENT").is_symlink()
    log = [json.loads(x) for x in (models / "evolution_log.jsonl").read_text().splitlines()]
    assert log[-1]["action"] == "ROLLBACK" and log[-1]["to"] == GENESIS

    before = evo.ledger_bytes  # forward again is refused: a rolled-back generation is revoked (issue 13)
    r = evo("rollback", "--to", new_head[:12], "--key", str(trusted_operator_key(evo)))
    assert r.code == 1 and "revoked" in r.err and evo.ledger_bytes == before
    assert os.readlink(models / "Luna-GHEAD") == f"archive/{GENESIS}"


def test_status_reconciles_a_link_left_behind_by_a_crash(evo: Evo, driver: LedgerDriver) -> None:
    new_head = driver.promote()
    link = evo.home / "models" / "Luna-GHEAD"
    # a crash between the ledger append and the link swap leaves the old target behind
    os.remove(link)
    os.symlink(f"archive/{GENESIS}", link)
    verify = evo("verify")
    assert verify.code == 0 and "Luna-GHEAD points at" in verify.err  # a note, not a failure
    evo("status")
    assert os.readlink(link) == f"archive/{new_head}"


# ---------------------------------------------------------------- auditor commands


def test_verify_passes_an_intact_ledger_and_a_kept_checkpoint(evo: Evo) -> None:
    evo("heartbeat", "--count", "25")
    checkpoint = evo("head").out.strip()
    evo("heartbeat", "--count", "3")
    r = evo("verify", "--checkpoint", checkpoint)
    assert r.code == 0 and r.out.startswith("ok:")
    assert evo("verify", "--checkpoint", "twelve").code == 2


def test_verify_names_the_first_tampered_seq(evo: Evo) -> None:
    evo("heartbeat", "--count", "20")
    path = evo.home / "ledger.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    seq = next(i for i, line in enumerate(lines) if b'"type":"Heartbeat","cycle":7}' in line)
    lines[seq] = lines[seq].replace(b'"cycle":7', b'"cycle":8')
    path.write_bytes(b"".join(lines))
    r = evo("verify")
    assert r.code == 1 and f"seq {seq}" in r.out
    assert evo("heartbeat").code == 1  # nothing is appended onto a broken chain


def test_verify_detects_truncation_against_the_head_file_and_a_checkpoint(evo: Evo) -> None:
    evo("heartbeat", "--count", "20")
    checkpoint = evo("head").out.strip()
    path = evo.home / "ledger.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-5]))
    assert evo("verify").code == 1
    (evo.home / "ledger.head").unlink()  # an attacker removes the head file too
    r = evo("verify", "--checkpoint", checkpoint)
    assert r.code == 1


def append_out_of_band(home: Path, event_json: str) -> int:
    """A well-chained record (right seq, prev and hash) that `decide` never wrote."""
    path = home / "ledger.jsonl"
    last = json.loads(path.read_bytes().splitlines()[-1])
    seq = last["seq"] + 1
    body = (
        '{"seq":%d,"prev":"%s","at":"2026-01-01T00:00:00.000Z","event":%s}'
        % (seq, last["hash"], event_json)
    ).encode()
    digest = blake3.blake3(body).hexdigest()
    with open(path, "ab") as f:
        f.write(body[:-1] + b',"hash":"' + digest.encode() + b'"}\n')
    return seq


def test_verify_names_an_event_the_phase_does_not_accept(evo: Evo) -> None:
    seq = append_out_of_band(
        evo.home,
        '{"type":"Promoted","generation":"Luna-G001-a-c10","previous_head":"%s",'
        '"proposal_hash":"%s","cycle":0,"burn_in_until":100}' % (GENESIS, "a" * 64),
    )
    r = evo("verify")
    assert r.code == 1
    assert f"seq {seq}: Promoted: Promoted is not allowed in phase 'idle'" in r.out


def test_an_event_naming_an_unknown_generation_is_flagged_and_changes_nothing(evo: Evo) -> None:
    seq = append_out_of_band(
        evo.home,
        '{"type":"RolledBack","from_generation":"%s","to_generation":"Luna-G009-a-c90","reason":"x"}'
        % GENESIS,
    )
    r = evo("verify")
    assert r.code == 1 and f"seq {seq}: RolledBack: Luna-G009-a-c90 was never HEAD" in r.out
    r = evo("status")  # the safe state: HEAD where it was, the operator told, the agent's clock running
    assert r.code == 0 and "REFUSED RECORDS" in r.out and f"seq {seq}: RolledBack" in r.out
    assert f"GEN_HEAD: {GENESIS}" in r.out
    assert evo("heartbeat").code == 0


def test_an_unknown_event_type_in_the_ledger_is_an_error_not_skipped(evo: Evo) -> None:
    append_out_of_band(evo.home, '{"type":"Teleported"}')
    r = evo("verify")
    assert r.code == 1 and "Teleported" in r.out
    r = evo("status")
    assert r.code == 1 and "Teleported" in r.err and r.err.count("\n") == 1


def test_log_filters_and_rejects_unknown_types(evo: Evo) -> None:
    evo("heartbeat", "--count", "12")
    lines = evo("log", "--type", "WindowOpened").out.splitlines()
    assert len(lines) == 1 and "window 1 opened" in lines[0]
    since = [json.loads(x)["seq"] for x in evo("log", "--json", "--since", "10").out.splitlines()]
    assert since and since[0] == 10 and since == sorted(since)
    assert evo("log", "--type", "Bogus").code == 2


def test_status_as_of_a_cycle_answers_what_head_was_then(evo: Evo, driver: LedgerDriver) -> None:
    new_head = driver.promote()
    promoted_at = next(e.cycle for e in driver.events if type(e).__name__ == "Promoted")
    before = json.loads(evo("status", "--json", "--at-cycle", str(promoted_at - 1)).out)
    after = json.loads(evo("status", "--json", "--at-cycle", str(promoted_at)).out)
    assert before["head"] == GENESIS and after["head"] == new_head


def test_timeline_tells_a_candidates_story_in_order(evo: Evo, driver: LedgerDriver) -> None:
    driver.window([GOOD, BAD_RECALL_LAWS, "breach"])
    cid = driver.candidates()[1]
    r = evo("timeline", cid)
    assert r.code == 0
    assert "laws" in r.out
    entries = json.loads(evo("timeline", cid, "--json").out)
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs) and len(seqs) >= 4
    assert evo("timeline", "Luna-G404").code == 1


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from adapters.cli import main

    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert name in capsys.readouterr().out


def test_readme_documents_every_command_and_is_generated_fresh() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in COMMANDS:
        assert f"#### `evo {name}`" in readme
    r = subprocess.run(
        [sys.executable, "scripts/gen_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_the_console_script_and_module_entry_agree(evo: Evo) -> None:
    r = subprocess_evo(evo.home, "heartbeat")
    assert r.returncode == 0 and r.stdout.startswith("cycle 1")
    r = subprocess_evo(evo.home, "approve", "--key", str(evo.home.parent / "no-such.key"))
    assert r.returncode == 1 and r.stderr.startswith("evo: error:") and "no such key file" in r.stderr
    r = subprocess_evo(evo.home, "frobnicate")
    assert r.returncode == 2


def test_driver_reaches_the_phases_the_cli_reports(evo: Evo, driver: LedgerDriver) -> None:
    driver.window([GOOD, GOOD, GOOD])
    driver.approve()
    assert json.loads(evo("status", "--json").out)["phase"] == Phase.APPROVED.value
