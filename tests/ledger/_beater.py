"""Fault-test helper: wait for HOME/go, then ``execute`` COUNT heartbeats through the core."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from evo_core.commands import Beat
from evo_core.decide import decide
from ledger import EventStore


def main() -> None:
    home, count = Path(sys.argv[1]), int(sys.argv[2])
    store = EventStore(home, snapshot_every=40)
    while not (home / "go").exists():
        time.sleep(0.001)
    for _ in range(count):
        store.execute(lambda s: decide(s, Beat(period=7)), retries=1000)


if __name__ == "__main__":
    main()
