"""A full disk while a torn tail is moved aside (issue 13): no pile of empty ``.torn-*`` files.
A copy that fails is removed again, a later attempt at the same tail re-uses the copy an earlier
one left (whole, or cut short), and the ledger keeps every byte until the copy is whole."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from evo_core.events import Heartbeat
from ledger import recovery
from ledger.store import Ledger

TORN = b'{"seq":2,"prev":"0000","at":"x","event":{"type":"Heartbeat","cyc'


def torn_files(home: Path) -> list[Path]:
    return sorted(home.glob("ledger.jsonl.torn-*"))


@pytest.fixture
def torn_home(tmp_path: Path) -> Path:
    with Ledger(tmp_path, fsync=False) as led:
        led.append([Heartbeat(cycle=1), Heartbeat(cycle=2)])
    with open(tmp_path / "ledger.jsonl", "ab") as f:
        f.write(TORN)  # a writer died mid-batch
    return tmp_path


def enospc(*_a: object, **_k: object) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("fails", ["write", "fsync"])
def test_a_full_disk_leaves_no_torn_files_however_often_it_is_tried(
    torn_home: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    ledger = torn_home / "ledger.jsonl"
    before = ledger.read_bytes()
    with monkeypatch.context() as m:
        m.setattr(recovery.os, fails, enospc)
        for _ in range(5):
            with Ledger(torn_home, fsync=False) as led, pytest.raises(OSError) as caught:
                led.append([Heartbeat(cycle=3)])
            assert caught.value.errno == errno.ENOSPC
            with Ledger(torn_home, fsync=False) as led, pytest.raises(OSError):
                led.recover()
    assert torn_files(torn_home) == []
    assert ledger.read_bytes() == before  # nothing dropped, nothing appended
    with Ledger(torn_home, fsync=False) as led:  # space again: one copy, then the append
        assert led.append([Heartbeat(cycle=3)]).seq == 2
    [copy] = torn_files(torn_home)
    assert copy.read_bytes() == TORN and copy.name == "ledger.jsonl.torn-2-0"


def test_a_copy_whose_truncation_failed_is_reused_not_made_again(
    torn_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(recovery.os, "ftruncate", enospc)
        for _ in range(3):
            with Ledger(torn_home, fsync=False) as led, pytest.raises(OSError):
                led.recover()
    assert [p.read_bytes() for p in torn_files(torn_home)] == [TORN]
    with Ledger(torn_home, fsync=False) as led:
        torn = led.recover()
    assert torn is not None and torn.path.name == "ledger.jsonl.torn-2-0"
    assert [p.name for p in torn_files(torn_home)] == ["ledger.jsonl.torn-2-0"]


@pytest.mark.parametrize("left", [b"", TORN[:10]])
def test_a_copy_an_earlier_attempt_left_unfinished_is_completed(torn_home: Path, left: bytes) -> None:
    (torn_home / "ledger.jsonl.torn-2-0").write_bytes(left)  # e.g. killed mid-copy
    with Ledger(torn_home, fsync=False) as led:
        torn = led.recover()
    assert torn is not None
    assert [p.read_bytes() for p in torn_files(torn_home)] == [TORN]


def test_an_earlier_different_torn_tail_is_kept_beside(torn_home: Path) -> None:
    (torn_home / "ledger.jsonl.torn-2-0").write_bytes(b"something else")
    with Ledger(torn_home, fsync=False) as led:
        torn = led.recover()
    assert torn is not None and torn.path.name == "ledger.jsonl.torn-2-1"
    assert (torn_home / "ledger.jsonl.torn-2-0").read_bytes() == b"something else"
    assert torn.path.read_bytes() == TORN
