"""``evo serve``: an OpenAI-compatible HTTP API over the agent's router (Starlette + uvicorn).

Theory of operation
-------------------
Every answer goes through one ``adapters.agent.Agent`` and so through its ``Router``: HEAD as
the verified ledger says it answers, a TRIVIAL request may be mirrored to the shadow, the
burn-in observes the new HEAD's answers, and a cutover or a rollback (a new ledger record,
appended by any process) is followed at the next request, without a restart. The router and
llama.cpp are not thread-safe: requests are answered one at a time (``_ONE``), each in a
worker thread so the event loop keeps accepting connections.

Endpoints
- ``POST /v1/chat/completions``: OpenAI's chat completion, with ``stream`` (server-sent events
  of ``chat.completion.chunk``s, then ``data: [DONE]``). The ``model`` asked for is the agent's
  name (``agent_name`` in config.toml, ``Luna`` by default): the model that follows HEAD. The
  response's ``model`` (and ``system_fingerprint``, and the ``X-Evo-Generation`` header) names
  the generation that answered, as OpenAI names the snapshot behind an alias. Accepted:
  ``messages`` (roles system, developer (= system), user, assistant; content a string or text
  parts), ``temperature`` (default 0: evo's greedy answers), ``top_p``, ``max_tokens`` /
  ``max_completion_tokens``, ``stop``, ``seed``, ``n`` = 1, ``stream_options.include_usage``,
  and evo's own ``evo_kind`` (TRIVIAL (default), STANDARD or CRITICAL: only TRIVIAL is
  mirrored) and ``evo_karma`` (the recorded conversation's karma, default 0). Each answered
  conversation is recorded in the conversation store (``X-Evo-Conversation`` names its id)
  unless the server runs with ``record=False``.
- ``GET /v1/models``, ``GET /v1/models/{id}``: the agent's model.
- ``GET /health``: 200 with HEAD's generation and the phase; 503 when HEAD cannot be served.

Errors are OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``: 400 for a
request that cannot be answered (malformed JSON, a missing or bad field, an unknown field, a
tool call, ``n`` > 1, a conversation longer than the context: code
``context_length_exceeded``), 404 for an unknown model (``model_not_found``) or path, 405 for a
wrong method, 413 for a body over ``MAX_BODY`` bytes, 503 when HEAD cannot be served, 500
otherwise. A request is checked, and the first piece of its answer made, before the response
starts: a refused streaming request gets its status too. A client that leaves in the middle of
a stream does not stop the answer: it is finished, observed and recorded as any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from adapters.agent import PromptTooLong, chat_messages, sampling_settings
from adapters.data.conversations import check_karma
from adapters.serving.router import KINDS
from evo_core.errors import EvoError, InvalidInput

if TYPE_CHECKING:
    from adapters.agent import Agent
    from adapters.serving.served import Answer

log = logging.getLogger(__name__)

MAX_BODY = 4 << 20
OWNER = "evo"
# Fields a request may carry: those evo answers, and OpenAI's defaults it can ignore.
USED = {"model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
        "n", "stream", "stream_options", "evo_kind", "evo_karma"}
IGNORED = {"user", "store", "metadata", "service_tier", "parallel_tool_calls"}
NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "logprobs": False, "logit_bias": {},
           "response_format": {"type": "text"}}  # accepted only at these values
TOOLS = ("tools", "tool_choice", "functions", "function_call")


class ApiError(Exception):
    """A request refused with an OpenAI-shaped error."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


@dataclass(frozen=True)
class Chat:
    """One checked chat completion request."""

    messages: list[Any]
    options: dict[str, Any]  # Agent.respond's keyword arguments
    stream: bool
    include_usage: bool


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                       and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)
    raise ApiError(400, f"{where}: content must be a string or a list of text parts", param=where)


