"""The one reply interface: what a mode asks of a model, and what a front end sees.

A mode's reply logic is a generator (`Logic`). It yields a `Request` whenever it needs
the model to write (a first answer, a JSON retry, the answer after tool results) and is
sent back the `GenerationResult`; it yields events the user should see (a tool result, a
retry notice); it returns the `Reply`. The logic never touches the model or the terminal,
so one logic serves `ask`, `chat` and `batch`, a local engine or a served one, one line
at a time or many in parallel (core/reply.py drives it).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Union

from hermes_cli.engine.params import GenerationResult, SamplingParams
from hermes_cli.prompt.messages import Message
from hermes_cli.prompt.reply_grammar import ReplyGrammar


@dataclass(frozen=True)
class Request:
    """Write one assistant reply after `messages` (the system prompt first).

    `show` says how its text streams to the user: "text", "json" (JSON text being
    written) or "tools" (text, with `<tool_call>` blocks shown as calls).
    """

    messages: list[Message]
    params: SamplingParams
    grammar: ReplyGrammar | None = None
    show: str = "text"


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class JsonDelta:
    text: str


@dataclass(frozen=True)
class ThinkingDelta:
    """A reasoning model's thinking as it streams (prompt/reasoning.py): never the answer."""

    text: str


@dataclass(frozen=True)
class ToolCallEvent:
    """The model called a tool (shown as soon as its `</tool_call>` is written)."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolResultEvent:
    """What a call gave back: `status` is "ok", "error" or "declined"."""

    name: str
    status: str
    content: Any


@dataclass(frozen=True)
class Notice:
    """Something the user should know mid-reply (a JSON retry and why)."""

    text: str


@dataclass
class Reply:
    """A finished reply.

    Attributes:
        text: the final answer (JSON text in JSON mode; the last reply if stopped early).
        value: the parsed JSON in JSON mode, else None.
        messages: every message the reply adds to the conversation, in order (assistant
            turns and tool turns; the partial reply too when interrupted).
        results: one GenerationResult per model call (attempts, rounds).
        stopped: "answer", "interrupted", "round_limit" or "schema_only" (calls for the
            caller to run: `pending`). Whether the last reply was cut by the length limit
            or the context is `last.finish_reason`.
    """

    text: str
    messages: list[Message]
    results: list[GenerationResult]
    stopped: str = "answer"
    value: Any = None
    rounds: int = 0
    pending: list[Any] = field(default_factory=list)

    @property
    def last(self) -> GenerationResult:
        return self.results[-1]

    @property
    def completion_tokens(self) -> int:
        return sum(r.completion_tokens for r in self.results)

    @property
    def reasoning(self) -> str | None:
        """What the model thought before its answers (every generation's, in order)."""
        parts = [r.reasoning for r in self.results if r.reasoning]
        return "\n\n".join(parts) if parts else None


@dataclass(frozen=True)
class Final:
    """The last event of every reply."""

    reply: Reply


Event = Union[TextDelta, JsonDelta, ThinkingDelta, ToolCallEvent, ToolResultEvent, Notice, Final]
Logic = Generator[Union[Request, Event], GenerationResult, Reply]


def text_reply(messages: list[Message], params: SamplingParams) -> Logic:
    """Plain text: one request, the answer as written."""
    result = yield Request(messages, params)
    stopped = "interrupted" if result.finish_reason == "interrupted" else "answer"
    return Reply(result.text, [answer_message(result)], [result], stopped=stopped)


def continue_reply(messages: list[Message], params: SamplingParams) -> Logic:
    """The model goes on writing the last reply (`messages` ends with it, left open): one
    request, and the reply becomes what was there plus what follows, one assistant turn
    (its ids too, when both parts have them, so the KV cache stays the prompt's prefix)."""
    before = messages[-1]
    result = yield Request(messages, params)
    stopped = "interrupted" if result.finish_reason == "interrupted" else "answer"
    ids = (before.token_ids + result.token_ids) if before.token_ids is not None and not result.reasoning else None
    text = before.content + result.text
    return Reply(text, [Message("assistant", text, token_ids=ids)], [result], stopped=stopped)


def answer_message(result: GenerationResult) -> Message:
    """The assistant turn a generation adds: its answer. After thinking, the ids (which
    spell the thinking too) are not kept: the next turn's prompt has the answer only, as
    reasoning models' templates drop earlier thinking."""
    return Message("assistant", result.text, token_ids=None if result.reasoning else result.token_ids)
