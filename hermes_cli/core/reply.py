"""Driving a reply logic (modes/events.py) to the end, one event at a time.

`stream(backend, logic)` is what `ask`, `chat` and batch lines consume: it turns each
`Request` into a generation on the backend, streams its text as events (plain text, JSON
text, or text with tool calls shown as calls), hands the result back to the logic, and
ends with `Final(reply)`. Ctrl-C (a KeyboardInterrupt while streaming, or thrown into
this generator by the front end) stops the generation; the logic then finishes with the
partial reply, so it is kept in every mode.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, Protocol

from hermes_cli.engine.params import GenerationResult, SamplingParams
from hermes_cli.modes.events import Event, Final, JsonDelta, Logic, Reply, Request, TextDelta, ThinkingDelta
from hermes_cli.modes.tools.stream import ToolTextSplitter
from hermes_cli.prompt.messages import Message
from hermes_cli.prompt.reasoning import ThinkSplitter, with_reasoning
from hermes_cli.prompt.reply_grammar import ReplyGrammar


class Stream(Protocol):
    """A generation in progress: iterate for text; `result` once it ends or is closed."""

    result: GenerationResult | None

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class ReplySource(Protocol):
    """What a reply needs of its backend (core/backends.py): a generation per request."""

    def start(self, messages: list[Message], params: SamplingParams,
              grammar: ReplyGrammar | None) -> Stream: ...


def stream(backend: ReplySource, logic: Logic) -> Generator[Event, None, None]:
    """Every event of one reply, ending with `Final`."""
    item: Any = next(logic)
    while True:
        try:
            if isinstance(item, Request):
                result = yield from _generate(backend, item)
                item = logic.send(result)
            else:
                yield item
                item = next(logic)
        except StopIteration as done:
            yield Final(done.value)
            return


class TextEvents:
    """One generation's text as the events a front end shows: a leading `<think>` section
    as ThinkingDelta (prompt/reasoning.py), then plain text, JSON text, or text with its
    tool calls split out as calls, by the request's `show`. Used wherever text streams
    (this module's `stream`, and the slots of `hermes serve`, core/turn_queue.py)."""

    def __init__(self, show: str) -> None:
        self.show = show
        self.splitter = ToolTextSplitter() if show == "tools" else None
        self.thinker = ThinkSplitter()

    def feed(self, text: str) -> list[Event]:
        return self._events(self.thinker.feed(text))

    def finish(self, result: GenerationResult | None) -> list[Event]:
        """What was held back, once the generation ended with `result`."""
        events = self._events(self.thinker.finish())
        if self.splitter is not None:
            cut = result is not None and result.finish_reason in ("length", "context")
            events += self.splitter.finish(cut=cut)
        return events

    def _events(self, pieces: Iterable[tuple[str, str]]) -> list[Event]:
        events: list[Event] = []
        for kind, piece in pieces:
            if kind == "thinking":
                events.append(ThinkingDelta(piece))
            elif self.splitter is not None:
                events += self.splitter.feed(piece)
            else:
                events.append(JsonDelta(piece) if self.show == "json" else TextDelta(piece))
        return events


def _generate(backend: ReplySource, request: Request) -> Generator[Event, None, GenerationResult]:
    """One generation's text as events; returns its result (interrupted on Ctrl-C). A
    leading `<think>` section streams as ThinkingDelta and comes back as the result's
    `reasoning`, apart from its `text` (prompt/reasoning.py)."""
    gen = backend.start(request.messages, request.params, request.grammar)
    events = TextEvents(request.show)
    try:
        for text in gen:
            yield from events.feed(text)
        yield from events.finish(gen.result)
    except KeyboardInterrupt:
        gen.close()
    except GeneratorExit:
        gen.close()
        raise
    assert gen.result is not None
    return with_reasoning(gen.result)


def advance(logic: Logic, result: GenerationResult | None, show: Callable[[Event], None] | None = None
            ) -> Request | Reply:
    """Give `logic` the result of its last request (None: start it), its events to `show`;
    return its next Request, or its Reply once it is done. For drivers that interleave many
    logics on the engine's slots (batch --parallel, the turn queue of hermes serve); the
    logic's own errors propagate."""
    try:
        step: Any = next(logic) if result is None else logic.send(with_reasoning(result))
        while not isinstance(step, Request):
            if show is not None:
                show(step)
            step = next(logic)
    except StopIteration as done:
        reply: Reply = done.value
        return reply
    return step
