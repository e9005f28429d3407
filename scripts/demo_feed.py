"""Write the demo world's conversations of cycles FIRST..LAST as JSONL (what `evo ingest` reads).

    python scripts/demo_feed.py 1 2500 > feed.jsonl
"""

from __future__ import annotations

import sys

from adapters.data.conversations import encode
from adapters.data.demo_world import conversations


def main() -> int:
    first, last = int(sys.argv[1]), int(sys.argv[2])
    per_1000 = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    out = sys.stdout.buffer
    for conv in conversations(first, last, seed=0, per_1000_cycles=per_1000):
        out.write(encode(conv) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
