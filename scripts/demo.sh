#!/usr/bin/env bash
# make demo: a real scripted session of what exists today (the ledger, the core, the CLI).
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

step "1. A workspace: config.toml (spec defaults, period shortened to 50 cycles) and the genesis generation as HEAD"
run evo init --period 50
run ls -l "$EVO_HOME/models"

step "2. The agent's heartbeats: 49 in one batch, then single ones up to the window at cycle 50"
run evo heartbeat --count 49
run evo heartbeat
run evo heartbeat

step "3. Four agent processes heartbeat at once: the ledger serialises them (cycles stay 52..91)"
for i in 1 2 3 4; do (for _ in $(seq 10); do evo heartbeat >/dev/null; done) & done; wait
run evo log --type Heartbeat --since 90

step "4. A jump past two period multiples: the window in progress makes both skip, with the reason"
run evo heartbeat --cycle 160

step "5. Status: phase, HEAD, the window waiting for its candidates"
run evo status

step "6. The operator's commands refuse what the ledger does not allow (exit 1, nothing appended)"
run evo approve || true
run evo rollback || true
run evo heartbeat --cycle 100 || true

step "7. The auditor: keep a checkpoint, verify, read the log"
checkpoint=$(evo head)
echo "checkpoint kept: $checkpoint"
run evo heartbeat --count 5
run evo verify --checkpoint "$checkpoint"
run evo log --since 0 --type WindowOpened
run evo log --type WindowSkipped
run evo timeline Luna-G000-genesis

step "8. Tampering is caught: one byte changed in a copy of the ledger"
tampered=$(mktemp -d)
cp -r "$EVO_HOME/." "$tampered/"
sed -i '10s/"cycle":9}/"cycle":99}/' "$tampered/ledger.jsonl"
run evo --home "$tampered" verify || echo "(exit $? as expected)"
rm -rf "$tampered"

step "Done. The workspace is at $EVO_HOME; try: evo --home $EVO_HOME status"
