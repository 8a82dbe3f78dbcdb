"""Running a batch on one Backend: every line's reply logic (text, JSON or tools,
modes/), each result written as soon as its line is done. How many lines run at once is
what the backend can do, not which kind it is:

- one at a time: each line a Turn (core/turn.py), like an `ask`;
- `--parallel N` (a backend with `parallel_slots`: a model loaded here): the lines'
  logics share the engine's context through engine/parallel.py; whenever a logic needs
  the model (a first answer, a JSON retry, the answer after tool results) its request
  joins the queue, and a free slot takes it, each slot with its own sampler and grammar;
- `--concurrency N` (a `concurrent` backend: a served engine): N lines in flight on
  worker threads (core/batch_threads.py).
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hermes_cli.core.backends import Backend
from hermes_cli.core.batch import BatchOptions, Item, Progress, Recorder, ResultWriter, Summary
from hermes_cli.core.reply import ReplySource, advance
from hermes_cli.core.turn import run
from hermes_cli.engine.model import Engine
from hermes_cli.engine.parallel import ParallelDecoder, ParallelJob
from hermes_cli.engine.params import GenerationResult, SamplingParams, common_prefix_length, sampling_from
from hermes_cli.errors import ContextOverflowError, HermesError, ServerError
from hermes_cli.modes.events import Logic, Reply, Request
from hermes_cli.modes.json_mode import JsonMode
from hermes_cli.modes.reply_mode import ReplyMode
from hermes_cli.prompt.template import PromptFormat


def _approve_all(_call: Any) -> bool:
    return True  # a batch runs tools only with --yes (checked by the command)


def item_mode(item: Item, opts: BatchOptions) -> ReplyMode:
    if item.tool_options is not None:  # an OpenAI Batch line's own tools, in this model's call format
        return ReplyMode(tools=dataclasses.replace(item.tool_options, call_format=opts.call_format))
    if item.schema is not None:
        json_mode: JsonMode | None = JsonMode(item.schema, f"line {item.line}")
    elif item.json:
        json_mode = JsonMode(None, f"line {item.line}")
    else:
        json_mode = opts.json_mode
    tools = opts.tools if json_mode is None and item.tools else None
    return ReplyMode(json=json_mode, tools=tools)


def item_params(item: Item, opts: BatchOptions) -> SamplingParams:
    """The line's sampling: --seed S gives the line at input position i the seed S+i
    (whatever was already done), then the line's own overrides."""
    params = opts.params
    if params.seed is not None and "seed" not in item.overrides:
        params = dataclasses.replace(params, seed=params.seed + item.position)
    if item.overrides:
        typed = sampling_from(item.overrides)  # checked when the line was read
        params = dataclasses.replace(params, **{k: getattr(typed, k) for k in item.overrides})
    return params


def item_logic(item: Item, opts: BatchOptions) -> Logic:
    mode = item_mode(item, opts)
    system = item.system if item.system is not None else opts.system
    return mode.logic(mode.messages(system, item.messages), item_params(item, opts),
                      approve=_approve_all)


def record(item: Item, reply: Reply, seconds: float, mode: str) -> dict[str, Any]:
    last = reply.last
    completion = reply.completion_tokens
    rec: dict[str, Any] = {
        "id": item.id, "output": reply.value if reply.value is not None else reply.text,
        "finish_reason": last.finish_reason, "prompt_tokens": last.prompt_tokens,
        "prompt_evaluated": sum(r.prompt_evaluated for r in reply.results),
        "completion_tokens": completion, "seconds": round(seconds, 4),
        "tokens_per_second": round(completion / seconds, 2) if seconds > 0 else 0.0,
    }
    if item.stop and isinstance(rec["output"], str) and mode == "text":  # an OpenAI Batch line's stop
        from hermes_cli.core.openai_reply import first_stop

        at = first_stop(rec["output"], item.stop)
        if at is not None:
            rec["output"], rec["finish_reason"] = rec["output"][:at], "stop"
    if reply.reasoning:  # a reasoning model's thinking, apart from the output (prompt/reasoning.py)
        rec["reasoning"] = reply.reasoning
    if last.closed:  # the grammar closed the answer to fit the limit (engine/slot.py)
        rec["closed_to_fit"] = last.closed
    if mode == "tools":
        rec.update(rounds=reply.rounds, stopped=reply.stopped)
        if reply.pending:
            rec["calls"] = [{"name": c.name, "arguments": c.arguments} for c in reply.pending]
    elif mode == "json":
        rec["attempts"] = len(reply.results)
    return rec


def error_record(item: Item, error: str) -> dict[str, Any]:
    return {"id": item.id, "line": item.line, "error": error}


def answer_line(backend: ReplySource, item: Item, opts: BatchOptions) -> dict[str, Any]:
    """One line, one at a time, as its record: the answer, or the error its own input
    caused (context overflow, invalid JSON after the retries...). A ServerError is the
    servers' fault, not the line's: it propagates and stops the batch."""
    if item.error is not None:
        return error_record(item, item.error)
    t0 = time.perf_counter()
    labels = _labels(item, opts)
    if labels:
        return _decided(backend, item, opts, labels, t0)
    try:
        reply = run(backend, item_logic(item, opts))
    except ServerError:
        raise
    except HermesError as e:
        return error_record(item, str(e))
    return record(item, reply, time.perf_counter() - t0, item_mode(item, opts).name)


