"""``evo``: the operator's and the agent's command line. Parse, call, print.

Machine output (``--json``) goes to stdout, diagnostics to stderr. An error of evo's family
(``evo_core.errors``: a refused command, corrupt history, an unusable environment) prints one
line and exits 1 with nothing appended; a usage error exits 2. Nothing heavy is imported until
a command needs it: a heartbeat loads msgspec, blake3, the core and the ledger, never pydantic
or torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from adapters.cli.common import (
    EXIT_ERROR,
    StdoutClosed,
    missing_package,
    open_app,
    require_packages,
    out,
    out_json,
    print_events,
    stdout_closed,
)
from adapters.cli.pipeline import cmd_ask, cmd_evaluate, cmd_export, cmd_train
from adapters.runtime.workspace import WorkspaceError, resolve_home
from evo_core.errors import EvoError, UsageError


# The largest cycle, seq or size a command line may name: 2**53, the largest integer every JSON
# reader keeps exact (the ledger is JSON), and far beyond any real agent's clock.
MAX_WHOLE = 2**53
# The most heartbeats one `evo heartbeat --count` appends (one batch, built in memory).
MAX_COUNT = 1_000_000


def _whole(minimum: int, maximum: int = MAX_WHOLE) -> Callable[[str], int]:
    """An argparse type: a whole number in [minimum, maximum] (anything else is a usage error)."""

    def parse(text: str) -> int:
        body = text.strip()
        unsigned = body[1:] if body[:1] in ("+", "-") else body
        if not (unsigned.isascii() and unsigned.isdigit()):
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
        value = int(body) if len(unsigned) <= 20 else (maximum + 1 if body[0] != "-" else minimum - 1)
        if not minimum <= value <= maximum:
            shown = value if len(unsigned) <= 20 else body[:24] + "..."
            raise argparse.ArgumentTypeError(f"must be between {minimum} and {maximum:_}, got {shown}")
        return value

    return parse


_positive = _whole(1)
_seq = _whole(0)
_count = _whole(1, MAX_COUNT)


# ---------------------------------------------------------------- commands


def cmd_init(args: argparse.Namespace) -> int:
    from adapters.runtime.create import init_workspace

    home = resolve_home(args.home)
    base = Path(args.base_model) if args.base_model else None
    if args.demo or base is not None:  # a model genesis is built or copied, exported to GGUF, checked
        require_packages("torch", "transformers", "gguf", "llama_cpp")  # before anything is written
    if args.family is not None:  # a usage error before anything is built (init_workspace checks it too)
        from adapters.models.tiny import FAMILIES

        if not args.demo:
            raise UsageError("--family chooses the demo model's architecture: give it with --demo")
        if args.family not in FAMILIES:
            raise UsageError(f"unknown --family {args.family!r}; one of {', '.join(FAMILIES)}")
    if args.demo:
        model = f"{args.family} model" if args.family else "0.94M-parameter Llama"
        print(f"building the demo genesis model (tokenizer + a {model}, about 1-2 min)...", file=sys.stderr)
    keys = _operator_keys(args.operator_key)
    with init_workspace(
        home, period=args.period, max_concurrent=args.max_concurrent, demo=args.demo, base_model=base,
        operator_keys=keys, family=args.family,
    ) as app:
        state = app.state()
        out(f"initialised {home}: HEAD is {state.head}")
        for key in state.keys.values():
            out(f"operator key pinned: {key.key_id} {key.comment}".rstrip())
        if not state.keys:
            print(
                "evo: warning: no operator key pinned: nothing can ever be approved or rolled back in this "
                "workspace (make one with `evo keygen`, then create the workspace with --operator-key KEY.pub)",
                file=sys.stderr,
            )
        if args.demo or base is not None:
            source = "the demo model" if args.demo else str(base)
            out(f"genesis model: {source} in {app.ws.archive / str(state.head) / 'weights'}")
        out(f"config: {app.ws.config_path} (period {app.ws.heartbeat_settings().evo_period_cycles} cycles)")
    return 0


def _operator_keys(given: list[str]) -> list[tuple[bytes, str]]:
    """The operator keys to pin: the files given, else the operator's default key's .pub."""
    from adapters.cli.operator import KEY_ENV, default_key_path

    paths = [Path(p).expanduser() for p in given]
    if not paths:
        default = Path(os.environ[KEY_ENV]).expanduser() if os.environ.get(KEY_ENV) else default_key_path()
        pub = default.with_name(default.name + ".pub")
        paths = [pub] if pub.is_file() else []
    if not paths:
        return []
    from adapters.operator import signing

    return [signing.load_public(p) for p in paths]


def cmd_ingest(args: argparse.Namespace) -> int:
    from adapters.data.conversations import IngestError, ingest
    from adapters.runtime.workspace import Workspace

    home = resolve_home(args.home)
    ws = Workspace(home)
    ws.require()
    stdin = args.file == "-"
    source = "<stdin>" if stdin else args.file

    def next_cycle() -> int:  # a row without a cycle belongs to the next window, never an open one
        from adapters.runtime.app import App

        with App(home) as app:
            return app.state().cycle + 1

    try:
        report = ingest(
            ws, source, fmt=args.format, strict=args.strict, default_cycle=next_cycle,
            raw=sys.stdin.buffer.read() if stdin else None,
        )
    except IngestError as exc:
        print(f"evo: error: {exc.summary}", file=sys.stderr)
        for line in exc.problems:
            print(f"  {line}", file=sys.stderr)
        return EXIT_ERROR
    for name, lines in report.dropped:
        print(
            f"evo: warning: {source}: {name} dropped (in {lines} line{'s' if lines > 1 else ''}): the store does not "
            "keep it (--strict refuses such a file)",
            file=sys.stderr,
        )
    if args.json:
        out_json({
            "added": report.added, "duplicates": report.duplicates, "total": report.total,
            "format": report.format, "dropped": dict(report.dropped),
        })
    else:
        out(f"added {report.added}, duplicates {report.duplicates} (store: {report.total} conversations)")
    return 0


def cmd_heartbeat(args: argparse.Namespace) -> int:
    from adapters.runtime.app import App
    from evo_core.events import Heartbeat

    if args.cycle is not None and args.cycle + args.count - 1 > MAX_WHOLE:
        raise UsageError(f"--cycle {args.cycle} with --count {args.count} goes past cycle {MAX_WHOLE}")
    with App(resolve_home(args.home)) as app:
        outcome = app.heartbeat(cycle=args.cycle, count=args.count)
    first = outcome.checkpoint.seq - len(outcome.events) + 1
    if args.json:
        out_json([{"seq": first + i, "event": e} for i, e in enumerate(outcome.events)])
        return 0
    beats = [e for e in outcome.events if isinstance(e, Heartbeat)]
    span = f"{beats[0].cycle}" if len(beats) == 1 else f"{beats[0].cycle}..{beats[-1].cycle}"
    out(f"cycle {span} (seq {outcome.checkpoint.seq})")
    notable = [e for e in outcome.events if not isinstance(e, Heartbeat)]
    if notable:
        from projections.summary import describe

        for event in notable:
            out(describe(event))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from adapters.runtime.activity import in_progress
    from projections.status import render_text, status_view

    with open_app(args) as app:
        if args.at_cycle is not None or args.at_seq is not None:
            from projections.asof import state_at

            last = app.store.ledger.tail().seq
            if args.at_seq is not None and args.at_seq > last:
                raise WorkspaceError(f"--at-seq {args.at_seq} is past the ledger's end (its last record is seq {last})")

            state = state_at(
                app.store.ledger.records(), seq=args.at_seq, cycle=args.at_cycle, step=app.store.fold.evolve
            )
            checkpoint = None
        else:
            from adapters.runtime.materialize import missing

            loaded = app.store.load()
            state, checkpoint = loaded.state, loaded.checkpoint
            app.sync(state, files=missing(app.ws))  # links always; files only if deleted
        period = app.ws.heartbeat_settings().evo_period_cycles
        # what running processes say they are doing now (advisory; not as of a past record)
        shown, ignored = in_progress(app.ws.home) if checkpoint is not None else ((), ())
        view = status_view(
            state, period=period, seq=checkpoint.seq if checkpoint else None, in_progress=shown, activity_ignored=ignored
        )
    if args.json:
        out_json(view)
    else:
        out(render_text(view))
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    from evo_core.events import EVENT_TYPES
    from projections.summary import describe

    if args.type and args.type not in EVENT_TYPES:
        raise UsageError(f"unknown event type {args.type!r}; one of: {', '.join(EVENT_TYPES)}")
    with open_app(args) as app:
        if not args.json:
            for rec in app.store.ledger.records(start_seq=args.since or 0):
                if not args.type or type(rec.event).__name__ == args.type:
                    out(f"{rec.seq:>8}  {rec.at}  {describe(rec.event)}")
            return 0
        from projections.entry import RecordEntry, entry
        from projections.records import clocked

        since = args.since or 0
        for cycle, rec in clocked(app.store.ledger.records()):  # from the start: each record's cycle
            if rec.seq >= since and (not args.type or type(rec.event).__name__ == args.type):
                out_json(entry(RecordEntry, cycle, rec, hash=rec.hash))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from adapters.audit.verify import audit
    from ledger.store import parse_checkpoint

    checkpoint = None
    if args.checkpoint is not None:  # an empty one is a mistake, never "no checkpoint"
        try:
            checkpoint = parse_checkpoint(args.checkpoint)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    report = audit(resolve_home(args.home), checkpoint, deep=args.deep)
    if args.json:
        out_json(report)
    else:
        out(report.summary())
        for line in report.problems:
            print(f"  problem: {line}", file=sys.stderr)
        for line in report.notes:
            print(f"  note: {line}", file=sys.stderr)
    return 0 if report.ok else EXIT_ERROR


def cmd_head(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        tail = app.store.ledger.tail()
    if args.json:
        out_json({"seq": tail.seq, "hash": tail.hash})
    else:
        out(f"{tail.seq}:{tail.hash}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from adapters.cli.operator import decide_proposal

    return decide_proposal(args, "approve")


def cmd_reject(args: argparse.Namespace) -> int:
    from adapters.cli.operator import decide_proposal

    return decide_proposal(args, "reject")


def cmd_rollback(args: argparse.Namespace) -> int:
    from adapters.cli.operator import cmd_rollback as signed_rollback

    return signed_rollback(args)


def cmd_timeline(args: argparse.Namespace) -> int:
    from adapters.cli.forensics import resolve_name
    from projections.explain import generation_names
    from projections.timeline import timeline

    with open_app(args) as app:
        name = resolve_name(generation_names(app.store.ledger.records()), args.generation)
        entries = timeline(app.store.ledger.records(), name)
    if not entries:
        raise WorkspaceError(f"no generation or candidate named {args.generation!r} in the ledger")
    if args.json:
        out_json(entries)
    else:
        for e in entries:
            out(f"{e.seq:>8}  cycle {e.cycle:<8} {e.at}  {e.summary}")
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    sys.stdout.write(shtab.complete(build_parser(), shell=args.shell))
    return 0


# ---------------------------------------------------------------- parser

# shtab's completers (what shtab.FILE and shtab.DIRECTORY hold), named here so that building the
# parser never imports shtab: only `evo completion` does.
FILE_COMPLETION = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}
DIR_COMPLETION = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/", "tcsh": "d"}
HOME_HELP = "the workspace (default: $EVO_HOME, else ./evo-home)"


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print evo's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("evo")
        except PackageNotFoundError:
            text = "unknown (not installed: pip install -e .)"
        sys.stdout.write(f"evo {text}\n")
        parser.exit()


def _home_everywhere(parser: argparse.ArgumentParser) -> None:
    """Every subcommand (nested ones too) takes ``--home`` after its name as well; main checks
    that it agrees with one given before the command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                if not any("--home" in a.option_strings for a in sub._actions):
                    sub.add_argument(
                        "--home", dest="home_after", default=argparse.SUPPRESS, help=HOME_HELP
                    ).complete = DIR_COMPLETION
                _home_everywhere(sub)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evo",
        description="The Evolution Scheduler: an append-only, hash-chained ledger that decides "
        "when the agent's own model may change.",
    )
    p.add_argument("--home", help=HOME_HELP).complete = DIR_COMPLETION  # type: ignore[attr-defined]
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str, json: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        if json:
            sp.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        return sp

    sp = add("init", cmd_init, "create a workspace: config.toml and the genesis generation as HEAD", json=False)
    sp.add_argument("--period", type=_positive, help="evo_period_cycles (default 10000)")
    sp.add_argument("--max-concurrent", type=_positive, help="max_concurrent_experiments (default 3)")
    model = sp.add_mutually_exclusive_group()
    model.add_argument(
        "--demo", action="store_true", help="genesis = the embedded demo model (built locally, no download)"
    )
    model.add_argument(
        "--base-model", metavar="DIR", help="genesis = a local Hugging Face causal-LM folder (copied)"
    )
    sp.add_argument(
        "--family", metavar="NAME",
        help="with --demo: the demo model on this architecture, tokenizer kind and chat template instead of "
        "the default Llama (llama2, llama3, mistral, qwen2, qwen3, gemma2, gemma3, phi3)",
    )
    sp.add_argument(
        "--operator-key", metavar="FILE", action="append", default=[],
        help="pin this operator public key (a .pub from `evo keygen`) in the new ledger; repeatable "
        "(default: $EVO_OPERATOR_KEY.pub, else ~/.config/evo/operator.key.pub, if it exists)",
    )

    sp = add("ingest", cmd_ingest, "add the agent's conversations from a JSONL file or stdin (duplicate ids ignored)")
    sp.add_argument(
        "file", help="one JSON conversation per line (evo's rows, OpenAI messages, Hugging Face chat rows or "
        "ShareGPT); - reads stdin",
    ).complete = FILE_COMPLETION  # type: ignore[attr-defined]
    sp.add_argument(
        "--format", choices=("auto", "evo", "openai", "sharegpt", "hf"), default="auto",
        help="the file's format (default auto: recognised from its lines; a file mixing formats is refused)",
    )
    sp.add_argument(
        "--strict", action="store_true",
        help="refuse a file with fields the store does not keep (default: drop them, one warning per field)",
    )

    from adapters.cli import probes as cli_probes

    cli_probes.add_commands(add)

    sp = add("heartbeat", cmd_heartbeat, "append the next heartbeat (the agent's clock)")
    sp.add_argument("--cycle", type=_positive, help="this cycle instead of the next one (must increase)")
    sp.add_argument(
        "--count", type=_count, default=1, help=f"append K consecutive heartbeats in one batch (K <= {MAX_COUNT:,})"
    )

    sp = add("status", cmd_status, "phase, HEAD, the window, the pending proposal and what to do next")
    sp.add_argument("--at-cycle", type=_seq, help="the status as it was at this heartbeat cycle")
    sp.add_argument("--at-seq", type=_seq, help="the status as it was after this ledger record")

    sp = add("log", cmd_log, "the ledger's records, one line each")
    sp.add_argument("--type", help="only events of this type (e.g. WindowOpened)")
    sp.add_argument("--since", type=_seq, help="only records from this seq on")

    sp = add("verify", cmd_verify, "verify the whole ledger (hashes, chain, head file, transitions); exit 0 only if intact")
    sp.add_argument("--checkpoint", metavar="SEQ:HASH", help="a checkpoint you kept (from `evo head`): the ledger must extend it")
    sp.add_argument("--deep", action="store_true", help="also re-hash every archive the ledger names against its event and its hashes.csv")

    add("head", cmd_head, "print the ledger's latest checkpoint SEQ:HASH (keep it to detect rollback of the ledger)")

    from adapters.cli import operator as cli_operator

    sp = add("approve", cmd_approve, "approve the pending promotion proposal, signed with your operator key")
    sp.add_argument("--proposal", metavar="HASH", help="the proposal hash (or a prefix of >= 8) you reviewed")
    sp.add_argument("--operator", help="who approves (default: $EVO_OPERATOR or your user name)")
    cli_operator.signing_options(sp)

    sp = add("reject", cmd_reject, "reject the pending promotion proposal, signed with your operator key")
    sp.add_argument("--reason", required=True, help="why (recorded in the ledger)")
    sp.add_argument("--proposal", metavar="HASH", help="the proposal hash (or a prefix of >= 8)")
    sp.add_argument("--operator", help="who rejects (default: $EVO_OPERATOR or your user name)")
    cli_operator.signing_options(sp)

    cli_operator.add_commands(add)

    sp = add("rollback", cmd_rollback, "point HEAD back at an earlier promoted generation (default: the previous one)")
    sp.add_argument("--to", metavar="GENERATION", help="a generation that was promoted before (a unique prefix will do)")
    sp.add_argument("--reason", default="manual rollback", help="recorded in the ledger")
    sp.add_argument("--operator", help="who rolls back (default: $EVO_OPERATOR or your user name)")
    cli_operator.signing_options(sp)

    add("train", cmd_train, "spawn and train the open window's candidates in parallel (LoRA distillation under hard budgets)")

    sp = add("export", cmd_export, "re-export an archived generation's weights/ to model.gguf and check its parity with llama.cpp")
    sp.add_argument("generation", help="an archived generation's name (a unique prefix will do)")
    from adapters.serving.quantize import SERVED_TYPES

    sp.add_argument(
        "--dtype", choices=SERVED_TYPES, default="f32",
        help="tensor type (default f32); q8_0 and the K-quants are made by llama.cpp's quantizer from a "
        "parity-checked f16 export and checked against it",
    )

    from adapters.cli.disk import cmd_du

    add("du", cmd_du, "bytes on disk per generation: weights/, adapter/, GGUF and the rest")

    sp = add("ask", cmd_ask, "ask HEAD (or any generation with a model.gguf) one question through llama.cpp")
    sp.add_argument("prompt", help="the user's message (rendered with the model's chat template)")
    sp.add_argument("--generation", metavar="G", help="a generation name or unique prefix (default: HEAD)")
    sp.add_argument("--max-tokens", type=_positive, default=64, help="new tokens at most (default 64)")

    from adapters.cli.serve import add_options as serve_options, cmd_serve

    sp = add("serve", cmd_serve, "answer OpenAI-compatible HTTP requests (/v1/chat/completions) through the router: HEAD, shadow, burn-in")
    serve_options(sp, _positive)

    add("evaluate", cmd_evaluate, "evaluate the trained candidates and HEAD on the window's probes, rank, freeze every candidate, propose")
    from adapters.cli.run import cmd_run

    sp = add("run", cmd_run, "the runner: follow the ledger and do what is due (train, evaluate, propose, shadow, cutover, burn-in)")
    sp.add_argument("--until-idle", action="store_true", help="do everything that is due now, then exit (scripts, cron, tests)")

    sp = add("timeline", cmd_timeline, "everything the ledger says about one generation or candidate")
    sp.add_argument("generation", help="a generation or candidate name, or a unique prefix (e.g. Luna-G001-a)")

    from adapters.cli.forensics import cmd_explain, cmd_report

    sp = add("explain", cmd_explain, "why a candidate ended as it did: gates and margins, budget, rank, hashes, rollout")
    sp.add_argument("name", help="a candidate or genesis name, or a unique prefix (e.g. Luna-G001-c)")
    sp = add("report", cmd_report, "write a static HTML report: lineage graph, metrics plots, window table")
    sp.add_argument("--out", metavar="PATH", help="where to write it (default <home>/models/report.html)")

    from adapters.cli import config_cmd

    config_cmd.add_commands(add)
    sp = add("completion", cmd_completion, "print a shell completion script (e.g. evo completion bash > "
             "~/.local/share/bash-completion/completions/evo)", json=False)
    sp.add_argument("shell", choices=("bash", "zsh", "tcsh"), help="the shell to complete in")

    from adapters.cli import mlflow_sync

    mlflow_sync.add_command(add)
    _home_everywhere(p)  # last: every command added above takes --home after its name
    return p


