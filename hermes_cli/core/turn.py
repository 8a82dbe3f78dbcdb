"""One reply in progress: the one object `ask`, a chat turn and a batch line are driven by.

A `Turn` is a stream of a reply's events (a reply logic on a backend, core/reply.py;
or a chat turn's own: notes, then that stream), ending with `Final`. Iterate it to show
the events; `cancel()` stops it (Ctrl-C, SIGTERM): the generation stops at once, the
logic finishes with what was written, and `Final` still comes, so the partial reply is
kept. `reply` is set once it has ended; `result()` drives it to the end unseen.

Whoever started the turn says what ending it means: `done(reply)` runs before `Final`
is handed on (a chat records the reply and saves it, so a reader of `Final` sees the
chat as it now is); `failed(error)` runs when the turn raises instead (a chat takes back
the user's message that got no reply, or puts back the reply it was continuing).

Why one object: Ctrl-C used to be thrown through three generators (the chat's view,
the session, the reply driver), and a failed generation left the user's message saved
without a reply. Now a front end only calls `cancel()`; the one place that turns it into
the stop of the generation is here (thrown into the stream, where core/reply.py closes
the generation).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from hermes_cli.core.reply import ReplySource, stream
from hermes_cli.modes.events import Final, Logic, Reply


@dataclass(frozen=True)
class TurnNote:
    """Something a turn tells the user besides the reply (files attached, turns left out
    of the window); `warning` when it is a problem."""

    text: str
    warning: bool = False


class Turn:
    def __init__(self, source: Generator[Any, None, None], *, done: Callable[[Reply], None] | None = None,
                 failed: Callable[[BaseException], None] | None = None) -> None:
        self._source = source
        self._done = done
        self._failed = failed
        self._cancel = False
        self._started = False
        self.ended = False  # its events are over: Final was handed on, or it raised
        self.reply: Reply | None = None

    @classmethod
    def of(cls, backend: ReplySource, logic: Logic) -> Turn:
        """A reply logic on a backend, nothing more (ask, a batch line)."""
        return cls(stream(backend, logic))

    def cancel(self) -> None:
        """Stop the reply where it is: the next event pulled is the reply's end."""
        self._cancel = True

    def __iter__(self) -> Iterator[Any]:
        if self._started:
            raise RuntimeError("a turn is shown once")
        self._started = True
        return self._events()

    def _events(self) -> Generator[Any, None, None]:
        source, thrown = self._source, False
        try:
            while True:
                if self._cancel and not thrown:
                    thrown = True  # once: the logic then finishes with what was written
                    event = source.throw(KeyboardInterrupt())
                else:
                    event = next(source)
                if isinstance(event, Final):
                    self.reply = event.reply
                    if self._done is not None:
                        self._done(event.reply)
                    self.ended = True
                    yield event
                    return
                try:
                    yield event
                except KeyboardInterrupt:  # a reader's Ctrl-C, thrown in: the same as cancel()
                    self._cancel = True
        except StopIteration:
            raise AssertionError("a reply ended without a Final event") from None
        except GeneratorExit:
            source.close()
            raise
        except BaseException as e:
            if self._failed is not None:
                self._failed(e)
            raise
        finally:
            self.ended = True

    def result(self) -> Reply:
        """Drive the turn to its end without showing it; its Reply. A reply cut by
        Ctrl-C raises KeyboardInterrupt: nobody watched it, so a partial one is not an
        answer (a batch must not record a cut line as done, or a resume would skip it)."""
        for _event in self:
            pass
        assert self.reply is not None
        if self.reply.stopped == "interrupted":
            raise KeyboardInterrupt
        return self.reply


def run(backend: ReplySource, logic: Logic) -> Reply:
    """A reply logic driven to its end on `backend`, unseen (a batch line, a compaction
    note, a proposed command): `Turn.of(backend, logic).result()`."""
    return Turn.of(backend, logic).result()
