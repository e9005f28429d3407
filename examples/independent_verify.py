"""An auditor's verifier that uses none of evo's code: only json, blake3 and cryptography.

    python examples/independent_verify.py HOME/ledger.jsonl

It checks the ledger contract (README: "The ledger format") and every operator signature in it
with the keys the ledger trusted when each was appended (pinned before the genesis, added or
revoked by signed records), rebuilding each signed message from the records before it: a
proposal's approval names its candidate's archive and model hashes from its CandidateFrozen
record, and each signature's checkpoint must be an earlier record with that hash. It prints
one line per problem and exits 1 if there is any. (``evo verify`` checks all of this and the
state machine too.)
"""

import json
import sys

import blake3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def verify(path):
    problems, hashes, keys = [], [], {}
    frozen, pending, head, ledger_id = {}, None, None, ""
    autonomy_nonce = 0

    def signed(seq, kid, signature, lines, cp_seq, cp_hash):
        message = "".join(f"{line}\n" for line in lines + [f"{cp_seq}:{cp_hash}"]).encode()
        if kid not in keys:
            return problems.append(f"seq {seq}: signed by key {kid!r}, which the ledger does not trust")
        if not (0 <= cp_seq < seq and hashes[cp_seq] == cp_hash):
            return problems.append(f"seq {seq}: its checkpoint {cp_seq}:{cp_hash[:16]} is not a record of this ledger")
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(keys[kid])).verify(bytes.fromhex(signature), message)
        except (InvalidSignature, ValueError):
            problems.append(f"seq {seq}: the signature does not verify")

    prev = "0" * 64
    for seq, raw in enumerate(open(path, "rb")):
        line = raw.rstrip(b"\n")
        body, digest = line[:-75] + b"}", line[-66:-2].decode()
        record = json.loads(body)
        if not raw.endswith(b"\n") or blake3.blake3(body).hexdigest() != digest or record["seq"] != seq or record["prev"] != prev:
            problems.append(f"seq {seq}: the chain is broken here")
            break
        prev, ledger_id = digest, ledger_id or digest
        hashes.append(digest)
        e, kind = record["event"], record["event"]["type"]
        if kind == "KeyTrusted":
            if head is None and not e.get("signer"):
                keys[e["key_id"]] = e["public"]  # pinned with the workspace
            else:
                before = len(problems)
                signed(seq, e.get("signer", ""), e.get("signature", ""),
                       ["evo-trust-v1", ledger_id, "add", e["key_id"], e["public"]], e["checkpoint_seq"], e["checkpoint_hash"])
                if len(problems) == before:
                    keys[e["key_id"]] = e["public"]
        elif kind == "KeyRevoked":
            before = len(problems)
            signed(seq, e["signer"], e["signature"], ["evo-trust-v1", ledger_id, "revoke", e["key_id"], "-"],
                   e["checkpoint_seq"], e["checkpoint_hash"])
            if len(problems) == before:
                keys.pop(e["key_id"], None)
        elif kind == "GenerationRegistered":
            head = e["generation"]
        elif kind == "CandidateFrozen":
            frozen[e["candidate"]] = (e["archive_hash"], e.get("model_hash", ""))
        elif kind == "Proposed":
            pending = (e["proposal_hash"], e["proposal"]["candidate"])
        elif kind in ("Approved", "Rejected") and not e.get("autonomous"):
            if pending is None or e["proposal_hash"] != pending[0]:
                problems.append(f"seq {seq}: {kind} of a proposal that is not the pending one")
                continue
            action = "approve" if kind == "Approved" else "reject"
            archive_hash, model_hash = frozen.get(pending[1], ("", ""))
            signed(seq, e.get("key_id", ""), e.get("signature", ""),
                   [f"evo-{action}-v2", ledger_id, pending[0], pending[1], archive_hash, model_hash],
                   e.get("checkpoint_seq", -1), e.get("checkpoint_hash", ""))
        elif kind == "AutonomyChanged":
            if e["nonce"] != autonomy_nonce:
                problems.append(f"seq {seq}: autonomy nonce {e['nonce']} replayed (next is {autonomy_nonce})")
            autonomy_nonce += 1
            signed(seq, e["key_id"], e["signature"],
                   ["evo-autonomy-v2", ledger_id, "on" if e["enabled"] else "off", str(e["nonce"])],
                   e.get("checkpoint_seq", -1), e.get("checkpoint_hash", ""))
        elif kind == "RolledBack" and not e.get("automatic"):
            signed(seq, e.get("key_id", ""), e.get("signature", ""),
                   ["evo-rollback-v1", ledger_id, e["from_generation"], e["to_generation"]],
                   e.get("checkpoint_seq", -1), e.get("checkpoint_hash", ""))
        if kind in ("Rejected", "NoPromotion", "BurnInPassed", "RolledBack") or (
            kind == "ShadowCompleted" and e["outcome"] == "failed"
        ):
            pending = None
    return problems


if __name__ == "__main__":
    found = verify(sys.argv[1])
    print("\n".join(found) or "ok: the chain and every operator signature verify")
    sys.exit(1 if found else 0)
