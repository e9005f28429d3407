"""Fault-test helper: append random batches forever, recording each acknowledged checkpoint.

Usage: python _writer.py HOME ACKS SEED [slow]. A line "seq hash" is appended to ACKS only
after ``Ledger.append`` returned, i.e. after the batch was durable. With ``slow`` every large
``os.write`` is short (4 KiB, then a pause), as POSIX allows and a slow disk does, so that a
SIGKILL often lands in the middle of a batch.
"""

from __future__ import annotations

import os
import random
import sys
import time

from evo_core import events as ev
from ledger import Ledger

_write = os.write


def _short_write(fd: int, data: bytes | memoryview) -> int:
    if len(data) <= 4096:
        return _write(fd, data)
    n = _write(fd, data[:4096])
    time.sleep(0.0005)
    return n


def main() -> None:
    home, acks, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    slow = sys.argv[4:] == ["slow"]
    if slow:
        os.write = _short_write
    sizes = [1, 1, 1, 2, 3, 17, 120, 300] if slow else [1, 1, 1, 1, 2, 3, 17, 60]
    rng = random.Random(seed)
    led = Ledger(home)
    fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    while True:
        n = rng.choice(sizes)
        events = [ev.NoPromotion(window=i, reason="r" * rng.randint(0, 60)) for i in range(n)]
        cp = led.append(events)
        _write(fd, f"{cp.seq} {cp.hash}\n".encode())


if __name__ == "__main__":
    main()
