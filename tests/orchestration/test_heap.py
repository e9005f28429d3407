"""Freed memory goes back to the system between a worker's big steps (``adapters.runtime.heap``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# 100 buffers of 4 MB from the heap (glibc's mmap threshold raised above them, as its dynamic
# threshold does during a training step), each followed by a small block that stays: freeing the
# buffers leaves 400 MB of holes that glibc keeps resident by itself.
_FRAGMENTED = """
import ctypes
import numpy as np
from adapters.runtime import heap
assert ctypes.CDLL(None).mallopt(-3, 16 << 20)  # M_MMAP_THRESHOLD (32 MB at most)
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) >> 10
buffers, keep = [], []
for _ in range(100):
    buffers.append(np.ones(1 << 19))  # 4 MB
    keep.append(np.ones(1 << 10))  # 8 KB after each: a freed buffer cannot merge into the heap's top
del buffers
before = rss()
released = heap.release()
print(before, rss(), released)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc (Linux) only")
def test_release_hands_freed_heap_memory_back() -> None:
    out = subprocess.run([sys.executable, "-c", _FRAGMENTED], capture_output=True, text=True, check=True).stdout
    before, after, released = out.split()
    assert released == "True"
    assert int(before) - int(after) > 300  # MiB: most of the 400 freed
