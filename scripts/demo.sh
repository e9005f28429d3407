#!/usr/bin/env bash
# make demo: the Evolution Scheduler end to end on the embedded demo model, on CPU.
#
# A simulated agent heartbeats and talks; a window opens; `evo run` (the runner) trains three
# LoRA students with three data strategies in parallel, evaluates, ranks, freezes and proposes;
# the operator approves with a signed key; the shadow compares answers, the cutover swaps the
# GEN_HEAD link, the burn-in watches live answers ("GEN_HEAD advanced"); a second window evolves
# from the new HEAD; the operator rolls back. The auditor's view closes it.
#
# The workspace goes where EVO_HOME says (default ./demo-home); the demo operator's key goes
# beside it, outside the workspace (<EVO_HOME>-operator/). A previous demo workspace is replaced;
# anything else at that path is left alone.
set -euo pipefail
export EVO_HOME="${EVO_HOME:-./demo-home}"
export EVO_OPERATOR="${EVO_OPERATOR:-demo-operator}"
KEYS="${EVO_HOME%/}-operator"
export EVO_OPERATOR_KEY="$KEYS/operator.key"
export EVO_OPERATOR_HOME="$KEYS"   # the operator's witness (the checkpoints it signed): outside the workspace
TIMES=$(mktemp)
trap 'rm -f "$TIMES"' EXIT
phase() { printf '%s\t%s\n' "$EPOCHREALTIME" "$1" >> "$TIMES"; }  # a phase starts now
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# The demo's story needs a proposal and a promotion; without one it stops with one line, exit 1.
require_proposal() {
  if ! evo status --json | python -c "import json,sys; sys.exit(0 if json.load(sys.stdin).get('proposal') else 1)"; then
    echo "demo: window $1 proposed nothing (every candidate failed a gate; see \`evo explain\` above and \`evo status\`)" >&2
    exit 1
  fi
}
proposal_hash() { python -c "import json,sys; print(json.load(open(sys.argv[1]))['proposal_hash'][:16])" "$EVO_HOME/models/PROMOTION_PROPOSAL.json"; }
require_head() {
  head=$(evo status --json | python -c "import json,sys; print(json.load(sys.stdin).get('head') or '')")
  case "$head" in "$1"*) ;; *) echo "demo: expected $1 to be HEAD after its burn-in, HEAD is ${head:-none} (see \`evo status\`)" >&2; exit 1 ;; esac
}
question() { python -c "import sys; from adapters.data.demo_world import era_facts; print(era_facts(int(sys.argv[1]))[0].question(0))" "$1"; }
GENESIS_QUESTION=$(question 0)
ERA2_QUESTION=$(question 2)

for path in "$EVO_HOME" "$KEYS"; do
  if [ -e "$path" ]; then
    if [ -f "$path/.evo-demo" ] || { [ -f "$path/config.toml" ] && [ -f "$path/ledger.jsonl" ]; }; then
      echo "(replacing the previous demo's $path)"
      chmod -R u+w "$path" && rm -rf "$path"
    else
      echo "demo: $path exists and is not from a previous demo; set EVO_HOME to another path" >&2
      exit 1
    fi
  fi
done

phase "set-up: operator key, workspace, demo model"
step "1. The operator's key (outside the workspace), then a workspace pinning it, with the embedded demo model as G000 (a 0.94M-parameter Llama built here: no download)"
mkdir -p "$KEYS" && touch "$KEYS/.evo-demo"
run evo keygen --out "$EVO_OPERATOR_KEY" --comment demo-operator
run evo init --demo --period 2500 --operator-key "$EVO_OPERATOR_KEY.pub"
run evo trust list
# Training, distillation, gates, shadow and burn-in run on the config's defaults. Only how long
# the rollout phases last is shortened for a demo whose agent is quiet: the shadow replays the
# agent's recorded TRIVIAL queries for 200 cycles, the burn-in watches 100 cycles and >= 5 live
# answers (half of them also timed on the old HEAD).
run evo config set shadow.cycles 200 shadow.replay true shadow.min_samples 20 \
  burn_in.cycles 100 burn_in.min_answers 5 burn_in.latency_percent 50.0
