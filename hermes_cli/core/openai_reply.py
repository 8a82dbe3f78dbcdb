"""A reply written as OpenAI's chat completion: streamed chunks or one object, for `hermes
serve`; and a batch record as a line of an OpenAI Batch output file, for `hermes batch
--format openai`.

The same events a terminal shows (modes/events.py) become the wire's fields: text and
JSON text as `content`, a reasoning model's thinking as `reasoning_content`, the calls a
tools reply hands back as `tool_calls` (finish_reason "tool_calls"), an answer cut by
`max_tokens` or the context as "length". Calls go out once the reply is done and they
validated, never a call that was then asked for again; a JSON answer whose schema the
grammar cannot hold whole is held until it validated, for the same reason.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from hermes_cli.modes.events import Event, Final, JsonDelta, Reply, TextDelta, ThinkingDelta


@dataclass
class Completion:
    """One request's answer being written: its id, and what has been said so far."""

    model: str
    stream_json: bool = True  # JSON text may stream (the grammar holds the whole schema)
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)

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
        calls = _calls(reply)
        if calls:
            delta["tool_calls"] = [dict(c, index=i) for i, c in enumerate(calls)]
        return delta, _finish(reply, halted, bool(calls)), usage(reply)

    def whole(self, final: Final, *, halted: bool) -> dict[str, Any]:
        """The non-streamed answer: one chat.completion object."""
        _delta, finish, used = self.ending(final, halted=halted)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) or None}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        calls = _calls(final.reply)
        if calls:
            message["tool_calls"] = calls
        elif message["content"] is None:
            message["content"] = ""
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": used}


def _calls(reply: Reply) -> list[dict[str, Any]]:
    """The calls the reply hands to the client (tools here are schemas only: never run)."""
    return [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
            for c in reply.pending]


def _finish(reply: Reply, halted: bool, calls: bool) -> str:
    if calls:
        return "tool_calls"
    if not halted and reply.last.finish_reason in ("length", "context"):
        return "length"
    return "stop"


def usage(reply: Reply) -> dict[str, Any]:
    """Every generation the reply took counts (a JSON retry, the answer after a call)."""
    prompt = sum(r.prompt_tokens for r in reply.results)
    completion = reply.completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": sum(r.prompt_reused for r in reply.results)}}
