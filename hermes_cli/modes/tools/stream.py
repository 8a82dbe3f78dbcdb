"""Streaming a tool-mode reply: the text around calls flows as text; each
`<tool_call>…</tool_call>` block is held back and shown as one call once it closes.

Text that could be the start of `<tool_call>` is held until it is clear either way, so
the user never sees half a tag. O(1) amortised per delta: only the held-back tail (at
most the length of the tag) and the open block are kept.
"""

from __future__ import annotations

from hermes_cli.modes.events import Event, TextDelta, ToolCallEvent
from hermes_cli.modes.tools.protocol import MARK, parse_tool_calls

CLOSE = "</tool_call>"


class ToolTextSplitter:
    def __init__(self) -> None:
        self._held = ""  # text outside a call that may begin the tag
        self._call: list[str] | None = None  # the open call's text, after the tag

    def feed(self, text: str) -> list[Event]:
        events: list[Event] = []
        data = self._held + text
        self._held = ""
        while data:
            if self._call is not None:
                self._call.append(data)
                body = "".join(self._call)
                end = body.find(CLOSE)
                if end < 0:
                    return events
                events += self._calls(MARK + body[: end + len(CLOSE)])
                self._call, data = None, body[end + len(CLOSE):]
                continue
            start = data.find(MARK)
            if start >= 0:
                if start:
                    events.append(TextDelta(data[:start]))
                self._call, data = [], data[start + len(MARK):]
                continue
            keep = _partial_tag_length(data)
            if len(data) > keep:
                events.append(TextDelta(data[: len(data) - keep]))
            self._held = data[len(data) - keep:] if keep else ""
            break
        return events

    def finish(self) -> list[Event]:
        """The end of the reply: show what was held back (an unclosed call stays hidden:
        the reply logic reports it)."""
        held, self._held = self._held, ""
        return [TextDelta(held)] if held else []

    @staticmethod
    def _calls(block: str) -> list[Event]:
        parsed = parse_tool_calls(block)
        return [ToolCallEvent(c.name, c.arguments) for c in parsed.calls]


def _partial_tag_length(text: str) -> int:
    """How many trailing characters of `text` could begin MARK."""
    for k in range(min(len(MARK) - 1, len(text)), 0, -1):
        if text.endswith(MARK[:k]):
            return k
    return 0
