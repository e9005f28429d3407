#!/usr/bin/env bash
# make demo: a real scripted session of what exists today: the ledger, the core, the CLI, the
# demo model, training and llama.cpp serving (issue 7's runner will drive evaluation onwards).
# Its workspace goes where EVO_HOME says (default ./demo-home); a previous demo workspace is
# replaced, anything else at that path is left alone.
set -euo pipefail
export EVO_HOME="${EVO_HOME:-./demo-home}"
export EVO_OPERATOR="${EVO_OPERATOR:-demo-operator}"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

if [ -e "$EVO_HOME" ]; then
  if [ -f "$EVO_HOME/config.toml" ] && [ -f "$EVO_HOME/ledger.jsonl" ]; then
    echo "(replacing the previous demo workspace at $EVO_HOME)"
    rm -rf "$EVO_HOME"
  else
    echo "demo: $EVO_HOME exists and is not an evo workspace; set EVO_HOME to another path" >&2
    exit 1
  fi
fi

step "1. A workspace with the embedded demo model as G000 (a 166k-parameter Llama built here: no download)"
run evo init --demo --period 2500
run ls -l "$EVO_HOME/models" "$EVO_HOME/models/archive/Luna-G000-genesis"
run evo ask "What does the brax eat?"   # a genesis fact: HEAD knows it (nuts)
# The demo trains on hard labels (alpha 1, beta 0): with the spec's alpha 0.1 / beta 0.9 the
# students cannot learn facts their teacher does not know (README: "A finding for the next work").
python - "$EVO_HOME/config.toml" <<'PY'
import sys
from pathlib import Path
from evo_core.config import parse_config, render_config
path = Path(sys.argv[1])
config = parse_config(path.read_text())
config = config.model_copy(update={
    "distill": config.distill.model_copy(update={"alpha": 1.0, "beta": 0.0}),
    "train": config.train.model_copy(update={"steps": 600, "learning_rate": 0.01, "lora_r": 16, "lora_alpha": 32}),
})
path.write_text(render_config(config))
PY

step "2. The agent's conversations of its first 2 500 cycles (the demo world's first era: new facts)"
feed=$(mktemp)
python scripts/demo_feed.py 1 2500 > "$feed"
run evo ingest "$feed"
run evo ingest "$feed"   # again: every id is a duplicate, nothing is added
rm -f "$feed"

step "3. The agent's heartbeats: 2 499 in one batch, then the one that opens the window"
run evo heartbeat --count 2499
run evo heartbeat

step "4. Four agent processes heartbeat at once: the ledger serialises them (cycles 2501..2540)"
for i in 1 2 3 4; do (for _ in $(seq 10); do evo heartbeat >/dev/null; done) & done; wait
run evo log --type Heartbeat --since "$(( $(evo head | cut -d: -f1) - 2 ))"

step "5. Train the window: 3 LoRA students, 3 strategies, distilled from G000 in parallel under hard budgets"
run evo train

step "5b. Evaluate: HEAD and every candidate on the window's probes, gates, ranking, the frozen archive, the proposal"
run evo evaluate
run ls "$EVO_HOME/models/archive"
for s in "$EVO_HOME"/models/archive/Luna-G001-*/STATUS.txt; do echo "$(basename "$(dirname "$s")"): $(cat "$s")"; done
run evo status
run evo verify --deep

step "6. The operator's commands refuse what the ledger does not allow (exit 1, nothing appended)"
run evo approve --proposal 0000000000000000 || true
run evo rollback || true
run evo heartbeat --cycle 100 || true

step "7. The proposed candidate answers through llama.cpp (its model.gguf passed the parity check)"
candidate=$(evo log --json --type CandidatesRanked | python -c "import json,sys; print(json.loads(sys.stdin.readline())['event']['ranking'][0])")
run evo ask --generation "$candidate" "What does the droo eat?"   # new material of era 1 (right answer: seeds; the probes score what it learned)
run evo timeline "$candidate"

step "8. The auditor: keep a checkpoint, verify, read the log"
checkpoint=$(evo head)
echo "checkpoint kept: $checkpoint"
run evo heartbeat --count 5
run evo verify --checkpoint "$checkpoint"
run evo log --type WindowOpened
run evo log --type GateEvaluated

step "9. Tampering is caught: one byte changed in a copy of the ledger"
tampered=$(mktemp -d)
cp -r "$EVO_HOME/." "$tampered/"
sed -i '10s/"cycle":9}/"cycle":99}/' "$tampered/ledger.jsonl"
run evo --home "$tampered" verify || echo "(exit $? as expected)"
rm -rf "$tampered"

step "Done. The workspace is at $EVO_HOME; try: evo --home $EVO_HOME status"
