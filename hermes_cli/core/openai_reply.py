"""A reply written as OpenAI's chat completion: streamed chunks or one object, for `hermes
serve`; and a batch record as a line of an OpenAI Batch output file, for `hermes batch
--format openai`.

The same events a terminal shows (modes/events.py) become the wire's fields: text and
JSON text as `content`, a reasoning model's thinking as `reasoning_content`, the calls a
tools reply hands back as `tool_calls` (finish_reason "tool_calls"), an answer cut by
`max_tokens` or the context as "length". Calls go out once the reply is done and they
validated, never a call that was then asked for again; a JSON answer whose schema the
grammar cannot hold whole is held until it validated, for the same reason.

`stop` sequences end a text reply where one first appears (not a JSON or tools reply:
the grammar decides where those end); the text after it is never sent (streamed: StopText;
a batch record: `first_stop`).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from hermes_cli.modes.events import Event, Final, JsonDelta, Reply, TextDelta, ThinkingDelta
from hermes_cli.prompt.tool_calls import partial_length


def first_stop(text: str, stops: list[str]) -> int | None:
    """Where the first of `stops` begins in `text`, or None."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


class StopText:
    """Finds the first stop sequence in streamed text; holds back a tail that could begin one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self._held = ""
        self.hit = False

    def feed(self, text: str) -> str:
        """The text that can be sent now (after a hit: only what came before the stop)."""
        if self.hit:
            return ""
        text = self._held + text
        at = first_stop(text, self.stops)
        if at is not None:
            self.hit, self._held = True, ""
            return text[:at]
        hold = max(partial_length(text, s) for s in self.stops)
        self._held = text[len(text) - hold:] if hold else ""
        return text[:len(text) - hold]

    def finish(self) -> str:
        held, self._held = self._held, ""
        return "" if self.hit else held


@dataclass
class Completion:
    """One request's answer being written: its id, and what has been said so far."""

    model: str
    stream_json: bool = True  # JSON text may stream (the grammar holds the whole schema)
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)  # set by `ending`

    def chunk(self, delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None,
              *, choices: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                               "model": self.model,
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
        if usage is not None:
            out["usage"] = usage
        return out

    def delta(self, event: Event) -> dict[str, Any] | None:
        """What `event` adds to the message, as a stream delta (None: nothing to send yet)."""
        if isinstance(event, ThinkingDelta):
            self.reasoning.append(event.text)
            return {"reasoning_content": event.text}
        if isinstance(event, TextDelta) or (isinstance(event, JsonDelta) and self.stream_json):
            self.content.append(event.text)
            return {"content": event.text} if event.text else None
        return None  # held JSON, tool calls (sent with the end), tool results, notices

    def ending(self, final: Final, *, halted: bool) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """(the last delta, the finish reason, usage) once the reply is done."""
        reply = final.reply
        delta: dict[str, Any] = {}
        if not self.stream_json and reply.value is not None:  # held JSON: whole and valid
            self.content = [reply.text]
            delta["content"] = reply.text
        self.calls = [tool_call(c.name, c.arguments) for c in reply.pending]
        if self.calls:
            delta["tool_calls"] = [dict(c, index=i) for i, c in enumerate(self.calls)]
        cut = not halted and reply.last.finish_reason in ("length", "context")
        return delta, finish_reason(calls=bool(self.calls), cut=cut), usage(reply)

    def whole(self, final: Final, *, halted: bool) -> dict[str, Any]:
        """The non-streamed answer: one chat.completion object."""
        _delta, finish, used = self.ending(final, halted=halted)
        message = assistant_message("".join(self.content) or None, "".join(self.reasoning) or None, self.calls)
        return completion_object(self.id, self.created, self.model, message, finish, used)


def tool_call(name: str, arguments: Any) -> dict[str, Any]:
    """A call as the API hands it back (tools here are schemas only: never run)."""
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}


def finish_reason(*, calls: bool, cut: bool) -> str:
    return "tool_calls" if calls else "length" if cut else "stop"


def assistant_message(content: str | None, reasoning: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer's message: content ("" rather than null without calls), the thinking
    apart, the calls."""
    message: dict[str, Any] = {"role": "assistant", "content": content if content or calls else ""}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = calls
    return message


def completion_object(id_: str, created: int, model: str, message: dict[str, Any], finish: str,
                      used: dict[str, Any] | None) -> dict[str, Any]:
    """One `chat.completion` (usage left out when it is not known)."""
    body: dict[str, Any] = {"id": id_, "object": "chat.completion", "created": created, "model": model,
                            "choices": [{"index": 0, "message": message, "finish_reason": finish,
                                         "logprobs": None}]}
    if used is not None:
        body["usage"] = used
    return body


def usage(reply: Reply) -> dict[str, Any]:
    """Every generation the reply took counts (a JSON retry, the answer after a call)."""
    return usage_of(sum(r.prompt_tokens for r in reply.results), reply.completion_tokens,
                    sum(r.prompt_reused for r in reply.results))


def usage_of(prompt: int, completion: int, cached: int | None = None) -> dict[str, Any]:
    used: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                            "total_tokens": prompt + completion}
    if cached is not None:
        used["prompt_tokens_details"] = {"cached_tokens": cached}
    return used
