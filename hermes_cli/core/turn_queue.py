"""Turns from many callers on one loaded model: what `hermes serve` answers requests with.

A worker thread owns the engine. Callers submit a reply logic (modes/: text, JSON or
tools, exactly as `ask`, `chat` and `batch` build it) with a function that receives its
events; the worker drives every logic as core/reply.py does for one, but their
generations share the engine's slots (engine/parallel.py: continuous batching, each
slot with its own sampler and grammar, a finished slot refilled at once). Between turns a
slot keeps what its sequence holds, and the next prompt goes to the free slot that
shares its longest prefix (a chat's next turn, a system prompt every client sends): the
prompt cache of a server. (In a unified KV cache a prefix another slot holds is copied
too; `hermes serve` gives each slot its own cells, engine/model.py.)

The number of turns admitted is bounded (slots + a waiting line): past it `submit`
raises QueueFull, which a server answers with 429. A cancelled turn (its client went
away) leaves its slot at the next token. `close` admits nothing more, lets the turns
already admitted finish, and stops the worker.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union

from hermes_cli.core.reply import TextEvents, advance
from hermes_cli.engine.model import Engine
from hermes_cli.engine.parallel import Hooks, ParallelDecoder, ParallelJob
from hermes_cli.engine.params import GenerationResult
from hermes_cli.errors import ContextOverflowError, HermesError
from hermes_cli.modes.events import Event, Final, Logic, Request
from hermes_cli.prompt.template import PromptFormat

Emit = Callable[[Union[Event, BaseException]], None]


class QueueFull(Exception):
    """No room for another turn (every slot busy and the waiting line full), or closing."""


@dataclass(eq=False)
class QueuedTurn:
    """One caller's turn, as the queue holds it. Unlike a Turn (core/turn.py), which its
    reader pulls events from, many of these interleave on the engine's slots, so their
    events are pushed: `emit` gets them on the worker thread, then `Final` or the error
    that ended it; nothing after that. The reply logics and their stop rules are the same."""

    logic: Logic
    emit: Emit
    cancelled: bool = False
    halted: bool = False  # stopped on purpose (a stop string): its reply is kept
    thinking: bool | None = None  # the request's enable_thinking (prompt/template.py's `thinking`)
    done: bool = False
    events: TextEvents | None = field(default=None, repr=False)


class TurnQueue:
    def __init__(self, engine: Engine, template: PromptFormat, *, parallel: int, waiting: int) -> None:
        self.engine, self.template = engine, template
        self.parallel, self.waiting = parallel, waiting
        self._decoder = ParallelDecoder(engine, parallel, prefix=False)  # no shared-prefix sequence
        self._lock = threading.Condition()
        self._new: deque[QueuedTurn] = deque()  # admitted, logic not started
        self._requests: deque[tuple[QueuedTurn, Request]] = deque()  # worker thread only
        self._running: set[QueuedTurn] = set()  # a job in a slot (worker thread only)
        self._admitted = 0
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="hermes-slots", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> int:
        """Turns admitted and not finished."""
        return self._admitted

    def submit(self, turn: QueuedTurn) -> QueuedTurn:
        """Admit `turn` (QueueFull when there is no room); its events go to `turn.emit`.
        The caller makes the QueuedTurn, so its `emit` may refer to it (to halt it)."""
        with self._lock:
            if self._closing:
                raise QueueFull("the server is shutting down")
            if self._admitted >= self.parallel + self.waiting:
                raise QueueFull(f"all {self.parallel} slots are busy and {self.waiting} requests are waiting")
            self._new.append(turn)
            self._admitted += 1
            self._lock.notify()
        return turn

    def cancel(self, turn: QueuedTurn) -> None:
        """Nobody wants this turn any more: it leaves its slot at the next token."""
        turn.cancelled = True
        with self._lock:
            self._lock.notify()

    def halt(self, turn: QueuedTurn) -> None:
        """End the turn's generation now and keep what it wrote (a stop string)."""
        turn.halted = True

    def close(self) -> None:
        """Admit nothing more; finish the turns admitted; stop the worker."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join()
        self._decoder.close()

    # -- the worker thread ---------------------------------------------------------------

    def _work(self) -> None:
        hooks = Hooks(on_text=self._on_text, stop=lambda turn: turn.cancelled or turn.halted,
                      wait=self._wait, reuse=True)
        while True:
            try:
                for turn, result in self._decoder.run(self._next_job, (), hooks):
                    self._running.discard(turn)
                    self._finished(turn, result)
                return
            except Exception as e:  # noqa: BLE001 - a failed decode ends the turns it held, not the server
                for turn in list(self._running):
                    self._fail(turn, e)
                self._running.clear()
                with self._lock:
                    if self._closing and not self._new:
                        return

    def _wait(self) -> bool:
        """Idle: wait for a turn; False once closing with nothing left."""
        with self._lock:
            while not self._new and not self._closing:
                self._lock.wait()
            return bool(self._new)

    def _next_job(self) -> ParallelJob | None:
        while True:
            turn: QueuedTurn
            request: Request | None
            if self._requests:
                turn, request = self._requests.popleft()
            else:
                with self._lock:
                    if not self._new:
                        return None
                    turn, request = self._new.popleft(), None
            if turn.cancelled:
                self._end(turn)
            elif request is None:
                self._advance(turn, None)  # queues its first request
            else:
                try:
                    self.template.thinking = turn.thinking  # this thread alone renders
                    prompt = self.template.render(request.messages)
                except HermesError as e:
                    self._fail(turn, e)
                    continue
                turn.events, turn.halted = TextEvents(request.show), False
                self._running.add(turn)
                return ParallelJob(turn, prompt, request.params, request.grammar)

    def _on_text(self, turn: QueuedTurn, text: str) -> None:
        if not turn.cancelled and turn.events is not None:
            for event in turn.events.feed(text):
                turn.emit(event)

    def _finished(self, turn: QueuedTurn, result: GenerationResult | ContextOverflowError) -> None:
        if isinstance(result, ContextOverflowError):
            self._fail(turn, result)
        elif turn.cancelled:
            self._end(turn)
        else:
            assert turn.events is not None
            for event in turn.events.finish(result):
                turn.emit(event)
            self._advance(turn, result)

    def _advance(self, turn: QueuedTurn, result: GenerationResult | None) -> None:
        """Give the turn's logic its result; queue its next request, or end the turn."""
        try:
            step = advance(turn.logic, result, turn.emit)
        except Exception as e:  # noqa: BLE001 - the logic's error is this turn's answer
            self._fail(turn, e)
            return
        if isinstance(step, Request):
            self._requests.append((turn, step))
        else:
            turn.emit(Final(step))
            self._end(turn)

    def _fail(self, turn: QueuedTurn, error: BaseException) -> None:
        if not turn.done:
            turn.emit(error)
        self._end(turn)

    def _end(self, turn: QueuedTurn) -> None:
        with self._lock:
            if not turn.done:
                turn.done = True
                self._admitted -= 1
