"""The auditor's commands through the real CLI: ``evo explain`` and ``evo report``."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from evo_core import commands as cmd
from tests.cli.conftest import Evo, LedgerDriver
from tests.core.helpers import BAD_RECALL_LAWS, GENESIS, GOOD, SIGNED

HOSTILE = "<script>alert('x')</script>"


class Page(HTMLParser):
    """Collects the tags and the class of every <svg> of a page (the stdlib parser)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.svgs: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "svg":
            self.svgs.append(values.get("class") or "")
        self.refs += [v or "" for k, v in attrs if k in ("src", "href")]


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_explain_names_the_failing_gates_and_their_margins(evo: Evo, driver: LedgerDriver) -> None:
    driver.window([GOOD, BAD_RECALL_LAWS, "breach"])
    good, bad, breached = driver.candidates()
    before = evo.ledger_bytes
    r = evo("explain", bad)
    assert r.code == 0, r.err
    first = r.out.splitlines()[0]
    # no per-item outcomes here: the raw rule, recall >= HEAD 0.80 - epsilon 0.15 (the default)
    assert first.startswith(f"{bad}: FAIL - recall gate: recall 0.5000 < 0.6500 (short by 0.1500)")
    assert "laws gate: 2 law violations > 0" in first
    assert any(line.split()[:1] == ["laws"] and "FAIL" in line and "-2.0000" in line for line in r.out.splitlines())
    doc = json.loads(evo("explain", bad, "--json").out)
    recall = next(g for g in doc["gates"] if g["name"] == "recall")
    assert recall["passed"] is False and abs(recall["margin"] + 0.15) < 1e-9
    assert doc["parent"] == GENESIS and doc["frozen"]["archive_hash"] and doc["rank"] == 2
    r = evo("explain", breached)
    assert r.code == 0 and "FAIL - budget: steps" in r.out.splitlines()[0] and "over by 1" in r.out
    assert evo("explain", good).out.splitlines()[0] == f"{good}: proposed, awaiting approval"
    assert evo.ledger_bytes == before  # forensics append nothing


def write_curve(evo: Evo, cid: str, curve: list[list[float]]) -> None:
    """What the freeze leaves in the archive the ledger names (the driver records the name only)."""
    folder = evo.home / "models" / "archive" / cid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "training.json").write_text(json.dumps({"steps": int(curve[-1][0]), "loss_curve": curve}))


def test_explain_shows_the_archived_loss_curve(evo: Evo, driver: LedgerDriver) -> None:
    driver.window([GOOD, BAD_RECALL_LAWS, "breach"])
    good, bad, _ = driver.candidates()
    write_curve(evo, good, [[1, 2.5], [11, 1.9], [21, 1.2], [31, 0.9], [41, 1.0]])
    lines = evo("explain", good).out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("training: "))
    loss = lines[at + 1]
    assert loss.startswith("  loss 2.5000 (step 1) -> min 0.9000 (step 31) -> final 1.0000 (step 41), 5 points ")
    assert loss.rstrip()[-5:] == "█▅▂▁▁"  # the sparkline: high at the start, lowest at step 31
    assert json.loads(evo("explain", good, "--json").out)["loss_curve"] == [[1, 2.5], [11, 1.9], [21, 1.2], [31, 0.9], [41, 1.0]]
    assert not any(line.startswith("  loss ") for line in evo("explain", bad).out.splitlines())  # no archive there
    assert json.loads(evo("explain", bad, "--json").out)["loss_curve"] == []


def test_explain_shows_the_loss_curve_of_a_candidate_not_frozen_yet(evo: Evo, driver: LedgerDriver) -> None:
    driver.open_window()
    driver.do(cmd.SpawnCandidates(config=driver.config))
    cid = driver.candidates()[0]
    work = evo.home / "work" / cid  # where its worker trains it
    work.mkdir(parents=True)
    (work / "training.json").write_text(json.dumps({"loss_curve": [[1, 3.0], [2, 2.0]]}))
    lines = evo("explain", cid).out.splitlines()
    assert any(line.startswith("  loss 3.0000 (step 1) -> min 2.0000 (step 2) -> final 2.0000 (step 2)") for line in lines)


def test_explain_takes_a_unique_prefix_and_refuses_an_ambiguous_one(evo: Evo, driver: LedgerDriver) -> None:
    driver.window([GOOD, BAD_RECALL_LAWS, "breach"])
    cids = driver.candidates()
    prefix = cids[1].rsplit("-", 1)[0]  # Luna-G001-b
    r = evo("explain", prefix)
    assert r.code == 0 and r.out.startswith(f"{cids[1]}: ")
    r = evo("explain", "Luna-G001")
    assert r.code == 1 and r.out == ""
    assert len(r.err.splitlines()) == 1 and "ambiguous" in r.err
    assert all(c in r.err for c in cids)


def test_explain_a_genesis_and_an_unknown_name(evo: Evo) -> None:
    r = evo("explain", GENESIS)
    assert r.code == 0 and r.out.startswith(f"{GENESIS}: genesis G000")
    assert "model_hash:" in r.out
    r = evo("explain", "Luna-G404-z-c1")
    assert r.code == 1 and r.out == ""
    assert r.err.splitlines() == [
        "evo: error: no candidate or generation named 'Luna-G404-z-c1' in the ledger (see `evo status`)"
    ]


def test_report_is_one_offline_page_with_lineage_plots_and_table(evo: Evo, driver: LedgerDriver) -> None:
    new_head = driver.promote()
    driver.window([GOOD, BAD_RECALL_LAWS, "fail"])
    driver.do(cmd.Rollback(**SIGNED, operator=HOSTILE, reason="<b>tone</b> & worse"))
    before = evo.ledger_bytes
    r = evo("report", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    path = Path(doc["path"])
    assert path == evo.home / "models" / "report.html"
    assert doc["checkpoint"] == evo("head").out.strip()
    assert evo.ledger_bytes == before
    page = parse(path)
    text = path.read_text(encoding="utf-8")
    assert "lineage" in page.svgs and page.svgs.count("plot") == 4
    assert "script" not in page.tags and page.refs == []  # nothing to run, nothing to fetch
    assert HOSTILE not in text and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "&lt;b&gt;tone&lt;/b&gt; &amp; worse" in text
    assert "table" in page.tags and new_head in text and doc["checkpoint"] in text
    for cid in driver.candidates():
        assert cid in text


def test_report_to_a_chosen_path(evo: Evo, tmp_path: Path) -> None:
    out = tmp_path / "audit.html"
    r = evo("report", "--out", str(out))
    assert r.code == 0 and r.out.startswith(str(out))
    page = parse(out)
    assert "lineage" in page.svgs  # the genesis alone is a lineage
    r = evo("report", "--out", str(tmp_path / "no-such-folder" / "x.html"))
    assert r.code == 1 and len(r.err.splitlines()) == 1
