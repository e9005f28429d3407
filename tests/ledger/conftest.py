"""Shared helpers for the ledger tests: an independent auditor and sample events."""

from __future__ import annotations

import json
from pathlib import Path

import blake3
import pytest

from evo_core import events as ev
from evo_core.values import GateResult, Metrics

ZERO = "0" * 64


def audit(ledger: Path | bytes) -> list[dict[str, object]]:
    """DESIGN.md's auditor recipe, written with only ``json`` and ``blake3`` (a ledger file, or
    its bytes)."""
    data = ledger if isinstance(ledger, bytes) else ledger.read_bytes()
    records: list[dict[str, object]] = []
    prev = ZERO
    for index, raw in enumerate(data.split(b"\n")[:-1]):
        line = raw.decode("utf-8")
        suffix = line[-75:]
        assert suffix.startswith(',"hash":"') and suffix.endswith('"}'), index
        h = suffix[9:73]
        body = line[:-75] + "}"
        assert blake3.blake3(body.encode("utf-8")).hexdigest() == h, index
        b = json.loads(body)
        assert b["seq"] == index and b["prev"] == prev, index
        assert isinstance(b["event"], dict) and isinstance(b["event"]["type"], str)
        records.append(b)
        prev = h
    assert data == b"" or data.endswith(b"\n")
    return records


def sample_events() -> list[ev.Event]:
    """One of several event kinds, with nested values and floats."""
    m = Metrics(recall=0.9, generalize=0.5, tone_drift=0.01, law_violations=0)
    return [
        ev.GenerationRegistered(generation="G000", source="base"),
        ev.Heartbeat(cycle=1),
        ev.ShadowCompared(generation="G001", cycle=2, exact=False, similarity=0.75, query_id="q"),
        ev.BaselineEvaluated(window=1, generation="G000", metrics=m, score=0.5),
        ev.GateEvaluated(
            candidate="c1",
            metrics=m,
            gates=(GateResult(name="recall", passed=True, value=0.9, threshold=0.8, margin=0.1),),
            passed=True,
            score=0.7,
        ),
        ev.NoPromotion(window=1, reason="ünïcode reason ✓"),
    ]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"
