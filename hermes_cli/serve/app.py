"""`hermes serve`'s HTTP face (Starlette, run by uvicorn): the OpenAI routes over the turn
queue (core/turn_queue.py), which answers every request with the same reply logic as
`ask`, `chat` and `batch`.

Routes: `POST /v1/chat/completions` (streamed as server-sent events, or whole),
`GET /v1/models`, `GET /health`. A request is read to at most MAX_BODY bytes, checked
whole (core/openai_request.py) before it is admitted, and refused with OpenAI's error shape: 400
for what it asks, 401 without the key, 413 too large, 429 when every slot is busy and the
waiting line is full. A client that goes away frees its slot at the next token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hermes_cli.core import openai_request as wire
from hermes_cli.core.openai_reply import Completion, StopText
from hermes_cli.core.turn_queue import QueuedTurn, QueueFull, TurnQueue
from hermes_cli.engine.params import SamplingParams
from hermes_cli.modes.events import Final, TextDelta
from hermes_cli.serve.replies import error_body, error_for

MAX_BODY = 8 << 20  # bytes: a request's JSON (messages, tools, schema)
DISCARD_UP_TO = 8 * MAX_BODY


class Mailbox:
    """A turn's events, from the worker thread to the event loop, with as few wake-ups as
    can be: a streamed answer wakes the loop only when it is not already due to wake for
    earlier events, a whole answer only at its end. A wake-up per token has the loop's
    thread take a core from llama.cpp's threads in the middle of their decode (whose
    threads spin and wait for each other); on 2 CPUs its cost was within the noise of
    the throughput benchmark, and waking less costs nothing."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, stream: bool) -> None:
        self._loop, self._stream = loop, stream
        self._items: list[Any] = []
        self._lock = threading.Lock()
        self._due = False
        self._ready = asyncio.Event()

    def put(self, item: Any) -> None:
        """On the worker thread."""
        last = isinstance(item, (Final, BaseException))
        with self._lock:
            self._items.append(item)
            if self._due or not (self._stream or last):
                return
            self._due = True
        self._loop.call_soon_threadsafe(self._ready.set)

    async def take(self) -> list[Any]:
        """Every event since the last take (waiting for one)."""
        await self._ready.wait()
        with self._lock:
            self._ready.clear()
            self._due = False
            items, self._items = self._items, []
        return items


@dataclass
class Service:
    """What the routes answer with."""

    model: str
    turns: TurnQueue
    defaults: SamplingParams
    call_format: str
    api_key: str | None = None
    log: Any = sys.stderr


def _error(status: int, message: str, kind: str, **more: Any) -> JSONResponse:
    return JSONResponse(error_body(message, kind, **more), status_code=status)


def _refused(service: Service, request: Request) -> JSONResponse | None:
    """401 unless the request carries the key (compared in constant time), when one is set."""
    if service.api_key is None:
        return None
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), service.api_key.encode()):
        return None
    return _error(401, "a valid API key is required (Authorization: Bearer KEY)", "invalid_request_error",
                  code="invalid_api_key")


