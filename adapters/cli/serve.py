"""``evo serve``: the OpenAI-compatible HTTP API (``adapters.serving.openai_api``) on a port.

It binds the socket itself first (a port in use is one line, exit 1, before any model loads;
``--port 0`` takes a free one), loads HEAD (a workspace that cannot answer fails now, one line,
exit 1), then listens, prints where, one line on stdout (JSON with ``--json``), and answers
until interrupted (SIGINT or SIGTERM: exit 0). Starlette and uvicorn are imported only here (the ``http`` extra).
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.cli.common import out, out_json
from adapters.runtime.workspace import resolve_home
from evo_core.errors import EnvironmentFault

if TYPE_CHECKING:
    from adapters.agent import Agent

DEFAULT_PORT = 8080
DEFAULT_N_CTX = 2048
DEFAULT_MAX_TOKENS = 256


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv6 when the host is one); ``OSError`` if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise EnvironmentFault(
            f"evo serve needs Starlette and uvicorn ({exc.name} is missing): pip install 'evo[http]'"
        ) from None
    from adapters.agent import Agent

    home = resolve_home(args.home)
    sock = bind(args.host, args.port)  # a port in use fails first, before any model loads
    try:
        n_ctx = args.n_ctx or context_for(home)
        with Agent(home, n_ctx=n_ctx, n_threads=args.threads, max_tokens=args.max_tokens) as agent:
            head = agent.router.serve_head().name  # fails here, before listening, when HEAD cannot answer
            sock.listen(128)
            _serve(args, agent, head, sock)
    finally:
        sock.close()
    return 0


def context_for(home: Path) -> int:
    """``DEFAULT_N_CTX``, or HEAD's training context when it is shorter (llama.cpp would warn,
    and a longer prompt is one the model never learned to read); read from its GGUF's metadata."""
    from adapters.runtime.app import App
    from adapters.serving.generations import gguf_path

    with App(home) as app:
        head = app.state().head
        path = gguf_path(app.ws, head) if head is not None else None
    if path is None:
        return DEFAULT_N_CTX
    try:
        from gguf import GGUFReader

        fields = GGUFReader(path).fields
        arch = fields["general.architecture"]
        trained = fields[bytes(arch.parts[arch.data[0]]).decode() + ".context_length"]
        return max(1, min(DEFAULT_N_CTX, int(trained.parts[trained.data[0]][0])))
    except Exception:  # no metadata to go by: the default (serving checks the bytes anyway)
        return DEFAULT_N_CTX


def _serve(args: argparse.Namespace, agent: Agent, head: str, sock: socket.socket) -> None:
    from adapters.serving.openai_api import run

    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"
    if args.json:
        out_json({"url": url, "host": host, "port": port, "model": agent.model_name(), "generation": head,
                  "record": not args.no_record})
    else:
        out(f"serving {agent.model_name()} (HEAD {head}) at {url}")
    sys.stdout.flush()
    run(agent, sock, record=not args.no_record)


def add_options(sp: argparse.ArgumentParser, positive: Callable[[str], int]) -> None:
    """``evo serve``'s options (``positive``: the CLI's whole-number type)."""
    sp.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine only)")
    sp.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"the TCP port (default {DEFAULT_PORT}; 0: a free one)")
    sp.add_argument("--no-record", action="store_true",
                    help="do not record the conversations answered in the conversation store")
    sp.add_argument("--max-tokens", type=positive, default=DEFAULT_MAX_TOKENS,
                    help=f"new tokens at most when a request names none (default {DEFAULT_MAX_TOKENS})")
    sp.add_argument("--n-ctx", type=positive,
                    help=f"llama.cpp's context per loaded generation, prompt and answer (default {DEFAULT_N_CTX}, "
                    "or HEAD's training context when shorter)")
    sp.add_argument("--threads", type=positive, help="llama.cpp threads (default: llama.cpp's)")


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (0..65535): {text!r}")
    return int(text)