def _not_utf8(argv: Sequence[str]) -> str | None:
    """The first argument that is not valid UTF-8 (Python keeps such bytes as lone surrogates,
    which no ledger record or file name can carry), shown escaped."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return arg.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    bad = _not_utf8(argv)
    if bad is not None:
        parser.print_usage(sys.stderr)
        print(f"evo: error: argument {bad!r} is not valid UTF-8 text; give it in UTF-8", file=sys.stderr)
        return UsageError.exit_code
    args = parser.parse_args(argv)
    after = getattr(args, "home_after", None)
    if after is not None:
        if args.home is not None and args.home != after:
            parser.print_usage(sys.stderr)
            print(
                f"evo: error: --home given twice, {args.home!r} before the command and {after!r} after it: give one",
                file=sys.stderr,
            )
            return UsageError.exit_code
        args.home = after
    try:
        code = int(args.fn(args))
        sys.stdout.flush()  # a reader that went away is seen here, not at exit
        return code
    except (StdoutClosed, BrokenPipeError):
        return stdout_closed()
    except EvoError as exc:  # by type, never by message: one line and the error's exit code
        if isinstance(exc, UsageError):
            parser.print_usage(sys.stderr)
        print(f"evo: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"evo: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_ERROR
    except ModuleNotFoundError as exc:  # an optional extra not installed (e.g. serve's gguf for init --demo)
        line = missing_package(exc)
        if line is None:
            raise
        print(f"evo: error: {line}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
