"""Driving a reply logic (modes/events.py) to the end, one event at a time.

`stream(backend, logic)` is what `ask`, `chat` and batch lines consume: it turns each
`Request` into a generation on the backend, streams its text as events (plain text, JSON
text, or text with tool calls shown as calls), hands the result back to the logic, and
ends with `Final(reply)`. Ctrl-C (a KeyboardInterrupt while streaming, or thrown into
this generator by the front end) stops the generation; the logic then finishes with the
partial reply, so it is kept in every mode.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from typing import Any, Protocol

from hermes_cli.engine.params import GenerationResult, SamplingParams
from hermes_cli.modes.events import Event, Final, JsonDelta, Logic, Request, TextDelta, ThinkingDelta
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


def _generate(backend: ReplySource, request: Request) -> Generator[Event, None, GenerationResult]:
    """One generation's text as events; returns its result (interrupted on Ctrl-C). A
    leading `<think>` section streams as ThinkingDelta and comes back as the result's
    `reasoning`, apart from its `text` (prompt/reasoning.py)."""
    gen = backend.start(request.messages, request.params, request.grammar)
    splitter = ToolTextSplitter() if request.show == "tools" else None
    thinker = ThinkSplitter()
    try:
        for text in gen:
            for kind, piece in thinker.feed(text):
                yield from ((ThinkingDelta(piece),) if kind == "thinking" else _events(piece, request.show, splitter))
        for kind, piece in thinker.finish():
            yield from ((ThinkingDelta(piece),) if kind == "thinking" else _events(piece, request.show, splitter))
        if splitter is not None:
            cut = gen.result is not None and gen.result.finish_reason in ("length", "context")
            yield from splitter.finish(cut=cut)
    except KeyboardInterrupt:
        gen.close()
    except GeneratorExit:
        gen.close()
        raise
    assert gen.result is not None
    return with_reasoning(gen.result)


def _events(text: str, show: str, splitter: ToolTextSplitter | None) -> Iterable[Event]:
    if splitter is not None:
        return splitter.feed(text)
    return (JsonDelta(text),) if show == "json" else (TextDelta(text),)


def run(backend: ReplySource, logic: Logic) -> Any:
    """Drive a logic without showing anything; return its Reply. Ctrl-C propagates
    (KeyboardInterrupt): nobody watches this reply, so a partial one is not an answer
    (a batch must not record a cut line as done, or a resume would never answer it)."""
    for event in stream(backend, logic):
        if isinstance(event, Final):
            if event.reply.stopped == "interrupted":
                raise KeyboardInterrupt
            return event.reply
    raise AssertionError("a reply logic ended without a reply")
