"""The operator's signed commands: ``evo keygen``, ``approve``, ``reject``, ``rollback``,
``autonomy`` and ``trust``.
Parse, get the credentials, call the use case (``adapters.operator.approvals``: it verifies
every signature before anything is appended), print.

A refused signature is one line (exit 1), recorded as ``ApprovalRefused`` for auditors. A
missing or unreadable key file appends nothing (exit 1); so does a usage error (exit 2).
``signing`` (and ``cryptography``) load only when a command needs them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from adapters.cli.common import open_app, out, out_json, print_events
from adapters.operator.approvals import Credentials, Signed
from adapters.runtime.workspace import Workspace, WorkspaceError, resolve_home
from evo_core.errors import UsageError

if TYPE_CHECKING:
    from ledger.tail import Checkpoint

KEY_ENV = "EVO_OPERATOR_KEY"


def default_key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "evo" / "operator.key"


def signing_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--key", metavar="FILE",
        help=f"your operator private key (default ${KEY_ENV}, else $XDG_CONFIG_HOME/evo/operator.key, "
        "i.e. ~/.config/evo/operator.key, if it exists)",
    )
    sp.add_argument("--signature", metavar="HEX", help="a signature made elsewhere (offline), with --key-id and --checkpoint")
    sp.add_argument("--key-id", metavar="ID", help="the key id of --signature (16 hex, from `evo keygen`)")
    sp.add_argument(
        "--checkpoint", metavar="SEQ:HASH", help="the ledger checkpoint an offline --signature signed (--print-message shows it)"
    )
    sp.add_argument(
        "--print-message", action="store_true",
        help="print the exact bytes to sign offline (e.g. `openssl pkeyutl -sign -rawin -inkey KEY`) and exit",
    )


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    sp = add("keygen", cmd_keygen, "make an operator key pair (ed25519) outside the workspace")
    sp.add_argument(
        "--out", metavar="PATH",
        help=f"the private key file, PEM, mode 0600 (default ${KEY_ENV}, else ~/.config/evo/operator.key "
        "or under $XDG_CONFIG_HOME); "
        "PATH.pub gets the public key line",
    )
    sp.add_argument("--comment", help="a note after the public key (default user@host)")

    sp = add("autonomy", cmd_autonomy, "let the scheduler approve its own proposals, or stop it (signed; config approval.autonomous must also be true)")
    sp.add_argument("setting", choices=("on", "off"))
    sp.add_argument("--operator", help="who signs (default: $EVO_OPERATOR or your user name)")
    signing_options(sp)

    sp = add("trust", cmd_trust, "the operator keys this ledger trusts: list them, add one or revoke one (signed by a trusted key)")
    sp.add_argument("action", choices=("list", "add", "revoke"))
    sp.add_argument("subject", nargs="?", help="add: the new key's .pub file; revoke: the key id")
    sp.add_argument("--reason", default="", help="why a key is revoked (recorded in the ledger)")
    sp.add_argument("--operator", help="who signs (default: $EVO_OPERATOR or your user name)")
    signing_options(sp)


# ---------------------------------------------------------------- credentials and refusals


def _checkpoint(text: str) -> "Checkpoint":
    from evo_core.guards import is_hex64
    from ledger.tail import Checkpoint

    seq, _, digest = text.strip().partition(":")
    if not seq.isdigit() or not is_hex64(digest.lower()):
        raise UsageError(f"--checkpoint is SEQ:HASH (the 64-hex hash of record SEQ), got {text[:80]!r}")
    return Checkpoint(int(seq), digest.lower())


def _credentials(args: argparse.Namespace) -> Credentials:
    from adapters.operator import signing

    if args.signature or args.key_id or args.checkpoint:
        if args.key:
            raise UsageError("--key signs here, --signature/--key-id/--checkpoint bring a signature made elsewhere: not both")
        if not (args.signature and args.key_id and args.checkpoint):
            raise UsageError("an offline signature needs --signature HEX, --key-id ID and --checkpoint SEQ:HASH")
        return Credentials(
            key_id=args.key_id.strip().lower(), signature=args.signature.strip().lower(),
            checkpoint=_checkpoint(args.checkpoint),
        )
    path = args.key or os.environ.get(KEY_ENV)
    if not path and default_key_path().is_file():
        path = str(default_key_path())
    if not path:
        raise UsageError(
            f"sign with --key FILE (or set {KEY_ENV}; `evo keygen` makes a key), or give --signature HEX --key-id ID "
            "--checkpoint SEQ:HASH"
        )
    private = signing.load_private(Path(path).expanduser())
    return Credentials(key_id=signing.key_id(signing.public_raw(private)), private=private)


def signed_command(args: argparse.Namespace, make: Callable[..., Signed]) -> int:
    """Print the message to sign (``--print-message``) or sign, verify and append."""
    from adapters.operator import approvals

    with open_app(args) as app:
        try:
            creds = None if args.print_message else _credentials(args)
        except UsageError:
            make(app, None)  # nothing pending, a stale proposal, ...: that is what to say first
            raise
        signed = make(app, creds)
        if creds is None:
            cp = approvals.current_checkpoint(app)
            if args.json:
                out_json({"message": approvals.message_for(app, signed, cp).decode(), "checkpoint": f"{cp.seq}:{cp.hash}"})
            else:
                sys.stdout.buffer.write(approvals.message_for(app, signed, cp))
                sys.stdout.flush()
            return 0
        outcome = approvals.execute_signed(app, signed, creds)
        return print_events(outcome, args.json)


# ---------------------------------------------------------------- approve, reject, rollback


def decide_proposal(args: argparse.Namespace, action: str) -> int:
    """``evo approve`` / ``evo reject``: sign the pending proposal (recomputed from the ledger)."""
    from adapters.operator import approvals
    from adapters.runtime.app import operator_name

    given = None
    if args.proposal is not None:
        given = args.proposal.strip().lower()
        if not 8 <= len(given) <= 64 or any(c not in "0123456789abcdef" for c in given):
            raise UsageError(
                f"--proposal is the proposal hash you reviewed, or a prefix of 8 to 64 hex digits (`evo status`), "
                f"got {args.proposal[:70]!r}"
            )
    decision = approvals.ProposalDecision(
        action=action,
        operator=args.operator or operator_name(),
        given=given,
        reason=getattr(args, "reason", "") or "",
    )
    return signed_command(args, lambda app, creds: approvals.proposal_decision(app, decision, creds))


def cmd_rollback(args: argparse.Namespace) -> int:
    from adapters.operator import approvals
    from adapters.runtime.app import operator_name

    operator = args.operator or operator_name()
    return signed_command(args, lambda app, creds: approvals.rollback(app, args.to, args.reason, operator))


# ---------------------------------------------------------------- autonomy


def cmd_autonomy(args: argparse.Namespace) -> int:
    from adapters.operator import approvals
    from adapters.runtime.app import operator_name

    enabled = args.setting == "on"
    operator = args.operator or operator_name()
    code = signed_command(args, lambda app, creds: approvals.autonomy(app, enabled, operator))
    if args.print_message:
        return code
    config = Workspace(resolve_home(args.home)).load_config()
    if enabled and not config.approval.autonomous:
        print(
            "evo: warning: config.toml [approval] autonomous is false: the scheduler approves for itself "
            "only when it is true as well",
            file=sys.stderr,
        )
    elif not enabled and config.approval.autonomous:
        print("evo: note: config.toml [approval] autonomous is still true (harmless while autonomy is off)", file=sys.stderr)
    return code


# ---------------------------------------------------------------- trust


def cmd_trust(args: argparse.Namespace) -> int:
    from adapters.operator import approvals, signing
    from adapters.runtime.app import operator_name

    operator = args.operator or operator_name()
    if args.action == "list":
        with open_app(args) as app:
            state = app.state()
        keys = [
            {"key_id": k.key_id, "public": f"{signing.KEY_PREFIX}{k.public}", "comment": k.comment, "since_seq": k.since}
            for k in state.keys.values()
        ]
        if args.json:
            out_json({"trusted": keys, "revoked": list(state.revoked_keys)})
            return 0
        if not keys:
            out("no operator key is trusted: nothing can be approved (pin one with `evo init --operator-key`)")
        for k in keys:
            out(f"{k['key_id']}  since seq {k['since_seq']}  {k['comment']}")
        for kid in state.revoked_keys:
            out(f"{kid}  revoked")
        return 0
    if not args.subject:
        raise UsageError(f"evo trust {args.action} needs {'the new key .pub file' if args.action == 'add' else 'a key id'}")
    if args.action == "add":
        public, comment = signing.load_public(Path(args.subject).expanduser())
        return signed_command(args, lambda app, creds: approvals.trust_add(app, public, comment, operator))
    return signed_command(
        args, lambda app, creds: approvals.trust_revoke(app, args.subject.strip().lower(), args.reason, operator)
    )


# ---------------------------------------------------------------- keygen


def _inside(path: Path, home: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(home)))


def cmd_keygen(args: argparse.Namespace) -> int:
    import socket

    from adapters.operator import signing
    from adapters.runtime.app import operator_name

    home = resolve_home(args.home)
    given = args.out or os.environ.get(KEY_ENV)
    path = Path(given).expanduser() if given else default_key_path()
    if _inside(path, home):
        raise WorkspaceError(
            f"{path} is inside the workspace {home}: the agent can write there, so it could read or replace "
            f"the key; keep it outside (default {default_key_path()})"
        )
    comment = args.comment if args.comment is not None else f"{operator_name()}@{socket.gethostname()}"
    kid, line = signing.generate(path, comment=comment)
    if args.json:
        out_json({"key_id": kid, "private": str(path), "public": f"{path}.pub", "line": line})
        return 0
    out(f"key {kid}: private {path} (0600), public {path}.pub")
    out(f"pin it in a new workspace: evo init --operator-key {path}.pub; "
        f"or have a trusted key add it: evo trust add {path}.pub --key TRUSTED.key")
    return 0
