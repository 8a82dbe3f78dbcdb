"""One question, one answer: the use case behind `hermes ask`, without a terminal.

The CLI gathers the question (prompt, piped stdin, files, mode) and shows the events;
this module turns the question into the messages the model is sent, checks that its
files fit, and runs the reply logic on a backend, as ChatSession does for a chat turn
and batch_run.answer_line for a batch line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hermes_cli.core import figures
from hermes_cli.core.attachments import Sized, describe, measure, read_files, with_files
from hermes_cli.core.backends import Backend, with_call_format
from hermes_cli.core.turn import Turn
from hermes_cli.engine.params import SamplingParams
from hermes_cli.errors import UsageError
from hermes_cli.modes.reply_mode import ReplyMode
from hermes_cli.prompt.messages import Message

if TYPE_CHECKING:
    from hermes_cli.modes.json_mode import JsonMode
    from hermes_cli.modes.tools.loop import ToolOptions


@dataclass(frozen=True)
class Question:
    """What is asked (`prompt`, then piped `stdin_text` after a blank line, then the
    `files`, fenced), and how the answer must come (`json_mode` or `tools`)."""

    prompt: str | None
    stdin_text: str | None = None
    system: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    files: list[str] = field(default_factory=list)
    json_mode: JsonMode | None = None
    tools: ToolOptions | None = None
    think: bool | None = None  # --think/--no-think (core/backends.py: Backend.think)
    # `-f '!cmd'`: whether the person at the terminal lets it run (the front end asks)
    run_command: Callable[[str], bool] | None = field(default=None, compare=False)

    @property
    def mode(self) -> ReplyMode:
        return ReplyMode(self.json_mode, self.tools)

    @property
    def schema_only(self) -> bool:
        """Tools given as schemas only (`--tools-json`): their calls are handed back."""
        return self.tools is not None and any(not t.runnable for t in self.tools.tools.values())


@dataclass
class Prepared:
    """A question made ready before the model loads: what goes to the model, and the
    attached files (sized once a backend can count them)."""

    question: Question
    messages: list[Message]
    attachments: list[Any]

    def check_files(self, backend: Backend) -> str | None:
        """Refuse files that overflow the context (ContextOverflowError); the line that
        names them and their sizes, or None when there are none."""
        if not self.attachments:
            return None
        sized: list[Sized] = measure(self.attachments, backend.count)
        total = backend.prompt_tokens(self.messages)
        backend.check_files_fit(sized, None if total is None else total - sum(s.tokens or 0 for s in sized))
        return f"with {describe(sized)}{figures.prompt_room(backend.facts(), total)}"

    def bound(self, backend: Backend) -> Prepared:
        """The question as this backend's model is asked it: tool calls in the format it
        writes (core/backends.py: with_call_format), its prompt rebuilt to match."""
        tools = with_call_format(self.question.tools, backend)
        if tools is self.question.tools:
            return self
        question = dataclasses.replace(self.question, tools=tools)
        return Prepared(question, question.mode.messages(question.system, self.messages[-1:]), self.attachments)

    def answer(self, backend: Backend, approve: Any) -> Turn:
        """The reply on `backend`, as a Turn (its events end with Final; cancelled, the
        partial reply is kept)."""
        mode = self.question.mode
        if mode.name != "text":
            backend.prepare_grammars()  # built while the prompt is evaluated
        return Turn.of(backend, mode.logic(self.messages, self.question.params, approve=approve))


def prepare(question: Question) -> Prepared:
    """Read the files and check the schema, before any model loads (a bad file or a schema
    no grammar can be built from fails here)."""
    attachments = read_files(question.files, run=question.run_command) if question.files else []
    user_text = with_files(build_prompt(question.prompt, question.stdin_text, files=bool(attachments)),
                           attachments)
    if question.json_mode is not None:
        question.json_mode.check()
    messages = question.mode.messages(question.system, [Message("user", user_text)])
    return Prepared(question, messages, attachments)


def build_prompt(prompt: str | None, stdin_text: str | None, *, files: bool = False) -> str:
    """The user turn: PROMPT, then a blank line, then piped stdin (either may be alone,
    or neither when files are attached)."""
    parts = [p for p in (prompt, stdin_text) if p is not None and p.strip()]
    if not parts and not files:
        raise UsageError("nothing to ask: give a PROMPT argument, pipe text on stdin, or --file")
    return "\n\n".join(p.rstrip("\n") if i else p for i, p in enumerate(parts))