run evo ask "$GENESIS_QUESTION"   # a genesis fact: HEAD knows it

phase "agent: conversations and heartbeats to the first window"
step "2. The agent's conversations of its first 2 500 cycles (the demo world's first era: new facts)"
feed=$(mktemp)
python scripts/demo_feed.py 1 2500 > "$feed"
run evo ingest "$feed"
rm -f "$feed"
step "3. The agent's heartbeats: 2 499 in one batch, then the one that opens window 1"
run evo heartbeat --count 2499
run evo heartbeat
step "4. Four agent processes heartbeat at once: the ledger serialises them"
for i in 1 2 3 4; do (for _ in $(seq 10); do evo heartbeat >/dev/null; done) & done; wait
run evo log --type Heartbeat --since "$(( $(evo head | cut -d: -f1) - 2 ))"

phase "window 1: train 3 students, evaluate, rank, freeze, propose"
step "5. The runner does what is due: 3 LoRA students trained in parallel under hard budgets, evaluated on the window's probes, ranked, frozen, proposed"
run evo run --until-idle
run ls "$EVO_HOME/models/archive"
for s in "$EVO_HOME"/models/archive/Luna-G001-*/STATUS.txt; do echo "$(basename "$(dirname "$s")"): $(cat "$s")"; done
run evo status
failed=$(evo log --json --type CandidateFrozen | python -c "
import json, sys
for line in sys.stdin:
    e = json.loads(line)['event']
    if e['status'] != 'PASS':
        print(e['candidate']); break")
[ -n "$failed" ] && run evo explain "$failed"
require_proposal 1

phase "approval: refusals, then the operator's signed approval"
step "6. Only the operator approves: an untrusted key and a forged signature are refused and recorded"
run evo keygen --out "$KEYS/intruder.key" --comment intruder
run evo approve --key "$KEYS/intruder.key" || echo "(exit $? as expected)"
kid=$(python -c "import sys; from adapters.operator.signing import key_id, load_private, public_raw; print(key_id(public_raw(load_private(sys.argv[1]))))" "$EVO_OPERATOR_KEY")
run evo approve --signature "$(printf '%0128d' 0)" --key-id "$kid" --checkpoint "$(evo head)" || echo "(exit $? as expected)"   # the trusted key's id, a forged signature
run evo log --type ApprovalRefused
step "7. The operator approves with the trusted key"
run evo approve --proposal "$(proposal_hash)" --key "$EVO_OPERATOR_KEY"

phase "shadow: replayed TRIVIAL queries, then cutover"
step "8. Shadow: the runner replays recorded TRIVIAL queries to HEAD and the candidate (answers compared, never returned)"
run evo run --until-idle
step "9. The agent lives on: 200 cycles, talking now and then (live TRIVIAL queries are mirrored too)"
run python examples/agent_loop.py --home "$EVO_HOME" --cycles 200 --ask-every 20 --max-tokens 24 | tail -n 4
step "10. The shadow ends: analysis (HEAD's likelihood of the candidate's answers), then the atomic cutover (one ledger batch, then the link swap)"
run evo run --until-idle
run evo log --type ShadowCompleted
run ls -l "$EVO_HOME/models"

phase "burn-in: live answers of the new HEAD"
step "11. Burn-in: the new HEAD answers the agent's users; answers, errors, law violations, quality and latency vs the old HEAD are recorded"
run python examples/agent_loop.py --home "$EVO_HOME" --cycles 100 --ask-every 10 --max-tokens 24 | tail -n 4
run evo run --until-idle
run evo log --type BurnInPassed
require_head Luna-G001

phase "window 2: evolve from the new HEAD"
step "12. The second era: new conversations, heartbeats to cycle 5000, window 2 from the new HEAD (G001 teaches, G000 stabilises), the same recipe"
feed=$(mktemp)
python scripts/demo_feed.py 2501 5000 > "$feed"
run evo ingest "$feed"
rm -f "$feed"
now=$(evo status --json | python -c "import json,sys; print(json.load(sys.stdin)['cycle'])")
run evo heartbeat --count $(( 5000 - now ))
run evo run --until-idle
for s in "$EVO_HOME"/models/archive/Luna-G002-*/STATUS.txt; do echo "$(basename "$(dirname "$s")"): $(cat "$s")"; done
require_proposal 2

phase "promotion 2: approval, shadow, cutover, burn-in"
step "13. The operator approves G002; shadow, cutover and burn-in as before"
run evo approve --proposal "$(proposal_hash)" --key "$EVO_OPERATOR_KEY"
run evo run --until-idle
run python examples/agent_loop.py --home "$EVO_HOME" --cycles 200 --ask-every 20 --max-tokens 24 | tail -n 2
run evo run --until-idle
run python examples/agent_loop.py --home "$EVO_HOME" --cycles 100 --ask-every 10 --max-tokens 24 | tail -n 2
run evo run --until-idle
run evo log --type Promoted
require_head Luna-G002

phase "what each generation knows"
step "14. Evolution at work: each generation's facts per era, asked in the training wordings and in the held-out wording no conversation of an era uses, and its law-breaking answers"
run python -m adapters.evaluation.knowledge --home "$EVO_HOME"

phase "rollback and the auditor's view"
step "15. The operator rolls back: one signed command, to the previous promoted generation (G002 is revoked: no rollback returns to it)"
run evo rollback --reason "demo: back to G001" --key "$EVO_OPERATOR_KEY"
run ls -l "$EVO_HOME/models"
run evo ask "$ERA2_QUESTION"   # an era-2 fact: G001 never learned it
step "16. The auditor: lineage, archive, timeline, report, verify"
run cat "$EVO_HOME/models/lineage.csv"
run ls "$EVO_HOME/models/archive"
promoted=$(evo log --json --type Promoted | python -c "import json,sys; print(json.loads(sys.stdin.read().splitlines()[0])['event']['generation'])")  # reads it all: no broken pipe
run evo timeline "$promoted"
run evo report
run evo verify --deep
step "17. A hostile agent, in a copy: records appended with the project's own code (chain-valid, unsigned) change nothing; a changed byte breaks the chain"
tampered=$(mktemp -d)
cp -r "$EVO_HOME/." "$tampered/"
chmod -R u+w "$tampered"
python - "$tampered" <<'PY'
import sys
from pathlib import Path
from adapters.runtime.app import App
from evo_core import events as ev
from ledger.store import Ledger
with App(Path(sys.argv[1])) as app:
    state = app.state()
with Ledger(sys.argv[1]) as ledger:  # what the agent can do: chain-valid records that bypass decide
    ledger.append([ev.RolledBack(from_generation=state.head, to_generation=state.revoked[-1],
                                 reason="the agent restores what the operator rolled back", operator="agent")])
    ledger.append([ev.Approved(proposal_hash="0" * 64, operator="agent", autonomous=True)])
PY
run evo --home "$tampered" status | head -n 10
run evo --home "$tampered" verify || echo "(exit $? as expected)"
sed -i '10s/"cycle":[0-9]*}/"cycle":99999}/' "$tampered/ledger.jsonl"
run evo --home "$tampered" verify || echo "(exit $? as expected)"
rm -rf "$tampered"

phase "end"
step "Wall time by phase"
python - "$TIMES" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
for (t0, name), (t1, _) in zip(rows, rows[1:]):
    print(f"{float(t1) - float(t0):8.1f} s  {name}")
print(f"{float(rows[-1][0]) - float(rows[0][0]):8.1f} s  total")
PY
echo
echo "The workspace is at $EVO_HOME (the demo operator's key at $KEYS); try: evo --home $EVO_HOME status"
