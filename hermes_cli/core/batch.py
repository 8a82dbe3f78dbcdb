"""`hermes batch`: many prompts through one loaded model, results as JSONL, resumable.

- The model loads once. Prompts sharing a system prompt share their KV prefix: each line
  evaluates only its own tokens (the engine's prefix reuse does this on its own).
- Every result is appended as one line with a single write and flushed to disk before
  the next prompt starts; a run killed at any moment (even SIGKILL) loses at most the
  line in flight. On the next run the output is repaired (a torn last line is cut off),
  ids already there are skipped, and the run ends with one record per input id.
- A malformed input line becomes an `error` record naming its line number; the others
  go on; the exit status says whether any line failed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hermes_cli.engine.model import Engine
from hermes_cli.engine.params import SamplingParams
from hermes_cli.errors import HermesError, UsageError
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.messages import ROLES, Message

if TYPE_CHECKING:
    from hermes_cli.modes.json_mode import JsonMode
    from hermes_cli.modes.tools.loop import ToolOptions

OVERRIDES = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed")


class SomeLinesFailed(HermesError):
    exit_code = 1


@dataclass
class Item:
    """One input line: what to ask, or why it cannot be asked."""

    id: Any
    line: int
    messages: list[Message] = field(default_factory=list)
    system: str | None = None
    schema: dict[str, Any] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _item_from_json(obj: Any, line: int) -> Item:
    if not isinstance(obj, dict):
        return Item(line, line, error="a JSONL line must be an object")
    item = Item(obj.get("id", line), line)
    if isinstance(item.id, (dict, list)):
        return Item(line, line, error="id must be a string or a number")
    if "prompt" in obj:
        if not isinstance(obj["prompt"], str):
            item.error = "prompt must be a string"
            return item
        item.messages = [Message("user", obj["prompt"])]
    elif "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not msgs:
            item.error = "messages must be a non-empty list"
            return item
        for m in msgs:
            if (not isinstance(m, dict) or m.get("role") not in ROLES
                    or not isinstance(m.get("content"), str)):
                item.error = "each message needs a role (system, user, assistant, tool) and text content"
                return item
            if m["role"] == "system" and not item.messages and item.system is None:
                item.system = m["content"]
            else:
                item.messages.append(Message(m["role"], m["content"]))
    else:
        item.error = 'a line needs "prompt" or "messages"'
        return item
    if "system" in obj:
        if not isinstance(obj["system"], str):
            item.error = "system must be a string"
            return item
        item.system = obj["system"]
    if "schema" in obj:
        from hermes_cli.modes.json_mode import check_schema

        try:
            check_schema(obj["schema"], f"line {line} schema")
        except UsageError as e:
            item.error = str(e)
            return item
        item.schema = obj["schema"]
    for key in OVERRIDES:
        if key in obj:
            value = obj[key]
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                item.error = f"{key} must be a number"
                return item
            item.overrides[key] = value
    return item


def read_items(source: TextIO, *, jsonl: bool | None = None) -> list[Item]:
    """Parse the whole input up front (duplicate ids are an error before any work).

    Args:
        jsonl: None guesses from the first non-empty line (`{` means JSONL).
    """
    items: list[Item] = []
    for number, raw in enumerate(source, 1):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        if jsonl is None:
            jsonl = text.lstrip().startswith("{")
        if not jsonl:
            items.append(Item(number, number, messages=[Message("user", text)]))
            continue
        try:
            obj = json.loads(text)
        except ValueError as e:
            items.append(Item(number, number, error=f"line {number} is not valid JSON: {e}"))
            continue
        items.append(_item_from_json(obj, number))
    seen: dict[Any, int] = {}
    for item in items:
        key = json.dumps(item.id)
        if key in seen:
            raise UsageError(f"duplicate id {item.id!r} on lines {seen[key]} and {item.line}")
        seen[key] = item.line
    return items


def repair_and_read_done(path: Path) -> set[str]:
    """Ids already in the output (as JSON text), after cutting off a torn last line."""
    done: set[str] = set()
    try:
        fh = path.open("r+b")
    except FileNotFoundError:
        return done
    with fh:
        data = fh.read()
        end = data.rfind(b"\n") + 1
        if end != len(data):  # a line cut short by a kill: drop it, it will be redone
            fh.truncate(end)
        for raw in data[:end].splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and "id" in record:
                done.add(json.dumps(record["id"]))
    return done


class ResultWriter:
    """Appends one record per call, whole, flushed and synced before returning."""

    def __init__(self, path: Path | None, stream: TextIO | None = None) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None
        self._stream = stream

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        if self._fd is not None:
            data = line.encode("utf-8")
            written = os.write(self._fd, data)
            if written != len(data):  # a full disk: never leave half a record
                raise OSError(28, "short write (disk full?)")
            os.fsync(self._fd)
        else:
            assert self._stream is not None
            self._stream.write(line)
            self._stream.flush()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


@dataclass
class BatchOptions:
    system: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    json_mode: JsonMode | None = None  # for every line
    tools: ToolOptions | None = None  # needs yes=True: a batch cannot ask
    parallel: int = 1  # prompts decoded together (continuous batching)


@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    tokens: int = 0
    seconds: float = 0.0
    failed_lines: list[int] = field(default_factory=list)

    def line(self) -> str:
        where = f" (lines {', '.join(map(str, self.failed_lines[:10]))}" + (
            "…)" if len(self.failed_lines) > 10 else ")") if self.failed_lines else ""
        return (f"done {self.done}, failed {self.failed}{where}, skipped {self.skipped} "
                f"(already in the output), {self.tokens} tokens, {self.seconds:.1f} s")


def run_batch(engine: Engine, items: list[Item], writer: ResultWriter, done: set[str],
              opts: BatchOptions, *, progress: Callable[[int, int, int], None] | None = None) -> Summary:
    """Answer every item not in `done`, writing one record each as it completes."""
    chat = ChatML(engine)
    summary = Summary()
    todo = [it for it in items if json.dumps(it.id) not in done]
    summary.skipped = len(items) - len(todo)
    started = time.perf_counter()

    def record_done(item: Item, record: dict[str, Any]) -> None:
        writer.write(record)
        if "error" in record:
            summary.failed += 1
            summary.failed_lines.append(item.line)
        else:
            summary.done += 1
            summary.tokens += record["completion_tokens"]
        summary.seconds = time.perf_counter() - started
        if progress:
            progress(summary.done + summary.failed, len(todo), summary.tokens)

    if opts.parallel > 1:
        _run_parallel(engine, chat, todo, opts, record_done)
        return summary
    for index, item in enumerate(todo):
        record_done(item, _answer(engine, chat, item, opts, index))
    return summary


def _item_params(item: Item, opts: BatchOptions, index: int) -> SamplingParams:
    params = opts.params
    if params.seed is not None and "seed" not in item.overrides:
        params = dataclasses.replace(params, seed=params.seed + index)
    if item.overrides:
        params = dataclasses.replace(params, **item.overrides)
    return params


def _record(item: Item, results: list[Any], output: Any, seconds: float) -> dict[str, Any]:
    last = results[-1]
    completion = sum(r.completion_tokens for r in results)
    return {
        "id": item.id, "output": output, "finish_reason": last.finish_reason,
        "prompt_tokens": last.prompt_tokens, "prompt_evaluated": sum(r.prompt_evaluated for r in results),
        "completion_tokens": completion, "seconds": round(seconds, 4),
        "tokens_per_second": round(completion / seconds, 2) if seconds > 0 else 0.0,
    }


def _run_parallel(engine: Engine, chat: ChatML, todo: list[Item], opts: BatchOptions,
                  record_done: Callable[[Item, dict[str, Any]], None]) -> None:
    """Text prompts through `ParallelDecoder`; records are written as prompts finish."""
    from hermes_cli.engine.parallel import ParallelDecoder, ParallelJob
    from hermes_cli.engine.params import common_prefix_length

    if opts.json_mode is not None or opts.tools is not None or any(it.schema for it in todo):
        raise UsageError("--parallel works with plain text answers; drop --json/--schema/--tools "
                         "or use --parallel 1")
    jobs: list[tuple[Item, ParallelJob]] = []
    for index, item in enumerate(todo):
        if item.error is not None:
            record_done(item, {"id": item.id, "line": item.line, "error": item.error})
            continue
        system = item.system if item.system is not None else opts.system
        messages = ([Message("system", system)] if system else []) + item.messages
        jobs.append((item, ParallelJob(item, chat.render(messages), _item_params(item, opts, index))))
    if not jobs:
        return
    prefix = jobs[0][1].prompt
    for _, job in jobs[1:]:  # the longest prefix every prompt shares (the system prompt)
        prefix = prefix[:common_prefix_length(prefix, job.prompt)]
    prefix = prefix[: min(len(j.prompt) for _, j in jobs) - 1]
    budget = ParallelDecoder.slot_room(engine.n_ctx, len(prefix), opts.parallel)
    ok = []
    for item, job in jobs:
        if len(job.prompt) - len(prefix) + 1 > budget:
            record_done(item, {"id": item.id, "line": item.line, "error":
                               f"the prompt is {len(job.prompt)} tokens; with --parallel "
                               f"{opts.parallel} each prompt has {budget + len(prefix)} of the "
                               f"{engine.n_ctx}-token context (raise --ctx or lower --parallel)"})
        else:
            ok.append(job)
    decoder = ParallelDecoder(engine, opts.parallel)
    try:
        for item, result in decoder.run(ok, prefix):
            record_done(item, _record(item, [result], result.text, result.prompt_seconds
                                      + result.generation_seconds))
    finally:
        decoder.close()


def _answer(engine: Engine, chat: ChatML, item: Item, opts: BatchOptions, index: int) -> dict[str, Any]:
    from hermes_cli.errors import ContextOverflowError, OutputContractError

    if item.error is not None:
        return {"id": item.id, "line": item.line, "error": item.error}
    params = _item_params(item, opts, index)
    system = item.system if item.system is not None else opts.system
    started = time.perf_counter()
    try:
        if item.schema is not None or opts.json_mode is not None:
            from hermes_cli.modes import json_mode as jsonmode

            mode = jsonmode.JsonMode(item.schema, f"line {item.line}") if item.schema is not None \
                else opts.json_mode
            assert mode is not None
            messages = [Message("system", mode.system_prompt(system))] + item.messages
            answer = jsonmode.answer(engine, chat, messages, mode, params)
            results, output = answer.results, answer.value
        elif opts.tools is not None:
            from hermes_cli.modes.tools.loop import run_tool_loop
            from hermes_cli.modes.tools.protocol import system_prompt

            messages = [Message("system", system_prompt(list(opts.tools.tools.values()), system))]
            loop = run_tool_loop(engine, chat, messages + item.messages, opts.tools.tools, params,
                                 tool_choice=opts.tools.choice, max_rounds=opts.tools.max_rounds,
                                 timeout=opts.tools.timeout, approve=lambda _call: True)
            results, output = loop.results, loop.text
        else:
            messages = ([Message("system", system)] if system else []) + item.messages
            results = [engine.generate(chat.render(messages), params).consume()]
            output = results[-1].text
    except (ContextOverflowError, OutputContractError, UsageError) as e:
        return {"id": item.id, "line": item.line, "error": str(e)}
    return _record(item, results, output, time.perf_counter() - started)
