"""The operator's signed commands: ``evo keygen``, ``approve``, ``reject`` and ``autonomy``.
Parse, get the credentials, call the use case (``adapters.operator.approvals``: it verifies
every signature before anything is appended), print.

A refused signature is one line (exit 1), recorded as ``ApprovalRefused`` for auditors. A
missing or unreadable key file appends nothing (exit 1); so does a usage error (exit 2).
``signing`` (and ``cryptography``) load only when a command needs them.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
from pathlib import Path
from typing import Callable

from adapters.cli.common import open_app, out, out_json, print_events
from adapters.operator.approvals import Credentials
from adapters.runtime.workspace import Workspace, WorkspaceError, resolve_home, write_atomic
from evo_core.errors import UsageError

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
    sp.add_argument("--signature", metavar="HEX", help="a signature made elsewhere (offline), with --key-id")
    sp.add_argument("--key-id", metavar="ID", help="the key id of --signature (16 hex, from `evo keygen`)")
    sp.add_argument(
        "--print-message", action="store_true",
        help="print the exact bytes to sign offline (e.g. `openssl pkeyutl -sign -rawin -inkey KEY`) and exit",
    )


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    sp = add("keygen", cmd_keygen, "make an operator key pair (ed25519) outside the workspace; --trust adds it to config.toml")
    sp.add_argument(
        "--out", metavar="PATH",
        help=f"the private key file, PEM, mode 0600 (default ${KEY_ENV}, else ~/.config/evo/operator.key "
        "or under $XDG_CONFIG_HOME); "
        "PATH.pub gets the public key line",
    )
    sp.add_argument("--comment", help="a note after the public key (default user@host)")
    sp.add_argument("--trust", action="store_true", help="also add the public key to the workspace's [approval] trusted_keys")

    sp = add("autonomy", cmd_autonomy, "let the scheduler approve its own proposals, or stop it (signed; config approval.autonomous must also be true)")
    sp.add_argument("setting", choices=("on", "off"))
    sp.add_argument("--operator", help="who signs (default: $EVO_OPERATOR or your user name)")
    signing_options(sp)


# ---------------------------------------------------------------- credentials and refusals


def _credentials(args: argparse.Namespace) -> Credentials:
    from adapters.operator import signing

    if args.signature or args.key_id:
        if args.key:
            raise UsageError("--key signs here, --signature/--key-id bring a signature made elsewhere: not both")
        if not (args.signature and args.key_id):
            raise UsageError("an offline signature needs both --signature HEX and --key-id ID")
        return Credentials(key_id=args.key_id.strip().lower(), signature=args.signature.strip().lower())
    path = args.key or os.environ.get(KEY_ENV)
    if not path and default_key_path().is_file():
        path = str(default_key_path())
    if not path:
        raise UsageError(
            f"sign with --key FILE (or set {KEY_ENV}; `evo keygen` makes a key), or give --signature HEX --key-id ID"
        )
    private = signing.load_private(Path(path).expanduser())
    return Credentials(key_id=signing.key_id(signing.public_raw(private)), private=private)


def _message_out(message: bytes, args: argparse.Namespace) -> int:
    if args.json:
        out_json({"message": message.decode()})
    else:
        sys.stdout.buffer.write(message)
        sys.stdout.flush()
    return 0


# ---------------------------------------------------------------- approve, reject


def decide_proposal(args: argparse.Namespace, action: str) -> int:
    """``evo approve`` / ``evo reject``: sign the pending proposal's full hash, verify, append."""
    from adapters.operator import approvals
    from adapters.runtime.app import operator_name

    creds = None if args.print_message else _credentials(args)
    decision = approvals.ProposalDecision(
        action=action,
        operator=args.operator or operator_name(),
        given=args.proposal.strip().lower() if args.proposal else None,
        reason=getattr(args, "reason", "") or "",
    )
    with open_app(args) as app:
        if creds is None:
            return _message_out(approvals.proposal_message(app, decision), args)
        outcome = approvals.decide_proposal(app, app.ws.load_config(), decision, creds)
        return print_events(outcome, args.json)


# ---------------------------------------------------------------- autonomy


