"""A served engine as a reply backend: the same `start(messages, params, grammar)` as the
local engine (core/reply.py), so JSON mode, tools and batch work the same against it.

The Hermes prompts are ours (the system message carries the JSON or tool prompt), so any
server works. JSON mode also goes out as `response_format` where the server takes it
(OpenAI's `json_schema`, else llama-cpp-python's `json_object` with a schema, else
nothing); every answer is validated here anyway, with the same bounded retry. Tool calls
come back as `<tool_call>` text, or as the API's `tool_calls`, which are turned into the
same text. Ctrl-C closes the HTTP stream, which cancels the request on the server.

Two bounds hold whatever the server does: `max_tokens` is the reply's cap on our side too
(a server that ignores it and streams on is cut after as many content events, the reply
marked "length"), and the endpoint's timeout bounds the whole request, not only the gap
between two reads (a server that keeps sending would otherwise hold a batch forever).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from hermes_cli.engine.params import GenerationResult, SamplingParams
from hermes_cli.engine.stream import LazyStream
from hermes_cli.errors import ServerError, StreamRedactor, redact
from hermes_cli.prompt.messages import Message
from hermes_cli.prompt.reasoning import CLOSE as THINK_CLOSE
from hermes_cli.prompt.reasoning import OPEN as THINK_OPEN
from hermes_cli.prompt.reply_grammar import ReplyGrammar
from hermes_cli.prompt.tool_calls import parse_tool_calls, response_blocks
from hermes_cli.served.client import Endpoint, translate
from hermes_cli.served.pool import EndpointPool

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "stop", "content_filter": "stop"}


class StreamEndedEarly(ConnectionError):
    """The event stream stopped before the server said why (a dropped connection, or a
    server that interrupts one request for the next, as llama-cpp-python's does)."""


class _Bounds:
    """One request's two bounds: the content events allowed (`max_tokens`; each event is
    at least one token, so a server that packs several is cut later, never sooner) and
    the monotonic time by which the whole answer must be in."""

    def __init__(self, endpoint: Endpoint, params: SamplingParams) -> None:
        self.endpoint = endpoint
        self.cap = params.max_tokens
        self.deadline = time.monotonic() + endpoint.timeout

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise ServerError(f"{self.endpoint.base_url} was still answering after "
                              f"{self.endpoint.timeout:g} s, the bound on one request",
                              hint="raise --request-timeout, or lower --max-tokens")

    def over(self, pieces: int) -> bool:
        """Whether `pieces` content events are more than the reply may hold."""
        return self.cap is not None and pieces > self.cap


class _Wrap:
    """The text a served grammar puts around the server's answer (`<tool_call>` and its
    closing tag when a call is forced and the server is asked for the call's JSON only).
    A server that ignores `response_format` writes the tags itself: wrapped again, its
    answer became a block of raw text and a stray `</tool_call>` printed as the answer.
    So the opening is held until the answer's first visible characters show whether it
    brings its own tag; then it gets neither tag from us."""

    def __init__(self, opening: str, closing: str) -> None:
        self.opening, self.closing, self.tag = opening, closing, opening.strip()
        self.decided = not self.tag
        self.own = False
        self.lead = ""

    def feed(self, text: str) -> str:
        if self.decided:
            return text
        self.lead += text
        shown = self.lead.lstrip()
        if len(shown) < len(self.tag) and self.tag.startswith(shown):
            return ""  # not yet clear either way
        return self._decide(own=shown.startswith(self.tag))

    def finish(self, *, calls: bool) -> str:
        """What was held at the end (the server's own `tool_calls` carry their tags)."""
        return "" if self.decided else self._decide(own=calls and not self.lead.strip())

    def ending(self) -> str:
        return "" if self.own else self.closing

    def _decide(self, *, own: bool) -> str:
        self.decided, self.own = True, own
        text, self.lead = (self.lead if own else self.opening + self.lead), ""
        return text


def _thought(delta: Any) -> str | None:
    """A reasoning model's thinking in a delta (`reasoning_content`: vLLM, llama-server,
    DeepSeek; `reasoning`: others), if the server sends it apart from the content."""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(delta, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def _pieces(chunk: Any) -> int:
    """The content events in one chunk: text, thinking, or a tool call's name or arguments."""
    count = 0
    for choice in chunk.choices or []:
        delta = choice.delta
        if getattr(delta, "content", None):
            count += 1
        if _thought(delta):
            count += 1
        count += len(getattr(delta, "tool_calls", None) or [])
    return count


class ServedBackend:
    """`buffered`: read each answer whole inside the retry loop, so a stream cut short is
    asked again (batch: nobody watches it stream); otherwise text streams as it comes."""

    def __init__(self, pool: EndpointPool, model: str, *, buffered: bool = False) -> None:
        self.pool = pool
        self.model = model
        self.buffered = buffered
        self.thinking: bool | None = None  # --think/--no-think (None: the server's default)

    def start(self, messages: list[Message], params: SamplingParams,
              grammar: ReplyGrammar | None) -> ServedStream:
        return ServedStream(self, messages, params, grammar)

    def request(self, messages: list[Message], params: SamplingParams) -> dict[str, Any]:
        """The chat-completions JSON exactly as it goes on the wire (`--show-prompt` and
        `/prompt` print this; the stream sends it, plus `response_format` in JSON mode)."""
        body: dict[str, Any] = {"model": self.model, "messages": wire_messages(messages),
                                "temperature": params.temperature, "top_p": params.top_p}
        if params.max_tokens is not None:
            body["max_tokens"] = params.max_tokens
        if params.seed is not None:
            body["seed"] = params.seed
        for name in ("frequency_penalty", "presence_penalty"):  # OpenAI's own: sent when set
            if getattr(params, name):
                body[name] = getattr(params, name)
        # Not in OpenAI's API, but what vLLM, llama.cpp and llama-cpp-python read.
        body |= {"top_k": params.top_k, "min_p": params.min_p, "repeat_penalty": params.repeat_penalty,
                 "repetition_penalty": params.repeat_penalty}
        if params.think_budget is not None:  # hermes serve holds it (Qwen's API's name); others may not
            body["thinking_budget"] = params.think_budget
        if self.thinking is not None:  # --think/--no-think: the template's switch, on the server
            body["chat_template_kwargs"] = {"enable_thinking": self.thinking}
        body |= {"stream": True, "stream_options": {"include_usage": True}}
        if messages and messages[-1].open:  # /continue: vLLM's names; llama-server continues a final assistant turn
            body |= {"continue_final_message": True, "add_generation_prompt": False}
        return body


def wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """OpenAI-style messages, valid for strict servers: an assistant turn that called
    tools carries `tool_calls` (ids `call_I_K`), and the Hermes tool turn after it goes
    as one `tool` message per call, each answering its id (a `tool_call_id` with no
    matching call is rejected by OpenAI's own validation). The text stays the Hermes
    text, so servers that read only `content` see what the model was trained on."""
    out: list[dict[str, Any]] = []
    ids: list[str] = []  # the calls of the last assistant turn, not yet answered
    for i, m in enumerate(messages):
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.role == "assistant":
            calls = parse_tool_calls(m.content).calls
            ids = [f"call_{i}_{k}" for k in range(len(calls))]
            if calls:
                item["tool_calls"] = [{"id": id_, "type": "function", "function": {
                    "name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
                    for id_, c in zip(ids, calls)]
        elif m.role == "tool":
            blocks = response_blocks(m.content)
            if ids and len(blocks) == len(ids):
                out += [{"role": "tool", "content": b, "tool_call_id": id_} for id_, b in zip(ids, blocks)]
                ids = []
                continue
            item["tool_call_id"] = ids[0] if ids else f"call_{i}"
            ids = []
        out.append(item)
    return out


class ServedStream(LazyStream):
    """One streamed request: iterate for text; `result` once it ends or is closed."""

    def __init__(self, backend: ServedBackend, messages: list[Message], params: SamplingParams,
                 grammar: ReplyGrammar | None) -> None:
        super().__init__()
        self._backend = backend
        self._messages = messages
        self._params = params
        self._grammar = grammar
        self._stream: Any = None

    def _open(self, endpoint: Endpoint) -> tuple[Any, Any]:
        """Send the request and wait for its first event (retried by the pool until then)."""
        body = self._backend.request(self._messages, self._params)
        schema = self._grammar.server_schema if self._grammar is not None else None
        client = endpoint.client()
        for fmt in _formats(endpoint, schema):
            wire = dict(body) if fmt is None else {**body, "response_format": fmt}
            try:
                stream = client.stream_chat(wire)  # exactly `request()`'s JSON, whatever the server reads
            except Exception as e:
                if fmt is not None and _rejected_format(e):
                    continue  # this server does not take that form (some answer 500): the next one
                raise
            if fmt is not None:
                endpoint.json_format = fmt["type"]
            elif schema is not None:
                endpoint.json_format = "none"
            kind = stream.response.headers.get("content-type", "")
            if not kind.startswith("text/event-stream"):
                stream.close()
                raise ServerError(f"{endpoint.base_url} did not stream its answer (content-type {kind!r})",
                                  hint="hermes-cli needs a server that supports stream=true")
            return stream, next(stream, None)
        raise AssertionError("unreachable")

    def _run(self) -> Iterator[str]:
        started = time.perf_counter()
        first: float | None = None
        chunks: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage: Any = None
        reason = "interrupted"
        wrap = _Wrap(*(self._grammar.server_wrap if self._grammar is not None else ("", "")))
        endpoint = self._backend.pool.primary
        redactor = StreamRedactor()  # a server that echoes our key back: never shown
        bounds = _Bounds(endpoint, self._params)
        sent = 0  # content events (text, tool calls): what max_tokens caps, and the count without usage
        thinking = False  # inside the server's reasoning_content
        try:
            if self._backend.buffered:
                events = self._backend.pool.call(self._read_whole, model=self._backend.model)
                stream, chunk = None, (events.pop(0) if events else None)
                rest = iter(events)
            else:
                stream, chunk = self._backend.pool.call(self._open, model=self._backend.model)
                self._stream = stream
                rest = stream
            while chunk is not None:
                bounds.check_time()
                more = _pieces(chunk)
                if bounds.over(sent + more):  # the server ignores max_tokens: the reply is cut here
                    reason = "length"
                    break
                sent += more
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                for choice in chunk.choices or []:
                    delta = choice.delta
                    thought = _thought(delta)
                    if thought:  # written as the section a local model writes (prompt/reasoning.py)
                        if first is None:
                            first = time.perf_counter()
                        thought = (THINK_OPEN + "\n" if not thinking else "") + redactor.feed(thought)
                        thinking = True
                        chunks.append(thought)
                        yield thought
                    text = getattr(delta, "content", None)
                    if text and thinking:
                        ended = redactor.finish() + "\n" + THINK_CLOSE + "\n\n"
                        thinking = False
                        chunks.append(ended)
                        yield ended
                    if text:
                        if first is None:
                            first = time.perf_counter()
                        text = wrap.feed(redactor.feed(text))
                        if text:
                            chunks.append(text)
                            yield text
                    for call in getattr(delta, "tool_calls", None) or []:
                        slot = calls.setdefault(call.index or 0, {"name": "", "arguments": ""})
                        if call.function is not None:
                            slot["name"] += call.function.name or ""
                            slot["arguments"] += call.function.arguments or ""
                    if choice.finish_reason:
                        reason = _FINISH.get(choice.finish_reason, "stop")
                chunk = next(rest, None)
            if reason == "interrupted":
                raise StreamEndedEarly("the server ended its answer before saying why")
            if thinking:  # it thought and never answered
                ended = redactor.finish() + "\n" + THINK_CLOSE
                chunks.append(ended)
                yield ended
            tail = wrap.feed(redactor.finish()) + wrap.finish(calls=bool(calls))
            if tail:
                chunks.append(tail)
                yield tail
            for call in calls.values():  # the server parsed the calls: write them the Hermes way
                text = "<tool_call>\n" + json.dumps(_call_object(call), ensure_ascii=False) + "\n</tool_call>"
                text = redact(text)
                chunks.append(text)
                yield text
            closing = wrap.ending()
            if closing and reason == "stop":
                chunks.append(closing)
                yield closing
        except ServerError:
            raise
        except StreamEndedEarly as e:
            raise ServerError(f"{endpoint.base_url}: {e}") from None
        except Exception as e:
            if isinstance(e, GeneratorExit):
                raise
            raise translate(e, endpoint, self._backend.model) from None
        finally:
            if self._stream is not None:
                self._stream.close()  # Ctrl-C or an error: the server stops writing
            end = time.perf_counter()
            ttft = (first or end) - started
            prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None) or 0
            self.result = GenerationResult(
                text="".join(chunks), token_ids=[], finish_reason=reason, prompt_tokens=prompt_tokens,
                prompt_evaluated=prompt_tokens - int(cached), prompt_reused=int(cached),
                prompt_seconds=ttft, generation_seconds=end - (first or end),
                generated=int(getattr(usage, "completion_tokens", 0) or 0) if usage else sent,
                usage_known=usage is not None, enforced=False)



    def _read_whole(self, endpoint: Endpoint) -> list[Any]:
        """Every event of one answer (retried by the pool as a whole if cut short), up to
        one content event past `max_tokens` (then `_run` cuts the reply there)."""
        bounds = _Bounds(endpoint, self._params)
        stream, chunk = self._open(endpoint)
        events, pieces = [], 0
        try:
            while chunk is not None:
                bounds.check_time()
                events.append(chunk)
                pieces += _pieces(chunk)
                if bounds.over(pieces):
                    return events
                chunk = next(stream, None)
        finally:
            stream.close()
        if not any(choice.finish_reason for event in events for choice in (event.choices or [])):
            raise StreamEndedEarly("the server ended its answer before saying why")
        return events


def _formats(endpoint: Endpoint, schema: dict[str, Any] | None) -> list[dict[str, Any] | None]:
    """The response_format forms to try, best first, starting from what worked before."""
    if schema is None:
        return [None]
    forms: list[dict[str, Any] | None] = [
        {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        {"type": "json_object", "schema": schema},
        None,
    ]
    known = {"json_schema": 0, "json_object": 1, "none": 2}.get(endpoint.json_format or "", 0)
    return forms[known:]


def _rejected_format(e: BaseException) -> bool:
    """An HTTP error to a request carrying response_format: try the next form (servers
    answer 400, 422, and llama-cpp-python's 500, to a form they do not know)."""
    status = getattr(e, "status_code", None)
    return isinstance(status, int) and status in (400, 422, 500)


def _call_object(call: dict[str, str]) -> dict[str, Any]:
    try:
        arguments = json.loads(call["arguments"]) if call["arguments"].strip() else {}
    except ValueError:
        arguments = call["arguments"]
    return {"name": call["name"], "arguments": arguments}
