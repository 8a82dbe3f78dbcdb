"""`hermes batch`'s data: input lines (what to ask, or why a line cannot be asked), the
result writer, and the summary. Running the lines is core/batch_run.py.

- The model loads once. Prompts sharing a system prompt share their KV prefix: each line
  evaluates only its own tokens (the engine's prefix reuse does this on its own).
- Every result is appended as one line with a single write and flushed to disk before
  the next prompt starts; a run killed at any moment (even SIGKILL) loses at most the
  line in flight. On the next run the output is repaired (a torn last line is cut off),
  ids already there are skipped, and the run ends with one record per input id.
- A malformed input line becomes an `error` record naming its line number; the others
  go on; the exit status says whether any line failed. The record carries the line's own
  id when it can be read; otherwise its id is null and its line number is its key, so it
  never takes an id that another line owns (a resume skips it by that line number).
- Input is UTF-8 with or without a byte-order mark, with LF or CRLF endings (as Windows
  editors save it): the mark once hid the first `{`, and every line became a text prompt.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hermes_cli import jsontext
from hermes_cli.engine.params import SAMPLING_LIMITS, SamplingParams, sampling_problem
from hermes_cli.errors import OutputWriteError, SomeLinesFailed, UsageError
from hermes_cli.prompt.messages import ROLES, Message

if TYPE_CHECKING:
    from hermes_cli.modes.json_mode import JsonMode
    from hermes_cli.modes.tools.loop import ToolOptions




# done lines, lines to do, tokens so far -> the progress bar
Progress = Callable[[int, int, int], None]


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
    position: int = 0  # among the input's items, from 0: what --seed S adds to S
    json: bool = False  # "json": true: any JSON object
    tools: bool = True  # "tools": false: this line answers in text even with --tools
    choices: list[str] | None = None  # decision mode: the labels (core/decision.py)
    # An OpenAI Batch line (core/batch_openai.py): its own tools (schemas) and stop sequences.
    tool_options: Any = None
    stop: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """What a resume matches in the output: the id as JSON, or the line for a line
        whose id could not be read."""
        return json.dumps(self.id) if self.id is not None else f"line {self.line}"


def record_key(record: dict[str, Any]) -> str:
    """`Item.key` of the line an output record answers (an OpenAI Batch output line's
    `custom_id` is its line's id)."""
    if "custom_id" in record:
        error = record.get("error")
        line = error.get("line") if isinstance(error, dict) else None
        if record["custom_id"] is None and isinstance(line, int):
            return f"line {line}"
        return json.dumps(record["custom_id"])
    if record.get("id") is None and isinstance(record.get("line"), int):
        return f"line {record['line']}"
    return json.dumps(record.get("id"))


_FIRST_ID = re.compile(r'\s*\{\s*"id"\s*:\s*(-?\d{1,30}|"(?:[^"\\]|\\.){0,1000}")\s*[,}]')


def _readable_id(text: str) -> Any:
    """The id of a line that is not usable JSON (a lone surrogate in its prompt, nesting
    too deep), when its `"id"` itself is plain text or an integer; None otherwise. A line
    that does not parse at all still shows its id when that is its first key."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        first = _FIRST_ID.match(text)
        try:
            obj = {"id": json.loads(first.group(1))} if first else None
        except ValueError:
            obj = None
    found = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(found, bool) or not isinstance(found, (int, str)):
        return None
    try:
        jsontext.check(found)
    except jsontext.BadJson:
        return None
    return found


def _item_from_json(obj: Any, line: int, files_root: Path | None) -> Item:
    from hermes_cli.core.batch_openai import is_openai_line, item_from_openai

    if is_openai_line(obj):
        item: Item = item_from_openai(obj, line)
        return item
    if not isinstance(obj, dict):
        return Item(None, line, error="a JSONL line must be an object")
    item = Item(obj.get("id", line), line)
    if isinstance(item.id, (dict, list)):
        return Item(None, line, error="id must be a string or a number")
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
    if "files" in obj:
        problem = _attach(item, obj["files"], files_root)
        if problem:
            item.error = f"line {line}: {problem}"
            return item
    for key in ("json", "tools"):
        if key in obj and not isinstance(obj[key], bool):
            item.error = f"{key} must be true or false"
            return item
    item.json = obj.get("json") is True
    item.tools = obj.get("tools") is not False
    if "choices" in obj:
        from hermes_cli.core.decision import check_labels

        try:
            item.choices = check_labels(obj["choices"], f"line {line}")
        except UsageError as e:
            item.error = str(e)
            return item
    if "schema" in obj:
        from hermes_cli.modes.json_schema import check_schema

        try:
            check_schema(obj["schema"], f"line {line} schema")
        except UsageError as e:
            item.error = str(e)
            return item
        item.schema = obj["schema"]
    for key in SAMPLING_LIMITS:
        if key in obj:
            problem = sampling_problem(key, obj[key])
            if problem:
                item.error = f"line {line}: {key} {problem}"
                return item
            item.overrides[key] = obj[key]
    return item


def _attach(item: Item, files: Any, root: Path | None) -> str | None:
    """`"files": [...]`: each file's text appended to the line's last user turn, fenced
    with its name (paths relative to the current directory, and inside `root` unless it
    is None: a JSONL file is often data from elsewhere, and may name ../secret.txt);
    why not, if they cannot be."""
    from hermes_cli.core.attachments import read_files, with_files

    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return "files must be a list of paths"
    users = [i for i, m in enumerate(item.messages) if m.role == "user"]
    if not users:
        return "files go into a user turn, and this line has none"
    try:
        attachments = read_files(files, root=root)
    except UsageError as e:
        return str(e)
    last = item.messages[users[-1]]
    item.messages[users[-1]] = Message("user", with_files(last.content, attachments))
    return None


def read_items(source: TextIO, *, jsonl: bool | None = None, files_root: Path | None = None) -> list[Item]:
    """Parse the whole input up front (duplicate ids are an error before any work).

    Args:
        jsonl: None guesses from the first non-empty line (`{` means JSONL).
        files_root: lines' `"files"` must lie under it (None: anywhere).
    """
    items: list[Item] = []
    for number, raw in _lines(source):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        if jsonl is None:
            jsonl = text.lstrip().startswith("{")
        if not jsonl:
            items.append(Item(number, number, messages=[Message("user", text)]))
            continue
        try:
            obj = jsontext.loads(text)
        except jsontext.BadJson as e:
            items.append(Item(_readable_id(text), number, error=f"line {number} is {e}"))
            continue
        items.append(_item_from_json(obj, number, files_root))
    seen: dict[Any, int] = {}
    for position, item in enumerate(items):
        item.position = position
        key = item.key
        if key in seen:
            raise UsageError(f"duplicate id {item.id!r} on lines {seen[key]} and {item.line}")
        seen[key] = item.line
    return items


MAX_LINE = 16 << 20  # characters in one input line
MAX_INPUT = 1 << 30  # characters in the whole input, read before any line runs


def _lines(source: TextIO) -> Iterator[tuple[int, str]]:
    """(number, line) for each line; UsageError for a line over MAX_LINE characters or an
    input over MAX_INPUT (`hermes batch /dev/zero`, `yes … | hermes batch -`: an input that
    never ends is refused in bounded time and memory, before any work)."""
    number = total = 0
    while raw := source.readline(MAX_LINE + 1):
        number += 1
        total += len(raw)
        if len(raw) > MAX_LINE:
            raise UsageError(f"line {number} of the input is longer than {MAX_LINE:,} characters "
                             "(is it a text file?)")
        if total > MAX_INPUT:
            raise UsageError(f"the input goes on past {MAX_INPUT:,} characters (line {number}; it may "
                             "never end)", hint="split it into several batches")
        yield number, raw


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
            if isinstance(record, dict) and ("id" in record or "custom_id" in record):
                done.add(record_key(record))
    return done


class ResultWriter:
    """Appends one record per call, whole, flushed and synced before returning."""

    def __init__(self, path: Path | None, stream: TextIO | None = None) -> None:
        self._path = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror}") from None
        self._stream = stream

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        if self._fd is not None:
            data = line.encode("utf-8")
            end = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                written = os.write(self._fd, data)
                if written != len(data):
                    raise OSError(28, "No space left on device")
                os.fsync(self._fd)
            except OSError as e:  # never leave half a record: cut back to the last whole one
                try:
                    os.ftruncate(self._fd, end)
                except OSError:
                    pass
                raise OutputWriteError(f"cannot write results to {self._path}: {e.strerror or e} "
                                       f"(the records before are whole)",
                                       hint="free some space, then run the same command to resume") from None
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
    choices: list[str] | None = None  # --choices: every line is a decision among these labels
    call_format: str = "auto"  # the model's (prompt/call_format.py), for lines that bring their own tools
    thinking: bool | None = None  # --think/--no-think (prompt/template.py)
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # --format openai: each record as written


@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    tokens: int = 0
    seconds: float = 0.0
    failed_lines: list[int] = field(default_factory=list)

    def raise_if_failed(self) -> None:
        """SomeLinesFailed (exit 1) when a line ended in an error record: the command's
        outcome, said once, where every batch driver ends."""
        if self.failed:
            lines = "line" if self.failed == 1 else "lines"
            raise SomeLinesFailed(f"{self.failed} {lines} failed; the error records in the output say why",
                                  hint="a record counts as done: remove it from the output to ask that line again")

    def line(self) -> str:
        where = f" (lines {', '.join(map(str, self.failed_lines[:10]))}" + (
            "…)" if len(self.failed_lines) > 10 else ")") if self.failed_lines else ""
        return (f"done {self.done}, failed {self.failed}{where}, skipped {self.skipped} "
                f"(already in the output), {self.tokens} tokens, {self.seconds:.1f} s")


class Recorder:
    """What every batch driver does with a finished line: write its record, count it in
    the summary, move the progress bar. Called as `recorder(item, record)`."""

    def __init__(self, writer: ResultWriter, todo: int, skipped: int, progress: Progress | None,
                 shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.writer, self.todo, self.progress, self.shape = writer, todo, progress, shape
        self.summary = Summary(skipped=skipped)
        self._started = time.perf_counter()

    def __call__(self, item: Item, rec: dict[str, Any]) -> None:
        summary = self.summary
        self.writer.write(self.shape(rec) if self.shape is not None else rec)
        if "error" in rec:
            summary.failed += 1
            summary.failed_lines.append(item.line)
        else:
            summary.done += 1
            summary.tokens += rec.get("completion_tokens", 0)  # a decision generates none
        summary.seconds = time.perf_counter() - self._started
        if self.progress:
            self.progress(summary.done + summary.failed, self.todo, summary.tokens)