def _labels(item: Item, opts: BatchOptions) -> list[str] | None:
    """A decision line's labels (its own `"choices"`, else `--choices`), or None."""
    return item.choices or opts.choices


def _decided(backend: Any, item: Item, opts: BatchOptions, labels: list[str], t0: float) -> dict[str, Any]:
    """A decision line's record: the label as its output, and every label's probability."""
    from hermes_cli.core.decision import decide, decision_messages

    system = item.system if item.system is not None else opts.system
    text = "\n\n".join(m.content for m in item.messages if m.role == "user")
    try:
        decision = decide(backend, decision_messages(system, text, labels), labels)
    except HermesError as e:
        return error_record(item, str(e))
    return {"id": item.id, "output": decision.label, "probabilities": decision.probabilities,
            "seconds": round(time.perf_counter() - t0, 4)}


def needs_grammars(items: list[Item], done: set[str], opts: BatchOptions) -> bool:
    """Whether a line still to answer is constrained (JSON, a schema, tools): the grammar
    tokenizer is then built while the model loads."""
    return any(item_mode(it, opts).name != "text" for it in items
               if it.error is None and it.key not in done)


def run_batch(backend: Backend, items: list[Item], writer: ResultWriter, done: set[str],
              opts: BatchOptions, *, concurrency: int = 1, progress: Progress | None = None) -> Summary:
    """Answer every item not in `done`, writing one record each as it completes."""
    todo = [it for it in items if it.key not in done]
    finished = Recorder(writer, len(todo), len(items) - len(todo), progress, opts.shape)
    summary = finished.summary
    backend.think(opts.thinking)
    if needs_grammars(todo, set(), opts):
        backend.prepare_grammars()
    if opts.parallel > 1:
        local = backend.parallel_slots(opts.parallel)
        # decision lines are scored, not sampled: one at a time, before the slots start
        decisions = [it for it in todo if it.error is None and _labels(it, opts)]
        for item in decisions:
            finished(item, answer_line(local, item, opts))
        local.engine.forget()
        scored = {id(it) for it in decisions}
        _Parallel(local.engine, local.template, opts, finished).run([it for it in todo if id(it) not in scored])
    elif concurrency > 1 and backend.concurrent:
        from hermes_cli.core.batch_threads import run_threads

        run_threads(backend, todo, lambda item: answer_line(backend, item, opts), finished, concurrency)
    else:
        for item in todo:
            finished(item, answer_line(backend, item, opts))
    return summary


@dataclass
class _Line:
    item: Item
    logic: Logic
    started: float


class _Parallel:
    """Feeds the lines' requests to a ParallelDecoder and their results back."""

    def __init__(self, engine: Engine, template: PromptFormat, opts: BatchOptions,
                 finished: Callable[[Item, dict[str, Any]], None]) -> None:
        self.engine, self.template, self.opts, self.finished = engine, template, opts, finished
        self.queue: deque[tuple[_Line, Request]] = deque()
        self.lines: Iterator[Item] = iter(())

    def run(self, todo: list[Item]) -> None:
        self.lines = iter(todo)
        # The prompts' shared prefix (the system prompt), from the first few lines' requests.
        while len(self.queue) < 2 * self.opts.parallel and self._start_next():
            pass
        prompts = [self.template.render(req.messages) for _line, req in self.queue]
        prefix = prompts[0] if prompts else []
        for p in prompts[1:]:
            prefix = prefix[:common_prefix_length(prefix, p)]
        prefix = prefix[: min((len(p) for p in prompts), default=1) - 1]
        decoder = ParallelDecoder(self.engine, self.opts.parallel)
        try:
            for line, result in decoder.run(self._next_job, prefix):
                if isinstance(result, ContextOverflowError):
                    self.finished(line.item, error_record(line.item, (
                        f"the prompt is {result.prompt_tokens} tokens; with --parallel "
                        f"{self.opts.parallel} each prompt has {result.n_ctx} of the "
                        f"{self.engine.n_ctx}-token context (raise --ctx or lower --parallel)")))
                    continue
                self._advance(line, result)
        finally:
            decoder.close()

    def _next_job(self) -> ParallelJob | None:
        if not self.queue:
            self._start_next()
        if not self.queue:
            return None
        line, req = self.queue.popleft()
        return ParallelJob(line, self.template.render(req.messages), req.params, req.grammar)

    def _start_next(self) -> bool:
        """Start the next line's logic (recording lines that cannot run); False at the end."""
        for item in self.lines:
            if item.error is not None:
                self.finished(item, error_record(item, item.error))
                continue
            line = _Line(item, item_logic(item, self.opts), time.perf_counter())
            self._advance(line, None)
            return True
        return False

    def _advance(self, line: _Line, result: GenerationResult | None) -> None:
        """Give a line its result; queue its next request, or record it when it is done."""
        try:
            step = advance(line.logic, result)  # events: nobody watches a batch line
        except HermesError as e:
            self.finished(line.item, error_record(line.item, str(e)))
            return
        if isinstance(step, Request):
            self.queue.append((line, step))
        else:
            self.finished(line.item, record(line.item, step, time.perf_counter() - line.started,
                                            item_mode(line.item, self.opts).name))