def cmd_autonomy(args: argparse.Namespace) -> int:
    from adapters.operator import approvals
    from adapters.runtime.app import operator_name

    enabled = args.setting == "on"
    creds = None if args.print_message else _credentials(args)
    with open_app(args) as app:
        if creds is None:
            return _message_out(approvals.autonomy_message(app, enabled), args)
        config = app.ws.load_config()
        outcome = approvals.change_autonomy(app, config, enabled, args.operator or operator_name(), creds)
        if enabled and not config.approval.autonomous:
            print(
                "evo: warning: config.toml [approval] autonomous is false: the scheduler approves for itself "
                "only when it is true as well",
                file=sys.stderr,
            )
        elif not enabled and config.approval.autonomous:
            print("evo: note: config.toml [approval] autonomous is still true (harmless while autonomy is off)", file=sys.stderr)
        return print_events(outcome, args.json)


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
    ws = Workspace(home)
    if args.trust:
        ws.load_config()  # a workspace with a valid config, checked before any key is written
    comment = args.comment if args.comment is not None else f"{operator_name()}@{socket.gethostname()}"
    kid, line = signing.generate(path, comment=comment)
    added = _trust(ws, line, kid) if args.trust else False
    if args.json:
        out_json({"key_id": kid, "private": str(path), "public": f"{path}.pub", "line": line, "trusted": args.trust})
        return 0
    out(f"key {kid}: private {path} (0600), public {path}.pub")
    out(f'trusted_keys line: "{line}"')
    if args.trust:
        out(f"{'added to' if added else 'already in'} {ws.config_path} [approval] trusted_keys")
    else:
        out("add it to [approval] trusted_keys in config.toml (or run keygen with --trust)")
    return 0


def _trust(ws: Workspace, line: str, kid: str) -> bool:
    """Add ``line`` to config.toml's [approval] trusted_keys, comments kept, validated, atomic."""
    from adapters.operator import signing
    from evo_core.config import ConfigError, parse_config

    text = ws.config_path.read_text(encoding="utf-8")
    if kid in signing.trusted(parse_config(text, str(ws.config_path))):
        return False
    fail = f"could not add the key to {ws.config_path}; add \"{line}\" to [approval] trusted_keys by hand"
    try:
        new = add_trusted_key(text, line)
        config = parse_config(new, str(ws.config_path))
    except (ValueError, ConfigError) as exc:
        raise WorkspaceError(f"{fail} ({exc})") from None
    if kid not in signing.trusted(config):
        raise WorkspaceError(fail)
    write_atomic(ws.config_path, new, mode=stat.S_IMODE(ws.config_path.stat().st_mode))
    return True


_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*trusted_keys\s*=\s*")


def _array_end(text: str, start: int) -> tuple[int, int]:
    """For the TOML array opening at ``text[start] == "["``: the index of its closing bracket
    and of the last significant character before it (strings and comments skipped)."""
    depth, last, i = 0, start, start
    while i < len(text):
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < len(text) and text[j] != c:
                j += 2 if c == '"' and text[j] == "\\" else 1
            if j >= len(text):
                break
            last = i = j
        elif c == "#":
            i = text.find("\n", i)
            if i < 0:
                break
            continue
        elif c == "[":
            depth += 1
            last = i
        elif c == "]":
            depth -= 1
            if depth == 0:
                return i, last
            last = i
        elif not c.isspace():
            last = i
        i += 1
    raise ValueError("trusted_keys: unterminated array")


def add_trusted_key(text: str, entry: str) -> str:
    """``text`` with ``entry`` appended to ``[approval] trusted_keys`` (the section or the key
    added when missing); everything else, comments included, unchanged."""
    quoted = f'"{entry}"'
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    headers = [(i, m.group(1).strip()) for i, l in enumerate(lines) if (m := _HEADER.match(l))]
    section = next((i for i, name in headers if name == "approval"), None)
    if section is None:
        gap = "\n" if lines and lines[-1].strip() else ""
        return "".join(lines) + f"{gap}[approval]\ntrusted_keys = [{quoted}]\n"
    end = next((i for i, _ in headers if i > section), len(lines))
    key = next((i for i in range(section + 1, end) if _KEY.match(lines[i])), None)
    if key is None:
        lines.insert(section + 1, f"trusted_keys = [{quoted}]\n")
        return "".join(lines)
    whole = "".join(lines)
    opening = len("".join(lines[:key])) + _KEY.match(lines[key]).end()  # type: ignore[union-attr]
    if whole[opening : opening + 1] != "[":
        raise ValueError("trusted_keys is not an array")
    close, last = _array_end(whole, opening)
    if last == opening:  # empty
        return whole[:close] + quoted + whole[close:]
    comma = "" if whole[last] == "," else ","
    if "\n" not in whole[last:close]:  # one line: ["a", "b"]
        return whole[: last + 1] + comma + " " + quoted + whole[last + 1 :]
    eol = whole.index("\n", last)
    indent = re.match(r"[ \t]*", whole[whole.rfind("\n", 0, last) + 1 :]).group(0)  # type: ignore[union-attr]
    return whole[: last + 1] + comma + whole[last + 1 : eol] + f"\n{indent}{quoted}," + whole[eol:]
