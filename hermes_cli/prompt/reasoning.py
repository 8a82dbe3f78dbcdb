"""A reasoning model's thinking, kept apart from its answer.

Hermes 4, Qwen3, DeepSeek-R1 distills, SmolLM3 and others may write `<think>…</think>`
before they answer (Hermes 3, `<scratch_pad>…</scratch_pad>`). It was printed as the
answer, saved as the answer and sent back as history. Here a reply that begins with
such a section (blanks before it allowed) is split:
the section is the reasoning, what follows is the answer. A served engine that sends
its reasoning as `reasoning_content` gets the same treatment (served/backend.py writes
it between the same tags), so every front end sees one shape.

`ThinkSplitter` does it while the text streams, O(1) per character: a possible tag is
held until it is clear either way, so the user never sees half of one.
"""

from __future__ import annotations

import dataclasses

from hermes_cli.engine.params import GenerationResult
from hermes_cli.prompt.tool_calls import partial_length

OPEN = "<think>"
CLOSE = "</think>"
# Hermes 3's own reasoning section (its card: "you may use <scratch_pad>" when asked to
# plan), kept apart the same way when a reply begins with it.
SECTIONS = ((OPEN, CLOSE), ("<scratch_pad>", "</scratch_pad>"))
# What a reply starts with when thinking is turned off (`--no-think`): an empty section, as
# Qwen3's own template writes it for `enable_thinking=False`; the model then answers.
EMPTY = f"{OPEN}\n\n{CLOSE}\n\n"


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(reasoning, answer) of a whole reply; (None, text) when it does not begin with a
    thinking section (`<think>`, or Hermes 3's `<scratch_pad>`). Thinking cut short (no
    closing tag): all of it is reasoning."""
    stripped = text.lstrip()
    tags = next(((o, c) for o, c in SECTIONS if stripped.startswith(o)), None)
    if tags is None:
        return None, text
    body = stripped[len(tags[0]):]
    end = body.find(tags[1])
    if end < 0:
        return body.strip("\n"), ""
    return body[:end].strip("\n"), body[end + len(tags[1]):].lstrip("\n")


def with_reasoning(result: GenerationResult) -> GenerationResult:
    """The result with its thinking moved from `text` to `reasoning` (every driver of a
    reply calls this on each generation: core/reply.py, the --parallel batch)."""
    reasoning, answer = split_reasoning(result.text)
    return result if reasoning is None else dataclasses.replace(result, text=answer, reasoning=reasoning)


class ThinkSplitter:
    """Feed a reply's text as it streams; get ("thinking" | "answer", text) pieces."""

    def __init__(self) -> None:
        self._state = "start"  # "start": nothing seen but blanks; "thinking"; "answer"
        self._held = ""
        self._close = CLOSE  # the closing tag of the section that opened

    @property
    def thinking(self) -> bool:
        return self._state == "thinking"

    def feed(self, text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        data = self._held + text
        self._held = ""
        if self._state == "start":
            shown = data.lstrip()
            opened = next(((o, c) for o, c in SECTIONS if shown.startswith(o)), None)
            if opened is not None:
                self._state, data, self._close = "thinking", shown[len(opened[0]):].lstrip("\n"), opened[1]
            elif any(o.startswith(shown) for o, _c in SECTIONS):
                self._held = data  # blanks, or the start of a tag: not clear yet
                return out
            else:
                self._state = "answer"
        if self._state == "thinking":
            end = data.find(self._close)
            if end < 0:
                keep = partial_length(data, self._close)
                piece, self._held = data[:len(data) - keep], data[len(data) - keep:]
                if piece:
                    out.append(("thinking", piece))
                return out
            if end:
                out.append(("thinking", data[:end]))
            self._state, data = "answer", data[end + len(self._close):].lstrip("\n")
            self._held = ""
            if not data:
                self._state = "answer_start"  # blank lines after the tag are not the answer's
                return out
        if self._state == "answer_start":
            data = data.lstrip("\n")
            if not data:
                return out
            self._state = "answer"
        if data:
            out.append(("answer", data))
        return out

    def finish(self) -> list[tuple[str, str]]:
        """What was held at the end: a partial tag is the answer's text."""
        held, self._held = self._held, ""
        if not held:
            return []
        return [("thinking" if self._state == "thinking" else "answer", held)]