def parse_chat(body: Any, model: str) -> Chat:
    """The request ``body`` (decoded JSON) checked, or ``ApiError``."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    for name in TOOLS:
        if name in body:
            raise ApiError(400, f"{name}: tool calls are not supported (evo's models are not trained on them)",
                           param=name)
    for name, value in body.items():
        if name in NEUTRAL and value not in (None, NEUTRAL[name]):
            raise ApiError(400, f"{name}: only {json.dumps(NEUTRAL[name])} is supported", param=name)
        if name not in USED and name not in IGNORED and name not in NEUTRAL:
            raise ApiError(400, f"Unrecognized request argument supplied: {name}", param=name)
    if "model" not in body:
        raise ApiError(400, "you must provide a model parameter", param="model")
    if body["model"] != model:
        raise ApiError(404, f"The model {body['model']!r} does not exist (this server serves {model!r})",
                       param="model", code="model_not_found")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "messages: a non-empty list of messages is required", param="messages")
    messages = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ApiError(400, f"{where}: must be an object with role and content", param=where)
        role = "system" if m.get("role") == "developer" else m.get("role")
        if role in ("tool", "function"):
            raise ApiError(400, f"{where}.role: {role!r} messages are not supported (no tool calls)",
                           param=f"{where}.role")
        if role not in ("system", "user", "assistant"):
            raise ApiError(400, f"{where}.role: must be system, developer, user or assistant, got {m.get('role')!r}",
                           param=f"{where}.role")
        messages.append({"role": role, "content": _content(m.get("content"), f"{where}.content")})
    n = body.get("n")
    if n not in (None, 1):
        raise ApiError(400, f"n: only 1 choice per request is supported, got {n!r}", param="n")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise ApiError(400, "stream: must be true or false", param="stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise ApiError(400, "stream_options: must be an object", param="stream_options")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    options: dict[str, Any] = {
        "temperature": _or(body, "temperature", 0.0),
        "top_p": _or(body, "top_p", 1.0),
        "max_tokens": max_tokens,
        "stop": body.get("stop"),
        "seed": body.get("seed"),
        "kind": _or(body, "evo_kind", "TRIVIAL"),
        "karma": _or(body, "evo_karma", 0.0),
    }
    # the checks Agent.respond makes, one field at a time here so that the error names it
    checks: list[tuple[str, Any]] = [("messages", lambda: chat_messages(messages)),
                                     ("evo_karma", lambda: check_karma(options["karma"]))]
    checks += [(name, lambda name=name: sampling_settings(**{name: options[name]}))
               for name in ("temperature", "top_p", "max_tokens", "stop", "seed")]
    for name, check in checks:
        try:
            check()
        except InvalidInput as exc:
            raise ApiError(400, str(exc), param=name) from None
    if not isinstance(options["kind"], str) or options["kind"].upper() not in KINDS:
        raise ApiError(400, f"evo_kind: must be one of {', '.join(KINDS)}, got {options['kind']!r}",
                       param="evo_kind")
    return Chat(messages=messages, options=options, stream=stream,
                include_usage=bool(stream_options.get("include_usage")))


def _or(body: dict[str, Any], name: str, default: Any) -> Any:
    value = body.get(name)
    return default if value is None else value


class Server:
    """The API's state: the agent that answers, the agent's model name, one answer at a time."""

    def __init__(self, agent: Agent, *, record: bool = True):
        self.agent = agent
        self.record = record
        self.model = agent.model_name()
        self.created = int(time.time())
        self._one = threading.Lock()

    def respond(self, chat: Chat, on_text: Any = None, on_head: Any = None) -> Answer:
        """The agent's answer (in a worker thread; one at a time); ``on_head`` gets the name of
        HEAD, the generation about to answer, first."""
        with self._one:
            if on_head is not None:
                on_head(self.agent.router.serve_head().name)
            return self.agent.respond(chat.messages, record=self.record, on_text=on_text, **chat.options)

    def health(self) -> dict[str, Any]:
        with self._one:
            state = self.agent.router.state()
            head = self.agent.router.serve_head().name
        return {"status": "ok", "model": self.model, "generation": head, "phase": state.phase.value}

    def model_card(self) -> dict[str, Any]:
        return {"id": self.model, "object": "model", "created": self.created, "owned_by": OWNER}


def _error(exc: BaseException) -> ApiError:
    """What a failure while answering becomes on the wire."""
    from adapters.serving.generations import ServingError

    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, PromptTooLong):
        return ApiError(400, str(exc), param="messages", code="context_length_exceeded")
    if isinstance(exc, InvalidInput):
        return ApiError(400, str(exc))
    if isinstance(exc, ServingError):
        return ApiError(503, str(exc), kind="server_error", code="head_unavailable")
    if isinstance(exc, EvoError):
        return ApiError(500, str(exc), kind="server_error")
    log.exception("evo serve: answering failed", exc_info=exc)
    return ApiError(500, f"the answer failed: {type(exc).__name__}: {exc}".splitlines()[0], kind="server_error")


def _headers(answer: Answer) -> dict[str, str]:
    headers = {"X-Evo-Generation": answer.generation}
    if answer.conversation_id:
        headers["X-Evo-Conversation"] = answer.conversation_id
    return headers


def _usage(answer: Answer) -> dict[str, int]:
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.tokens,
            "total_tokens": answer.prompt_tokens + answer.tokens}


def _finish(answer: Answer) -> str:
    return "stop" if answer.finished else "length"


def create_app(server: Server) -> Starlette:
    """The ASGI application of ``server`` (uvicorn runs it; tests may too)."""

    async def chat_completions(request: Request) -> Response:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > MAX_BODY:
            raise ApiError(413, f"the request body is over {MAX_BODY} bytes")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise ApiError(413, f"the request body is over {MAX_BODY} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON ({exc})") from None
        chat = parse_chat(body, server.model)
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        if chat.stream:
            return await _stream(server, chat, cid)
        try:
            answer = await asyncio.to_thread(server.respond, chat)
        except Exception as exc:
            raise _error(exc) from None
        return JSONResponse({
            "id": cid, "object": "chat.completion", "created": int(time.time()), "model": answer.generation,
            "system_fingerprint": answer.generation,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "logprobs": None, "finish_reason": _finish(answer)}],
            "usage": _usage(answer),
        }, headers=_headers(answer))

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [server.model_card()]})

    async def model(request: Request) -> Response:
        if request.path_params["model"] != server.model:
            raise ApiError(404, f"The model {request.path_params['model']!r} does not exist", param="model",
                           code="model_not_found")
        return JSONResponse(server.model_card())

    async def health(request: Request) -> Response:
        try:
            return JSONResponse(await asyncio.to_thread(server.health))
        except Exception as exc:
            error = _error(exc)
            return JSONResponse({"status": "unavailable", "error": error.message}, status_code=503)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", kind=kind).response()

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{model:path}", model, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={ApiError: api_error, HTTPException: http_error},
    )


async def _stream(server: Server, chat: Chat, cid: str) -> Response:
    """Answer ``chat`` as server-sent events; errors before the first piece get their status."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    head: list[str] = []  # set by the worker before it puts anything in the queue

    def put(kind: str, value: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def work() -> None:
        try:
            put("done", server.respond(chat, on_text=lambda piece: put("text", piece), on_head=head.append))
        except BaseException as exc:  # reported to the client, never lost in the thread
            put("error", exc)

    threading.Thread(target=work, name="evo-serve-stream", daemon=True).start()
    first = await queue.get()
    if first[0] == "error":
        raise _error(first[1])
    created = int(time.time())

    def chunk(delta: dict[str, Any], generation: str, finish: str | None = None, **extra: Any) -> bytes:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": generation,
                "system_fingerprint": generation,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    async def events() -> AsyncIterator[bytes]:
        item = first
        generation = head[0] if head else server.model
        yield chunk({"role": "assistant", "content": ""}, generation)
        while True:
            kind, value = item
            if kind == "text":
                yield chunk({"content": value}, generation)
            elif kind == "error":
                error = _error(value)
                yield b"data: " + json.dumps({"error": {"message": error.message, "type": error.kind,
                                                         "param": error.param, "code": error.code}}).encode() + b"\n\n"
                break
            else:
                answer: Answer = value
                yield chunk({}, answer.generation, _finish(answer))
                if chat.include_usage:
                    body = {"id": cid, "object": "chat.completion.chunk", "created": created,
                            "model": answer.generation, "choices": [], "usage": _usage(answer)}
                    yield b"data: " + json.dumps(body).encode() + b"\n\n"
                break
            item = await queue.get()
        yield b"data: [DONE]\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def run(agent: Agent, sock: socket.socket, *, record: bool = True, log_level: str = "warning") -> None:
    """Answer on the listening ``sock`` with uvicorn until interrupted (SIGINT or SIGTERM)."""
    import uvicorn

    config = uvicorn.Config(create_app(Server(agent, record=record)), log_level=log_level, access_log=False,
                            lifespan="off")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


__all__ = ["MAX_BODY", "ApiError", "Chat", "Server", "create_app", "parse_chat", "run"]