async def _body(request: Request) -> bytes | None:
    """The body, or None once it passes MAX_BODY (nothing more is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DISCARD_UP_TO:  # still sending: stop reading (the client sees the connection close)
            return None
        if size <= MAX_BODY:
            chunks.append(chunk)
    # Past the limit the rest is read and dropped (to DISCARD_UP_TO), so a client that
    # sends it all reads our 413 instead of a reset connection.
    return b"".join(chunks) if size <= MAX_BODY else None


def build_app(service: Service) -> Starlette:
    async def health(_request: Request) -> Response:
        """Up, and how busy: open to all (a load balancer's probe), so the model's name is
        left out when a key guards the rest."""
        state = {"status": "ok", "slots": service.turns.parallel, "busy": service.turns.busy}
        return JSONResponse(state if service.api_key else {**state, "model": service.model})

    async def models(request: Request) -> Response:
        refused = _refused(service, request)
        if refused is not None:
            return refused
        return JSONResponse({"object": "list", "data": [
            {"id": service.model, "object": "model", "created": 0, "owned_by": "hermes-cli"}]})

    async def chat(request: Request) -> Response:
        refused = _refused(service, request)
        if refused is not None:
            return refused
        body = await _body(request)
        if body is None:
            return _error(413, f"the request is larger than {MAX_BODY >> 20} MiB", "invalid_request_error",
                          code="request_too_large")
        try:  # parsing compiles the schema's grammar: off the event loop
            parsed = await anyio.to_thread.run_sync(wire.parse, body, service.defaults, service.call_format)
        except wire.BadRequest as e:
            return _error(400, str(e), "invalid_request_error", param=e.param, code=e.code)
        return await _answer(service, request, parsed)

    async def not_found(request: Request) -> Response:
        return _error(404, f"no route {request.method} {request.url.path}", "invalid_request_error",
                      code="not_found")

    return Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ])


async def _answer(service: Service, request: Request, parsed: wire.ChatRequest) -> Response:
    box = Mailbox(asyncio.get_running_loop(), stream=parsed.stream)
    stop = StopText(parsed.stop) if parsed.stop and parsed.mode.name == "text" else None
    json_mode = parsed.mode.json
    completion = Completion(service.model, stream_json=json_mode is None or not json_mode.unenforced())
    logic = parsed.mode.logic(parsed.messages(), parsed.params)  # tools are schemas: calls come back

    def emit(event: Any) -> None:  # on the worker thread
        if stop is not None and isinstance(event, (TextDelta, Final)):
            text = stop.feed(event.text) if isinstance(event, TextDelta) else stop.finish()
            if stop.hit:
                service.turns.halt(turn)
            if isinstance(event, TextDelta):
                event = TextDelta(text)
            elif text:
                box.put(TextDelta(text))
        box.put(event)

    turn = QueuedTurn(logic, emit, thinking=parsed.thinking)
    started = time.perf_counter()
    try:
        service.turns.submit(turn)
    except QueueFull as e:
        busy = _error(429, f"the server is busy: {e}; try again shortly", "rate_limit_error", code="server_busy")
        busy.headers["Retry-After"] = "1"
        return busy
    if parsed.stream:
        return StreamingResponse(_events(service, turn, box, completion, parsed.include_usage, started),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    return await _whole(service, request, turn, box, completion, started)


async def _whole(service: Service, request: Request, turn: QueuedTurn, box: Mailbox,
                 completion: Completion, started: float) -> Response:
    """Wait for the reply, or for the client to go away (its slot is then freed)."""

    async def reply() -> Any:
        while True:
            for event in await box.take():
                if isinstance(event, (Final, BaseException)):
                    return event
                completion.delta(event)

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    answer, left = asyncio.ensure_future(reply()), asyncio.ensure_future(gone())
    try:
        await asyncio.wait({answer, left}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        left.cancel()
        if not answer.done():
            answer.cancel()
            service.turns.cancel(turn)
    if not answer.done() or answer.cancelled():
        return Response(status_code=499)  # nobody is there to read it
    event = answer.result()
    if isinstance(event, BaseException):
        status, body = error_for(event)
        _log(service, status, started, error=body["error"]["message"])
        return JSONResponse(body, status_code=status)
    whole = completion.whole(event, halted=turn.halted)
    _log(service, 200, started, tokens=whole["usage"]["completion_tokens"])
    return JSONResponse(whole)


async def _events(service: Service, turn: QueuedTurn, box: Mailbox, completion: Completion,
                  include_usage: bool, started: float) -> AsyncIterator[str]:
    """The reply as server-sent events; a failure mid-stream is one `error` event."""
    try:
        yield _sse(completion.chunk({"role": "assistant", "content": ""}))
        while True:
            said: list[str] = []
            for event in await box.take():
                if isinstance(event, BaseException):
                    status, body = error_for(event)
                    _log(service, status, started, error=body["error"]["message"])
                    yield "".join(said) + _sse(body)
                    return
                if isinstance(event, Final):
                    delta, finish, used = completion.ending(event, halted=turn.halted)
                    said.append(_sse(completion.chunk(delta, finish)))
                    if include_usage:
                        said.append(_sse(completion.chunk({}, None, used, choices=False)))
                    yield "".join(said) + "data: [DONE]\n\n"
                    _log(service, 200, started, tokens=used["completion_tokens"])
                    return
                piece = completion.delta(event)
                if piece:
                    said.append(_sse(completion.chunk(piece)))
            if said:
                yield "".join(said)  # what came since the last wake-up, in one write
    finally:
        service.turns.cancel(turn)  # a client that went away frees its slot (a finished turn: nothing)


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _log(service: Service, status: int, started: float, *, tokens: int | None = None, error: str | None = None) -> None:
    """One line per answered request on stderr: status, tokens, seconds."""
    what = f"{tokens} tokens" if tokens is not None else (error or "")
    try:
        service.log.write(f"chat/completions {status} · {what} · {time.perf_counter() - started:.2f} s\n")
        service.log.flush()
    except (OSError, ValueError):
        pass
